package registry

import (
	"context"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// fakeSender is an adapter whose optional behaviour the test chooses.
type fakeSender struct {
	external, dedup bool
	sends           int
}

func (f *fakeSender) Send(context.Context, channel.Recipient, msg.Content, string) (channel.Sent, error) {
	f.sends++
	return channel.Sent{ProviderMessageID: "p", Status: "sent"}, nil
}
func (f *fakeSender) External() bool { return f.external }

type dedupSender struct{ *fakeSender }

func (d dedupSender) DropsDuplicates() bool { return d.dedup }

type proberSender struct{ *fakeSender }

func (proberSender) Reachable(context.Context, channel.Recipient) (bool, error) { return false, nil }

// TestWrapperForwardsAdapterBehaviour checks the engine sees through the wrapper what
// it would see on the adapter: External, DropsDuplicates and, only for probing
// adapters, Reachable.
func TestWrapperForwardsAdapterBehaviour(t *testing.T) {
	wrap := func(inner channel.Sender) *wrapped {
		return &wrapped{inner: inner, channel: channel.RCS, sender: "rcs:a", pacer: &localPacer{}, maxWait: time.Second, now: time.Now}
	}
	tests := []struct {
		name         string
		sender       channel.Sender
		wantExternal bool
		wantDedup    bool
		wantProber   bool
	}{
		{"plain external adapter", wrap(&fakeSender{external: true}), true, false, false},
		{"adapter that drops duplicates", wrap(dedupSender{&fakeSender{external: true, dedup: true}}), true, true, false},
		{"adapter that says it does not", wrap(dedupSender{&fakeSender{external: true}}), true, false, false},
		{"local adapter", wrap(&fakeSender{}), false, false, false},
		{"probing adapter", probing{wrapped: wrap(proberSender{&fakeSender{external: true}}), prober: proberSender{}}, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sender.External(); got != tt.wantExternal {
				t.Errorf("External = %v, want %v", got, tt.wantExternal)
			}
			d, ok := tt.sender.(channel.Deduplicator)
			if got := ok && d.DropsDuplicates(); got != tt.wantDedup {
				t.Errorf("DropsDuplicates = %v, want %v", got, tt.wantDedup)
			}
			p, ok := tt.sender.(channel.Prober)
			if ok != tt.wantProber {
				t.Fatalf("is a Prober = %v, want %v", ok, tt.wantProber)
			}
			if ok {
				if reachable, err := p.Reachable(context.Background(), channel.Recipient{}); reachable || err != nil {
					t.Errorf("Reachable = %v, %v; want the adapter's false", reachable, err)
				}
			}
		})
	}
}

func TestLocalPacerSpacing(t *testing.T) {
	p := &localPacer{}
	t0 := time.Unix(1000, 0)
	const iv = 10 * time.Millisecond
	tests := []struct {
		now    time.Duration // after t0
		want   time.Duration
		wantOK bool
	}{
		{0, 0, true},
		{0, 10 * time.Millisecond, true},
		{1 * time.Millisecond, 20 * time.Millisecond, true},
		{1 * time.Millisecond, 30 * time.Millisecond, false}, // 29 ms ahead > 25 ms
		{5 * time.Millisecond, 30 * time.Millisecond, true},
		{time.Second, time.Second, true}, // idle: no burst saved up
		{time.Second, time.Second + iv, true},
	}
	for i, tt := range tests {
		at, ok, err := p.reserve(context.Background(), t0.Add(tt.now), iv, 25*time.Millisecond)
		if err != nil || ok != tt.wantOK || !at.Equal(t0.Add(tt.want)) {
			t.Fatalf("reservation %d = %v %v %v, want +%v %v", i, at.Sub(t0), ok, err, tt.want, tt.wantOK)
		}
	}
}
