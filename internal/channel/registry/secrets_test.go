package registry_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

var (
	saKeyOnce sync.Once
	saKeyPEM  string
)

// serviceAccount is a Google service-account key file whose token_uri is tokenURL.
func serviceAccount(t testing.TB, tokenURL string) string {
	t.Helper()
	saKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		saKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	b, _ := json.MarshalIndent(map[string]string{"type": "service_account", "private_key_id": "k1", "private_key": saKeyPEM,
		"client_email": "agent@parley-test.iam.gserviceaccount.com", "token_uri": tokenURL}, "", "  ")
	return string(b)
}

// tokenEndpoint hands out "tok-1", "tok-2", ... to any JWT-bearer grant.
func tokenEndpoint(t testing.TB) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, n.Add(1))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// storedSecrets reads a channel's row as stored and returns its secret members.
func storedSecrets(t *testing.T, st *store.Store, bot int64, ch string) (map[string]string, string) {
	t.Helper()
	raw, err := st.ChannelConfig(context.Background(), bot, ch)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range []string{"token", "app_secret", "verify_token", "client_token", "service_account_json"} {
		if v, ok := m[k].(string); ok {
			out[k] = v
		}
	}
	return out, string(raw)
}

// TestChannelSecretsEncryptedAtRest: every secret setting is stored encrypted with the
// store's key and read back in full; the rest stays queryable.
func TestChannelSecretsEncryptedAtRest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		reg := registry.New(st, registry.Options{})
		wa := channel.Config{Adapter: "whatsapp", PhoneNumberID: "104242", Token: "EAAG-plain-token-1234",
			AppSecret: "app-secret-5678", VerifyToken: "verify-me-9012"}
		sa := serviceAccount(t, "https://oauth2.example.com/token")
		rc := channel.Config{Adapter: "rcs", AgentID: "agent", ClientToken: "client-token-3456", ServiceAccountJSON: sa}
		if err := reg.Set(ctx, bot, "whatsapp", wa); err != nil {
			t.Fatal(err)
		}
		if err := reg.Set(ctx, bot, "rcs", rc); err != nil {
			t.Fatal(err)
		}
		for ch, plain := range map[string][]string{"whatsapp": {wa.Token, wa.AppSecret, wa.VerifyToken}, "rcs": {rc.ClientToken, "PRIVATE KEY", "agent@parley"}} {
			secrets, raw := storedSecrets(t, st, bot, ch)
			if len(secrets) != 3 && !(ch == "rcs" && len(secrets) == 2) {
				t.Fatalf("%s: stored secrets %v", ch, secrets)
			}
			for k, v := range secrets {
				if secret.KeyOf(v) != st.Secrets().PrimaryID() {
					t.Errorf("%s: %s stored as %.30q, want a ciphertext of key %s", ch, k, v, st.Secrets().PrimaryID())
				}
			}
			for _, p := range plain {
				if strings.Contains(raw, p) {
					t.Errorf("%s: the stored row holds %q in plain text: %s", ch, p, raw)
				}
			}
		}
		// The phone number id stays plain: webhooks find the bot by it.
		if found, err := st.ChannelConfigsByPhoneNumberID(ctx, "104242"); err != nil || len(found) != 1 {
			t.Fatalf("ChannelConfigsByPhoneNumberID = %v, %v", found, err)
		}
		fresh := registry.New(st, registry.Options{})
		if got, err := fresh.Get(ctx, bot, "whatsapp"); err != nil || got != wa {
			t.Fatalf("Get(whatsapp) = %+v, %v; want %+v", got, err, wa)
		}
		got, err := fresh.Get(ctx, bot, "rcs")
		if want := registry.Normalize(rc); err != nil || got != want {
			t.Fatalf("Get(rcs) = %+v, %v", got, err)
		}
		raw, _ := st.ChannelConfig(ctx, bot, "whatsapp")
		if dec, err := fresh.Decode(raw); err != nil || dec != wa {
			t.Fatalf("Decode = %+v, %v", dec, err)
		}
	})
}

