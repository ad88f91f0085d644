package queue

import (
	"context"
	"errors"
	"log/slog"
)

// cancelledAsInfo passes River's log records on, but logs at info level the errors that
// only say River's own work was cancelled. River stops its services by cancelling them,
// and one may be starting a transaction just then (the periodic job enqueuer, right after
// the client became leader): an ERROR at every such shutdown is how a stop looks, not a
// fault, and would teach operators to ignore errors.
type cancelledAsInfo struct{ slog.Handler }

func (h cancelledAsInfo) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && onlyCancelled(r) {
		quiet := slog.NewRecord(r.Time, slog.LevelInfo, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			quiet.AddAttrs(a)
			return true
		})
		r = quiet
	}
	return h.Handler.Handle(ctx, r)
}

func (h cancelledAsInfo) WithAttrs(attrs []slog.Attr) slog.Handler {
	return cancelledAsInfo{h.Handler.WithAttrs(attrs)}
}

func (h cancelledAsInfo) WithGroup(name string) slog.Handler {
	return cancelledAsInfo{h.Handler.WithGroup(name)}
}

// onlyCancelled reports whether the record's error is a cancellation and nothing else.
func onlyCancelled(r slog.Record) bool {
	cancelled := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "error" && a.Key != "err" {
			return true
		}
		v := a.Value.Resolve()
		if err, ok := v.Any().(error); ok {
			cancelled = errors.Is(err, context.Canceled)
		} else {
			cancelled = v.Kind() == slog.KindString && v.String() == context.Canceled.Error()
		}
		return false
	})
	return cancelled
}
