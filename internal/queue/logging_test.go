package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestCancelledAsInfo(t *testing.T) {
	tests := []struct {
		name  string
		log   func(*slog.Logger)
		level string
	}{
		{"a cancellation, as a string", func(l *slog.Logger) {
			l.Error("maintenance.PeriodicJobEnqueuer: Error starting transaction", "error", "context canceled")
		}, "INFO"},
		{"a cancellation, wrapped", func(l *slog.Logger) {
			l.Error("work", slog.Any("error", fmt.Errorf("begin: %w", context.Canceled)))
		}, "INFO"},
		{"a real error", func(l *slog.Logger) { l.Error("work", "error", errors.New("disk full")) }, "ERROR"},
		{"a deadline", func(l *slog.Logger) { l.Error("work", "error", context.DeadlineExceeded) }, "ERROR"},
		{"an error without its cause", func(l *slog.Logger) { l.Error("work failed") }, "ERROR"},
		{"a warning stays one", func(l *slog.Logger) { l.Warn("slow", "error", "context canceled") }, "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			l := slog.New(cancelledAsInfo{slog.NewJSONHandler(&out, nil)}).With("component", "river")
			tt.log(l)
			if !strings.Contains(out.String(), `"level":"`+tt.level+`"`) || !strings.Contains(out.String(), `"component":"river"`) {
				t.Fatalf("logged %s, want level %s", out.String(), tt.level)
			}
		})
	}
}
