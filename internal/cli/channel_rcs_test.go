package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
)

// TestChannelServiceAccountFile: `channel set --service-account-file` stores the RBM
// agent's key (encrypted), shows only a hint of it, and refuses a file that is not one.
func TestChannelServiceAccountFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "parley.db")
	noEnv := Env{Getenv: func(string) string { return "" }}
	st, err := openDB(ctx, noEnv, db)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := auth.New(st, 0).CreateBot(ctx, "acme", "support")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	key, _ := json.MarshalIndent(map[string]string{"type": "service_account", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "rbm@proj.iam.gserviceaccount.com", "token_uri": "https://oauth2.example.com/token"}, "", "  ")
	keyFile := filepath.Join(dir, "rbm-key.json")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	bot := []string{"--db", db, "--customer", strconv.FormatInt(nb.CustomerID, 10), "--bot", nb.BotKey, "--channel", "rcs"}

	code, out, errOut := runChannel(t, append([]string{"set", "--adapter", "rcs", "--agent-id", "agent", "--service-account-file", keyFile}, bot...)...)
	if code != 0 || !strings.Contains(out, "**** service account rbm@proj.iam.gserviceaccount.com") || strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Fatalf("set: exit %d\n%s%s", code, out, errOut)
	}
	st, err = openDB(ctx, noEnv, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, _ := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	cfg, err := registry.New(st, registry.Options{}).Get(ctx, b.ID, "rcs")
	if err != nil || cfg.ServiceAccountJSON != registry.Normalize(channel.Config{ServiceAccountJSON: string(key)}).ServiceAccountJSON || cfg.AgentID != "agent" {
		t.Fatalf("stored settings = %+v, %v", cfg.AgentID, err)
	}
	raw, _ := st.ChannelConfig(ctx, b.ID, "rcs")
	if strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), "rbm@proj") {
		t.Fatalf("the key is stored in plain text: %s", raw)
	}

	// Changing another setting keeps the key.
	if code, out, errOut := runChannel(t, append([]string{"set", "--adapter", "rcs", "--client-token", "ct-123"}, bot...)...); code != 0 ||
		!strings.Contains(out, "**** service account") {
		t.Fatalf("set client token: exit %d\n%s%s", code, out, errOut)
	}
	notKey := filepath.Join(dir, "token.txt")
	_ = os.WriteFile(notKey, []byte("ya29.a-token"), 0o600)
	for _, tt := range []struct{ file, msg string }{
		{filepath.Join(dir, "missing.json"), "--service-account-file"},
		{notKey, "service_account_json: not a JSON object"},
		{"", "service_account_json (the agent's service-account key) or token"}, // cleared, nothing left
	} {
		code, out, errOut := runChannel(t, append([]string{"set", "--adapter", "rcs", "--service-account-file", tt.file}, bot...)...)
		if code != exitUsage || !strings.Contains(errOut, tt.msg) {
			t.Errorf("--service-account-file %q: exit %d, %s%s; want a usage error mentioning %q", tt.file, code, out, errOut, tt.msg)
		}
	}
}

// runChannel runs `parley channel ...` through Run, as a user would.
func runChannel(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code := Run(context.Background(), append([]string{"channel"}, args...), env)
	return code, out.String(), errOut.String()
}