// TestPlainTextSecretsKeepWorking: settings stored before encryption are used as they
// are, and Reencrypt encrypts them.
func TestPlainTextSecretsKeepWorking(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		graph := newFakeGraph(t)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		legacy := fmt.Sprintf(`{"adapter":"whatsapp","base_url":%q,"phone_number_id":"104242","token":"legacy-token-1234","app_secret":"legacy-app-secret"}`, graph.URL)
		if err := st.SaveChannelConfig(ctx, bot, "whatsapp", []byte(legacy)); err != nil {
			t.Fatal(err)
		}
		reg := registry.New(st, registry.Options{})
		s, err := reg.Sender(ctx, bot, "whatsapp")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Send(ctx, channel.Recipient{ChannelUserID: "919812300001"}, msg.Content{Template: &msg.Template{Name: "hello", Language: msg.TemplateLang{Code: "en"}}}, "k1"); err != nil {
			t.Fatal(err)
		}
		if reqs := graph.requests(); len(reqs) != 1 || reqs[0].Auth != "Bearer legacy-token-1234" {
			t.Fatalf("the Graph API saw %+v", reqs)
		}
		n, err := registry.Reencrypt(ctx, st)
		if err != nil || n != 1 {
			t.Fatalf("Reencrypt = %d, %v; want 1 rewritten", n, err)
		}
		secrets, raw := storedSecrets(t, st, bot, "whatsapp")
		if strings.Contains(raw, "legacy-token") || strings.Contains(raw, "legacy-app") || !secret.IsEncrypted(secrets["token"]) {
			t.Fatalf("after Reencrypt the row is %s", raw)
		}
		reg.Forget(bot, "whatsapp")
		if got, err := reg.Get(ctx, bot, "whatsapp"); err != nil || got.Token != "legacy-token-1234" || got.AppSecret != "legacy-app-secret" {
			t.Fatalf("Get after Reencrypt = %+v, %v", got, err)
		}
		if n, err := registry.Reencrypt(ctx, st); err != nil || n != 0 {
			t.Fatalf("a second Reencrypt rewrote %d, %v", n, err)
		}
	})
}

// TestChannelKeyRotation: "new,old" reads what the old key wrote; Reencrypt moves it to
// the new key, after which the old key can go; a key that is missing is named.
func TestChannelKeyRotation(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := e.DSN(t)
			oldKey, newKey := secret.NewKey(), secret.NewKey()
			keys := func(s string) *secret.Keyring {
				kr, err := secret.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				return kr
			}
			stOld := storetest.OpenWithKeys(t, dsn, keys(oldKey))
			bot := newBot(t, stOld, "aaaaaaaaaaaaaaaa")
			wa := channel.Config{Adapter: "whatsapp", PhoneNumberID: "1", Token: "rotate-me-token", AppSecret: "rotate-me-secret"}
			if err := registry.New(stOld, registry.Options{}).Set(ctx, bot, "whatsapp", wa); err != nil {
				t.Fatal(err)
			}

			stNew := storetest.OpenWithKeys(t, dsn, keys(newKey))
			_, err := registry.New(stNew, registry.Options{}).Get(ctx, bot, "whatsapp")
			var ce *channel.Error
			if !errors.As(err, &ce) || ce.Kind != channel.KindNotConfigured || !strings.Contains(ce.Message, stOld.Secrets().PrimaryID()) {
				t.Fatalf("Get without the old key = %v, want not_configured naming key %s", err, stOld.Secrets().PrimaryID())
			}
			if missing, err := registry.MissingKeys(ctx, stNew); err != nil || len(missing) != 1 || missing[0] != stOld.Secrets().PrimaryID() {
				t.Fatalf("MissingKeys = %v, %v", missing, err)
			}

			both := storetest.OpenWithKeys(t, dsn, keys(newKey+","+oldKey))
			if got, err := registry.New(both, registry.Options{}).Get(ctx, bot, "whatsapp"); err != nil || got != wa {
				t.Fatalf("Get with new,old = %+v, %v", got, err)
			}
			if n, err := registry.Reencrypt(ctx, both); err != nil || n != 1 {
				t.Fatalf("Reencrypt = %d, %v", n, err)
			}
			if got, err := registry.New(stNew, registry.Options{}).Get(ctx, bot, "whatsapp"); err != nil || got != wa {
				t.Fatalf("Get with the new key alone after rotation = %+v, %v", got, err)
			}
			if missing, err := registry.MissingKeys(ctx, stNew); err != nil || len(missing) != 0 {
				t.Fatalf("MissingKeys after rotation = %v, %v", missing, err)
			}
			// Without any key, secrets cannot be written, and the reason says so.
			none := storetest.OpenWithKeys(t, dsn, nil)
			if err := registry.New(none, registry.Options{}).Set(ctx, bot, "whatsapp", wa); !errors.Is(err, secret.ErrNoKey) {
				t.Fatalf("Set without a key = %v, want ErrNoKey", err)
			}
		})
	}
}

