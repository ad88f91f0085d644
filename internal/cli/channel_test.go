package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// testSecretKey encrypts the channel secrets the tests store (PostgreSQL needs a key;
// on SQLite it stands in for the key file).
const testSecretKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// runCode runs a parley command line in process, as cmd/parley does, with the test's
// secret key in PARLEY_SECRET_KEY, and returns the exit code and both outputs.
func runCode(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	getenv := func(name string) string {
		if name == "PARLEY_SECRET_KEY" {
			return testSecretKey
		}
		return ""
	}
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: getenv})
	return code, out.String(), errOut.String()
}

func TestChannelCommand(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			testChannelCommand(t, e.DSN(t))
		})
	}
}

func testChannelCommand(t *testing.T, db string) {
	ctx := context.Background()
	var nb newBot
	run(t, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "support")
	bot := []string{"--db", db, "--customer", strconv.FormatInt(nb.CustomerID, 10), "--bot", nb.BotKey}
	const token, appSecret = "EAAG-graph-token-abcd1234", "app-secret-0123456789"

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
			"--phone-number-id", "104242", "--token", token, "--app-secret", appSecret, "--verify-token", "v-token", "--rate", "120"},
			0, []string{`"adapter": "whatsapp"`, `"token": "****1234"`, `"app_secret": "****6789"`, `"rate_per_second_effective": 120`,
				`"webhook_path": "/webhooks/whatsapp/` + nb.BotKey + `"`}, []string{token, appSecret}},
		{"change only the rate", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--rate", "unlimited"},
			0, []string{`"token": "****1234"`, `"rate_per_second": -1`, `"rate_per_second_effective": 0`, "pacing is off"}, []string{token}},
		{"set rcs", []string{"set", "--channel", "rcs", "--adapter", "rcs", "--agent-id", "agent", "--token", "ya29.rbm-token-5678"},
			0, []string{`"adapter": "rcs"`, "client_token is not set"}, []string{"ya29.rbm-token-5678"}},
		{"show both", []string{"show"}, 0, []string{`"channel": "whatsapp"`, `"channel": "rcs"`, `"bot_key": "` + nb.BotKey + `"`}, []string{token, appSecret}},
		{"show one", []string{"show", "--channel", "rcs"}, 0, []string{`"channel": "rcs"`}, []string{`"channel": "whatsapp"`}},
		{"adapter of another channel", []string{"set", "--channel", "whatsapp", "--adapter", "rcs", "--agent-id", "a", "--token", "t"},
			2, []string{"parley channel: ", "cannot serve"}, nil},
		{"sandbox with a token", []string{"set", "--channel", "rcs", "--adapter", "sandbox", "--token", "t"}, 2, []string{"token does not apply"}, nil},
		{"bad base url", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--base-url", "ftp://x"}, 2, []string{"base_url"}, nil},
		{"bad rate", []string{"set", "--channel", "whatsapp", "--adapter", "whatsapp", "--rate", "fast"}, 2, []string{"--rate"}, nil},
		{"no adapter", []string{"set", "--channel", "whatsapp"}, 2, []string{"--adapter is required"}, nil},
		{"no channel", []string{"set", "--adapter", "sandbox"}, 2, []string{"--channel must be"}, nil},
		{"unknown channel", []string{"show", "--channel", "sms"}, 2, []string{"--channel must be"}, nil},
		{"unknown flag", []string{"show", "--adapter", "sandbox"}, 2, []string{"flag provided but not defined"}, nil},
		{"unknown subcommand", []string{"delete"}, 2, []string{"unknown subcommand"}, nil},
		{"no subcommand", nil, 2, []string{"missing subcommand"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"channel"}, tt.args...)
			if len(tt.args) > 0 && (tt.args[0] == "set" || tt.args[0] == "show") {
				args = append(append([]string{"channel", tt.args[0]}, bot...), tt.args[1:]...)
			}
			code, out, errOut := runCode(args...)
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

	// What was set is what a server with the key reads, secrets in full.
	keys, err := secret.Parse(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenWithKeys(t, db, keys)
	b, err := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := registry.New(st, registry.Options{}).Get(ctx, b.ID, channel.WhatsApp)
	want := channel.Config{Adapter: "whatsapp", BaseURL: "http://127.0.0.1:9/graph", PhoneNumberID: "104242", Token: token,
		AppSecret: appSecret, VerifyToken: "v-token", RatePerSecond: registry.Unlimited}
	if err != nil || got != want {
		t.Fatalf("stored settings = %+v, %v; want %+v", got, err, want)
	}

	// An unknown bot is an error, not a crash.
	if code, _, errOut := runCode("channel", "show", "--db", db, "--customer", strconv.FormatInt(nb.CustomerID, 10), "--bot", "0000000000000000"); code != 1 ||
		!strings.Contains(errOut, "has no bot") {
		t.Fatalf("unknown bot: exit %d, %s", code, errOut)
	}
}
