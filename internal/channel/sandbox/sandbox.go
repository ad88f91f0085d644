// Package sandbox is the built-in channel: a message is delivered the moment it is sent,
// straight into the conversation history. It serves demos and tests, and any bot whose
// channel has no provider configured.
package sandbox

import (
	"context"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// Sender delivers instantly.
type Sender struct{}

// Send accepts every message as delivered, with a fresh id.
func (Sender) Send(_ context.Context, _ channel.Recipient, _ msg.Content, _ string) (channel.Sent, error) {
	return channel.Sent{ProviderMessageID: "sandbox." + uuid.NewString(), Status: "delivered"}, nil
}

// External is false: nothing leaves Parley, so the message is recorded in the same commit
// as the run's progress.
func (Sender) External() bool { return false }
