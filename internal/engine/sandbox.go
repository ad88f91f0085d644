package engine

import (
	"context"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/sandbox"
)

// SandboxOnly serves every bot and channel with the sandbox adapter.
type SandboxOnly struct{}

// Sender returns the sandbox.
func (SandboxOnly) Sender(context.Context, int64, string) (channel.Sender, error) {
	return sandbox.Sender{}, nil
}