// TestRCSServiceAccountThroughRegistry: RCS settings with a service-account key send with
// minted tokens, show only a hint of the key, and keep it when the hint is sent back.
func TestRCSServiceAccountThroughRegistry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		tokens, minted := tokenEndpoint(t)
		var auth atomic.Value
		rbm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth.Store(r.Header.Get("Authorization"))
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"name":"phones/x/agentMessages/y"}`)
		}))
		t.Cleanup(rbm.Close)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		reg := registry.New(st, registry.Options{})
		sa := serviceAccount(t, tokens.URL)
		if err := reg.Set(ctx, bot, "rcs", channel.Config{Adapter: "rcs", BaseURL: rbm.URL, AgentID: "agent", ServiceAccountJSON: sa}); err != nil {
			t.Fatal(err)
		}
		s, err := reg.Sender(ctx, bot, "rcs")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Send(ctx, channel.Recipient{Phone: "+919812300001"}, msg.Content{Text: "hi"}, "k"); err != nil {
			t.Fatal(err)
		}
		if got := auth.Load(); got != "Bearer tok-1" || minted.Load() != 1 {
			t.Fatalf("RBM saw %v after %d mints", got, minted.Load())
		}

		cfg, _ := reg.Get(ctx, bot, "rcs")
		view := registry.NewView("aaaaaaaaaaaaaaaa", "rcs", cfg)
		if view.Config.ServiceAccountJSON != "**** service account agent@parley-test.iam.gserviceaccount.com" {
			t.Fatalf("the key shows as %q", view.Config.ServiceAccountJSON)
		}
		b, _ := json.Marshal(view)
		if strings.Contains(string(b), "PRIVATE") || strings.Contains(string(b), "fixed access token") {
			t.Fatalf("view %s", b)
		}
		// The hint sent back keeps the key; another key replaces it.
		next := registry.KeepSecrets(cfg, registry.Normalize(channel.Config{Adapter: "rcs", BaseURL: rbm.URL, AgentID: "agent2",
			ServiceAccountJSON: view.Config.ServiceAccountJSON}))
		if next.ServiceAccountJSON != cfg.ServiceAccountJSON || next.AgentID != "agent2" {
			t.Fatalf("KeepSecrets with the hint = %+v", next)
		}
		// A fixed token alone still works, with a warning that it expires.
		if err := reg.Set(ctx, bot, "rcs", channel.Config{Adapter: "rcs", BaseURL: rbm.URL, AgentID: "agent", Token: "ya29.fixed"}); err != nil {
			t.Fatal(err)
		}
		cfg, _ = reg.Get(ctx, bot, "rcs")
		if w := strings.Join(registry.Warnings(cfg), "\n"); !strings.Contains(w, "expire") {
			t.Fatalf("warnings for a fixed token: %q", w)
		}
		s, _ = reg.Sender(ctx, bot, "rcs")
		if _, err := s.Send(ctx, channel.Recipient{Phone: "+919812300001"}, msg.Content{Text: "hi"}, "k2"); err != nil || auth.Load() != "Bearer ya29.fixed" {
			t.Fatalf("send with a fixed token: %v, RBM saw %v", err, auth.Load())
		}
	})
}
