package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// runEnv runs a parley command in process with the given environment and returns its
// exit code, stdout and stderr.
func runEnv(env map[string]string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }})
	return code, stdout.String(), stderr.String()
}

func mustRun(t *testing.T, env map[string]string, out any, args ...string) {
	t.Helper()
	code, stdout, stderr := runEnv(env, args...)
	if code != 0 {
		t.Fatalf("parley %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("parley %s printed %q: %v", strings.Join(args, " "), stdout, err)
		}
	}
}

func keyring(t *testing.T, s string) *secret.Keyring {
	t.Helper()
	kr, err := secret.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// openWith opens the database as a server given keys would.
func openWith(t *testing.T, dsn string, kr *secret.Keyring) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{Secrets: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

const secretHeaderFlow = `{"key": "crm", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "GET", "url": "https://crm.example.com/x",
   "headers": {"X-Token": "cli-s3cr3t"}, "secret_headers": ["X-Token"]}]}`

type rotation struct {
	KeyID    string   `json:"key_id"`
	Keys     []string `json:"keys"`
	Channels int      `json:"channel_settings_rewritten"`
	Flows    int      `json:"flow_versions_rewritten"`
	Drafts   int      `json:"drafts_rewritten"`
}

// TestSecretsRotate: `parley secrets rotate` with "new,old" re-encrypts channel secrets
// (plain-text ones included) and flow secret headers under the new key, after which the
// new key alone reads everything.
func TestSecretsRotate(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := e.DSN(t)
			oldKey, newKey := secret.NewKey(), secret.NewKey()
			oldEnv := map[string]string{"PARLEY_SECRET_KEY": oldKey}
			var nb newBot
			mustRun(t, oldEnv, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
			flowFile := filepath.Join(t.TempDir(), "flow.json")
			_ = os.WriteFile(flowFile, []byte(secretHeaderFlow), 0o600)
			cid := fmt.Sprint(nb.CustomerID)
			mustRun(t, oldEnv, nil, "flow", "import", "--db", db, "--customer", cid, "--bot", nb.BotKey, flowFile)

			st := openWith(t, db, keyring(t, oldKey))
			b, err := st.Bot(ctx, nb.CustomerID, nb.BotKey)
			if err != nil {
				t.Fatal(err)
			}
			wa := channel.Config{Adapter: "whatsapp", PhoneNumberID: "104242", Token: "wa-token-1234", AppSecret: "wa-app-secret"}
			if err := registry.New(st, registry.Options{}).Set(ctx, b.ID, "whatsapp", wa); err != nil {
				t.Fatal(err)
			}
			// A row from before encryption: plain text.
			if err := st.SaveChannelConfig(ctx, b.ID, "rcs", []byte(`{"adapter":"rcs","agent_id":"a","token":"legacy-rcs-token"}`)); err != nil {
				t.Fatal(err)
			}

			// Drafts: one sealed under the old key, one saved in plain before drafts were sealed.
			sealed, err := catalog.SealDraft(keyring(t, oldKey), []byte(secretHeaderFlow), nil)
			if err != nil {
				t.Fatal(err)
			}
			for key, doc := range map[string][]byte{"crm": sealed, "legacy": []byte(strings.Replace(secretHeaderFlow, `"crm"`, `"legacy"`, 1))} {
				if err := st.SaveFlowDraft(ctx, b.ID, store.FlowDraft{Key: key, Document: doc, UpdatedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}

			bothEnv := map[string]string{"PARLEY_SECRET_KEY": newKey + "," + oldKey}
			var rot rotation
			mustRun(t, bothEnv, &rot, "secrets", "rotate", "--db", db)
			newID := keyring(t, newKey).PrimaryID()
			if rot.KeyID != newID || len(rot.Keys) != 2 || rot.Channels != 2 || rot.Flows != 1 || rot.Drafts != 2 {
				t.Fatalf("rotate = %+v; want key %s, 2 channel settings, 1 flow version and 2 drafts rewritten", rot, newID)
			}
			// --secret-key does the same as the variable; nothing is left to do.
			mustRun(t, nil, &rot, "secrets", "rotate", "--db", db, "--secret-key", newKey+","+oldKey)
			if rot.Channels != 0 || rot.Flows != 0 || rot.Drafts != 0 {
				t.Fatalf("a second rotate = %+v, want nothing rewritten", rot)
			}

			// The new key alone now reads it all.
			stNew := openWith(t, db, keyring(t, newKey))
			reg := registry.New(stNew, registry.Options{})
			if got, err := reg.Get(ctx, b.ID, "whatsapp"); err != nil || got != wa {
				t.Fatalf("whatsapp with the new key = %+v, %v", got, err)
			}
			if got, err := reg.Get(ctx, b.ID, "rcs"); err != nil || got.Token != "legacy-rcs-token" {
				t.Fatalf("rcs with the new key = %+v, %v", got, err)
			}
			raw, _ := stNew.ChannelConfig(ctx, b.ID, "rcs")
			if strings.Contains(string(raw), "legacy-rcs-token") {
				t.Fatalf("the plain-text row was not encrypted: %s", raw)
			}
			rec, _ := stNew.FlowByKey(ctx, b.ID, "crm")
			if strings.Contains(string(rec.Document), "cli-s3cr3t") || !strings.Contains(string(rec.Document), "enc:v1:"+newID+":") {
				t.Fatalf("stored flow after rotation:\n%s", rec.Document)
			}
			for _, key := range []string{"crm", "legacy"} {
				d, err := stNew.FlowDraft(ctx, b.ID, key)
				if err != nil || strings.Contains(string(d.Document), "cli-s3cr3t") || !strings.Contains(string(d.Document), "enc:v1:"+newID+":") {
					t.Fatalf("draft %s after rotation: %v\n%s", key, err, d.Document)
				}
			}
			newEnv := map[string]string{"PARLEY_SECRET_KEY": newKey}
			code, out, stderr := runEnv(newEnv, "flow", "export", "--db", db, "--customer", cid, "--bot", nb.BotKey, "--key", "crm")
			if code != 0 || !strings.Contains(out, `"X-Token": "[REDACTED]"`) || strings.Contains(out, "cli-s3cr3t") {
				t.Fatalf("export: exit %d %s %s", code, out, stderr)
			}

			// With the old key alone, the rotation says which key is missing.
			code, _, stderr = runEnv(oldEnv, "secrets", "rotate", "--db", db)
			if code != 1 || !strings.Contains(stderr, newID) {
				t.Fatalf("rotate with only the old key: exit %d %s", code, stderr)
			}
			// A malformed key is a usage error that does not echo it.
			code, _, stderr = runEnv(nil, "secrets", "rotate", "--db", db, "--secret-key", "hunter2-not-a-key")
			if code != 2 || !strings.Contains(stderr, "--secret-key") || strings.Contains(stderr, "hunter2") {
				t.Fatalf("bad key: exit %d %s", code, stderr)
			}
		})
	}
}

// TestSQLiteKeyFile: without PARLEY_SECRET_KEY, the first command on a SQLite database
// makes its key file (mode 0600); the server and the CLI use it; a server given another
// key refuses to start, naming the key it lacks.
func TestSQLiteKeyFile(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLiteDSN(t)
	var nb newBot
	mustRun(t, nil, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
	fi, err := os.Stat(db + ".key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	raw, _ := os.ReadFile(db + ".key")
	fileKeys := keyring(t, strings.TrimSpace(string(raw)))

	st := openWith(t, db, fileKeys)
	b, _ := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if err := registry.New(st, registry.Options{}).Set(ctx, b.ID, "whatsapp",
		channel.Config{Adapter: "whatsapp", PhoneNumberID: "1", Token: "file-key-token"}); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.ChannelConfig(ctx, b.ID, "whatsapp")
	if !strings.Contains(string(stored), "enc:v1:"+fileKeys.PrimaryID()+":") {
		t.Fatalf("stored with another key than the file's: %s", stored)
	}
	// Another process (the CLI) reads the same key.
	var again newBot
	mustRun(t, nil, &again, "bot", "create", "--db", db, "--customer", "acme", "--name", "second")
	if raw2, _ := os.ReadFile(db + ".key"); string(raw2) != string(raw) {
		t.Fatal("the key file changed")
	}

	code, _, stderr := runEnv(map[string]string{"PARLEY_SECRET_KEY": secret.NewKey()}, "serve", "--db", db, "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, fileKeys.PrimaryID()) || !strings.Contains(stderr, "does not hold") {
		t.Fatalf("serve with another key: exit %d %s", code, stderr)
	}
}

// TestServeSecretKey: on PostgreSQL a server will not start without a key; -h never
// prints the key from the environment.
func TestServeSecretKey(t *testing.T) {
	if storetest.PostgresURL() != "" {
		db := storetest.PostgresDSN(t)
		code, _, stderr := runEnv(nil, "serve", "--db", db, "--addr", "127.0.0.1:0")
		if code != 1 || !strings.Contains(stderr, "PARLEY_SECRET_KEY") {
			t.Fatalf("serve on PostgreSQL without a key: exit %d %s", code, stderr)
		}
		// The CLI's commands that touch no secret work; those that do say why not.
		var nb newBot
		mustRun(t, nil, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
		flowFile := filepath.Join(t.TempDir(), "flow.json")
		_ = os.WriteFile(flowFile, []byte(secretHeaderFlow), 0o600)
		code, _, stderr = runEnv(nil, "flow", "import", "--db", db, "--customer", fmt.Sprint(nb.CustomerID), "--bot", nb.BotKey, flowFile)
		if code != 1 || !strings.Contains(stderr, "no secret key is configured") {
			t.Fatalf("flow import with a secret header and no key: exit %d %s", code, stderr)
		}
		code, _, stderr = runEnv(nil, "secrets", "rotate", "--db", db)
		if code != 2 || !strings.Contains(stderr, "no secret key is configured") {
			t.Fatalf("rotate without a key: exit %d %s", code, stderr)
		}
	} else {
		t.Logf("%s is not set: the PostgreSQL refusal is not checked", storetest.EnvPostgres)
	}
	key := secret.NewKey()
	code, _, stderr := runEnv(map[string]string{"PARLEY_SECRET_KEY": key}, "serve", "-h")
	if code != 0 || !strings.Contains(stderr, "-secret-key") || strings.Contains(stderr, key) {
		t.Fatalf("serve -h: exit %d %s", code, stderr)
	}
	code, _, stderr = runEnv(map[string]string{"PARLEY_SECRET_KEY": "short"}, "serve", "--db", storetest.SQLiteDSN(t), "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "--secret-key") {
		t.Fatalf("serve with a malformed key: exit %d %s", code, stderr)
	}
}

// TestHTTPAllowPort: an --http-allow (or PARLEY_HTTP_ALLOW) entry with a port opens that
// port of the address only, so an allow-list for one test server does not open the
// others (Parley's own admin port among them).
func TestHTTPAllowPort(t *testing.T) {
	db := storetest.SQLiteDSN(t)
	target, hits := jsonTarget(t, `{"ok": true}`)
	other, otherHits := jsonTarget(t, `{"ok": true}`)
	var nb newBot
	mustRun(t, nil, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
	cid := fmt.Sprint(nb.CustomerID)
	flowFile := writeFlow(t, fmt.Sprintf(`{"key": "ping", "start": "a", "nodes": [
		{"id": "a", "type": "http", "method": "GET", "url": "%s/a", "next": "b"},
		{"id": "b", "type": "http", "method": "GET", "url": "%s/b"}]}`, target.URL, other.URL))
	mustRun(t, nil, nil, "flow", "import", "--db", db, "--customer", cid, "--bot", nb.BotKey, flowFile)
	allow := strings.TrimPrefix(target.URL, "http://") // 127.0.0.1:port
	var res struct {
		Failed    bool   `json:"failed"`
		ErrorKind string `json:"error_kind"`
	}
	for _, tc := range []struct {
		node    string
		env     map[string]string
		args    []string
		blocked bool
	}{
		{"a", nil, []string{"--http-allow", allow}, false},
		{"b", nil, []string{"--http-allow", allow}, true},
		{"a", map[string]string{"PARLEY_HTTP_ALLOW": "10.0.0.0/8, " + allow}, nil, false},
		{"b", map[string]string{"PARLEY_HTTP_ALLOW": "10.0.0.0/8, " + allow}, nil, true},
	} {
		res.Failed, res.ErrorKind = false, ""
		mustRun(t, tc.env, &res, append([]string{"httpstep", "test", "--db", db, "--customer", cid, "--bot", nb.BotKey,
			"--flow", "ping", "--node", tc.node}, tc.args...)...)
		if res.Failed != tc.blocked || (tc.blocked && res.ErrorKind != "blocked") {
			t.Errorf("node %s with %v %v: %+v, want blocked %v", tc.node, tc.env, tc.args, res, tc.blocked)
		}
	}
	if hits.Load() != 2 || otherHits.Load() != 0 {
		t.Fatalf("the allowed server got %d calls, the other %d; want 2 and 0", hits.Load(), otherHits.Load())
	}
	code, _, stderr := runEnv(map[string]string{"PARLEY_HTTP_ALLOW": "127.0.0.1:0"}, "serve", "--db", db, "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "--http-allow") {
		t.Fatalf("serve with port 0 allowed: exit %d %s", code, stderr)
	}
}
