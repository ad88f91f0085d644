package phone

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"919876543210":  "********3210",
		"+919876543210": "+********3210",
		"1234":          "****",
		"":              "",
		"abc":           "abc",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"upsert user 919876543210: context canceled": "upsert user ********3210: context canceled",
		"to +919876543210 and 447700900123":          "to +********3210 and ********0123",
		"/channel-user/919876543210/conversations":   "/channel-user/********3210/conversations",
		// Run ids, short numbers, words and identifiers stay.
		"run 01931f6e-1234567-7abc-8def-012345678901": "run 01931f6e-1234567-7abc-8def-012345678901",
		"user #123456 step 42":                        "user #123456 step 42",
		"wamid.HBgMOTE5ODEyMzAwMDAxFQIAERgS0001":      "wamid.HBgMOTE5ODEyMzAwMDAxFQIAERgS0001",
		"key_12345678 and v12345678":                  "key_12345678 and v12345678",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactingHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(RedactingHandler(slog.NewJSONHandler(&buf, nil))).With("user", "919876543210")
	log.WithGroup("g").Info("sent to 919876543210", "err", errors.New("user 919876543210: boom"),
		"path", "/c/919876543210/x", slog.Group("in", "to", "+919876543210"))
	out := buf.String()
	if strings.Contains(out, "98765") {
		t.Fatalf("a phone number was logged: %s", out)
	}
	for _, want := range []string{`"msg":"sent to ********3210"`, `"user":"********3210"`, `"err":"user ********3210: boom"`, `"to":"+********3210"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
}
