package sandbox_test

import (
	"context"
	"testing"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/sandbox"
	"github.com/parleyhq/parley/internal/msg"
)

// TestSendIDsAscend: each message gets a new id, later ones sorting after earlier ones,
// so the index of provider ids grows at its end.
func TestSendIDsAscend(t *testing.T) {
	var prev string
	for i := range 1000 {
		sent, err := sandbox.Sender{}.Send(context.Background(), channel.Recipient{}, msg.Content{}, "")
		if err != nil {
			t.Fatal(err)
		}
		if sent.Status != "delivered" {
			t.Fatalf("status %q; want delivered", sent.Status)
		}
		if sent.ProviderMessageID <= prev {
			t.Fatalf("id %d %q does not sort after %q", i, sent.ProviderMessageID, prev)
		}
		prev = sent.ProviderMessageID
	}
}
