// Package sandbox is the built-in channel: a message is delivered the moment it is sent,
// straight into the conversation history. It serves demos and tests, and any bot whose
// channel has no provider configured.
package sandbox

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// Sender delivers instantly.
type Sender struct{}

// Send accepts every message as delivered, with a fresh id. The id is a time-ordered
// UUID (v7): provider ids are indexed, and random ones would land every new message on
// a different page of that index, a page written per message (measured: half the WAL
// a large sandbox broadcast writes).
func (Sender) Send(_ context.Context, _ channel.Recipient, _ msg.Content, _ string) (channel.Sent, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return channel.Sent{}, fmt.Errorf("sandbox message id: %w", err)
	}
	return channel.Sent{ProviderMessageID: "sandbox." + id.String(), Status: "delivered"}, nil
}

// External is false: nothing leaves Parley, so the message is recorded in the same commit
// as the run's progress.
func (Sender) External() bool { return false }
