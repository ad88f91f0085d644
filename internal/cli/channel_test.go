package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
)

// runChannel runs `parley channel ...` in process and returns the exit code and output.
func runChannel(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	args = append([]string{"channel"}, args...)
	var code int
	if _, ok := commands()["channel"]; ok {
		code = Run(context.Background(), args, env)
	} else {
		// Until the command table lists "channel", run it the way Run runs a command.
		switch err := channelCmd(context.Background(), env, args[1:]); {
		case err == nil:
			code = exitOK
		case errors.As(err, new(usageError)):
			errOut.WriteString(err.Error())
			code = exitUsage
		default:
			errOut.WriteString(err.Error())
			code = exitError
		}
	}
	return code, out.String(), errOut.String()
}

func TestChannelCommand(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "parley.db")
	st, err := openDB(ctx, Env{Getenv: func(string) string { return "" }}, db)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := auth.New(st, 0).CreateBot(ctx, "acme", "support")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	bot := []string{"--db", db, "--customer", strconv.FormatInt(nb.CustomerID, 10), "--bot", nb.BotKey}
	const token, secret = "EAAG-graph-token-abcd1234", "app-secret-0123456789"

	tests := []struct {
		name     string
		args     []string
		wantCode int
		// wantOut must appear in stdout (exit 0) or stderr (otherwise).
		wantOut []string
		// never must appear in neither.
		never []string
	}{
		{"set whatsapp", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--base-url", "http://127.0.0.1:9/graph",
			"--phone-number-id", "104242", "--token", token, "--app-secret", secret, "--verify-token", "v-token", "--rate", "120"},
			0, []string{`"adapter": "whatsapp"`, `"token": "****1234"`, `"app_secret": "****6789"`, `"rate_per_second_effective": 120`,
				`"webhook_path": "/webhooks/whatsapp/` + nb.BotKey + `"`}, []string{token, secret}},
		{"change only the rate", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--rate", "unlimited"},
			0, []string{`"token": "****1234"`, `"rate_per_second": -1`, `"rate_per_second_effective": 0`, "pacing is off"}, []string{token}},
		{"set rcs", []string{"set", "--channel", "rcs", "--adapter", "rcs", "--agent-id", "agent", "--token", "ya29.rbm-token-5678"},
			0, []string{`"adapter": "rcs"`, "client_token is not set"}, []string{"ya29.rbm-token-5678"}},
		{"show both", []string{"show"}, 0, []string{`"channel": "whatsapp"`, `"channel": "rcs"`, `"bot_key": "` + nb.BotKey + `"`}, []string{token, secret}},
		{"show one", []string{"show", "--channel", "rcs"}, 0, []string{`"channel": "rcs"`}, []string{`"channel": "whatsapp"`}},
		{"adapter of another channel", []string{"set", "--channel", "whatsapp", "--adapter", "rcs", "--agent-id", "a", "--token", "t"},
			2, []string{"cannot serve"}, nil},
		{"sandbox with a token", []string{"set", "--channel", "rcs", "--adapter", "sandbox", "--token", "t"}, 2, []string{"token does not apply"}, nil},
		{"bad base url", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--base-url", "ftp://x"}, 2, []string{"base_url"}, nil},
		{"bad rate", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--rate", "fast"}, 2, []string{"--rate"}, nil},
		{"no adapter", []string{"set", "--channel", "whatsapp"}, 2, []string{"--adapter is required"}, nil},
		{"no channel", []string{"set", "--adapter", "sandbox"}, 2, []string{"--channel must be"}, nil},
		{"unknown channel", []string{"show", "--channel", "sms"}, 2, []string{"--channel must be"}, nil},
		{"unknown subcommand", []string{"delete"}, 2, []string{"unknown subcommand"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.args[0] == "set" || tt.args[0] == "show" {
				args = append(append([]string{tt.args[0]}, bot...), tt.args[1:]...)
			}
			code, out, errOut := runChannel(t, args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			where := out
			if code != 0 {
				where = errOut
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(where, w) {
					t.Errorf("output lacks %q:\n%s", w, where)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(out+errOut, n) {
					t.Errorf("output contains %q:\n%s%s", n, out, errOut)
				}
			}
			if code == 0 && !json.Valid([]byte(out)) {
				t.Errorf("stdout is not JSON: %s", out)
			}
		})
	}

	// What was set is what a server reads, secrets in full (with the key beside the
	// database, as a server on it would).
	st, err = openDB(ctx, Env{Getenv: func(string) string { return "" }}, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := registry.New(st, registry.Options{}).Get(ctx, b.ID, "whatsapp")
	want := channel.Config{Adapter: "whatsapp", BaseURL: "http://127.0.0.1:9/graph", PhoneNumberID: "104242", Token: token,
		AppSecret: secret, VerifyToken: "v-token", RatePerSecond: registry.Unlimited}
	if err != nil || got != want {
		t.Fatalf("stored settings = %+v, %v; want %+v", got, err, want)
	}

	// An unknown bot is an error, not a crash.
	if code, _, errOut := runChannel(t, "show", "--db", db, "--customer", strconv.FormatInt(nb.CustomerID, 10), "--bot", "0000000000000000"); code != 1 ||
		!strings.Contains(errOut, "has no bot") {
		t.Fatalf("unknown bot: exit %d, %s", code, errOut)
	}
}
