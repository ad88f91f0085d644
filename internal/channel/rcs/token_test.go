package rcs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
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
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
)

// rsaKey is one RSA key for the whole package's tests (generating one takes a while).
func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// serviceAccountJSON is a service-account key file whose token_uri is tokenURL.
func serviceAccountJSON(t testing.TB, tokenURL string) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey(t))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "parley-test", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "rbm-agent@parley-test.iam.gserviceaccount.com", "client_id": "1234",
		"token_uri": tokenURL,
	})
	return string(b)
}

// fakeTokenEndpoint plays Google's OAuth2 token endpoint for the JWT-bearer grant: it
// checks the assertion's signature and claims and hands out "tok-1", "tok-2", ...
type fakeTokenEndpoint struct {
	t       testing.TB
	srv     *httptest.Server
	minted  atomic.Int32
	status  atomic.Int32 // answer this status instead of a token when non-zero
	expires int          // expires_in of the tokens handed out
}

func newTokenEndpoint(t testing.TB, expiresIn int) *fakeTokenEndpoint {
	f := &fakeTokenEndpoint{t: t, expires: expiresIn}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if s := f.status.Load(); s != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s))
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	if err := f.check(r.PostForm.Get("assertion")); err != nil {
		f.t.Errorf("token endpoint: %v", err)
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	n := f.minted.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, f.expires)
}

// check verifies an RS256 JWT: the service account's key signed it, for the RBM scope,
// addressed to this endpoint.
func (f *fakeTokenEndpoint) check(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("the assertion is not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&rsaKey(f.t).PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	var head struct{ Alg, Kid string }
	var claims struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	c, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(h, &head) != nil || json.Unmarshal(c, &claims) != nil {
		return errors.New("undecodable header or claims")
	}
	if head.Alg != "RS256" || head.Kid != "kid-1" || claims.Iss != "rbm-agent@parley-test.iam.gserviceaccount.com" ||
		claims.Scope != Scope || claims.Aud != f.srv.URL || claims.Exp <= claims.Iat {
		return fmt.Errorf("header %+v, claims %+v", head, claims)
	}
	return nil
}

// tokenRBM is a fake RBM API that accepts only the tokens in valid, recording the
// bearer token and messageId of every request.
type tokenRBM struct {
	mu      sync.Mutex
	valid   map[string]bool
	tokens  []string
	msgIDs  []string
	srv     *httptest.Server
	refused atomic.Int32
}

func newTokenRBM(t testing.TB) *tokenRBM {
	f := &tokenRBM{valid: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		f.tokens = append(f.tokens, tok)
		f.msgIDs = append(f.msgIDs, r.URL.Query().Get("messageId"))
		ok := f.valid[tok]
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			f.refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`)
			return
		}
		fmt.Fprint(w, okReply("x"))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *tokenRBM) accept(tokens ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.valid = map[string]bool{}
	for _, t := range tokens {
		f.valid[t] = true
	}
}

func (f *tokenRBM) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens...), append([]string(nil), f.msgIDs...)
}

// clock is real time moved forward by the test.
type clock struct{ skew atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *clock) advance(d time.Duration) { c.skew.Add(int64(d)) }

func accountClient(t *testing.T, tokenURL, rbmURL string) (*Client, *clock) {
	t.Helper()
	c, err := New(channel.Config{BaseURL: rbmURL, AgentID: testAgent, ServiceAccountJSON: serviceAccountJSON(t, tokenURL)}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clk := &clock{}
	c.tokens.(*accountTokens).now = clk.now
	return c, clk
}

func send(c *Client, key string) error {
	_, err := c.Send(context.Background(), testRecipient, msg.Content{Text: "hello"}, key)
	return err
}

// TestServiceAccountTokenExpires: the client mints a token, reuses it while it is valid
// and mints the next one as it expires, so RCS keeps working past Google's hour.
func TestServiceAccountTokenExpires(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rbm := newTokenRBM(t)
	rbm.accept("tok-1", "tok-2")
	c, clk := accountClient(t, tokens.srv.URL, rbm.srv.URL)

	for i := range 3 {
		if err := send(c, fmt.Sprint("m", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if n := tokens.minted.Load(); n != 1 {
		t.Fatalf("%d tokens minted for three sends within the hour, want 1", n)
	}
	// An hour later tok-1 has expired (Google would refuse it): the next send mints tok-2.
	clk.advance(time.Hour)
	rbm.accept("tok-2")
	if err := send(c, "m3"); err != nil {
		t.Fatalf("send after the token expired: %v", err)
	}
	if ok, err := c.Reachable(context.Background(), testRecipient); err != nil || !ok {
		got, _ := rbm.seen()
		t.Fatalf("capability check after the token expired: %v, %v (%v, %d minted)", ok, err, got, tokens.minted.Load())
	}
	got, _ := rbm.seen()
	want := []string{"tok-1", "tok-1", "tok-1", "tok-2", "tok-2"}
	if strings.Join(got, ",") != strings.Join(want, ",") || rbm.refused.Load() != 0 {
		t.Fatalf("RBM saw tokens %v (%d refused), want %v", got, rbm.refused.Load(), want)
	}
	// Shortly before expiry a token is replaced, not sent to run out on the way.
	clk.advance(time.Hour - time.Minute)
	rbm.accept("tok-3")
	if err := send(c, "m4"); err != nil || tokens.minted.Load() != 3 {
		t.Fatalf("send a minute before expiry: %v, %d tokens minted", err, tokens.minted.Load())
	}
}

// TestServiceAccountRefreshOn401: a token RBM refuses before its time (revoked, clock
// skew) is replaced once and the call made again with the same messageId; a second
// refusal fails as an auth error without a loop.
func TestServiceAccountRefreshOn401(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rbm := newTokenRBM(t)
	rbm.accept("tok-1")
	c, _ := accountClient(t, tokens.srv.URL, rbm.srv.URL)
	if err := send(c, "first"); err != nil {
		t.Fatal(err)
	}
	rbm.accept("tok-2") // tok-1 is revoked though not expired
	if err := send(c, "second"); err != nil {
		t.Fatalf("send with a stale token: %v", err)
	}
	got, ids := rbm.seen()
	if strings.Join(got, ",") != "tok-1,tok-1,tok-2" || ids[1] != ids[2] {
		t.Fatalf("RBM saw tokens %v, message ids %v; want tok-1,tok-1,tok-2 with the retry under the same id", got, ids)
	}

	rbm.accept() // nothing is accepted any more
	err := send(c, "third")
	var ce *channel.Error
	if !errors.As(err, &ce) || ce.Kind != channel.KindAuth || ce.Retryable {
		t.Fatalf("send refused twice: %v, want a non-retryable auth error", err)
	}
	if got, _ := rbm.seen(); len(got) != 5 || tokens.minted.Load() != 3 {
		t.Fatalf("RBM saw %v and %d tokens were minted; want one retry with one new token", got, tokens.minted.Load())
	}
}

// TestStaticTokenIsNotRetried: a fixed token cannot be renewed, so a 401 is final.
func TestStaticTokenIsNotRetried(t *testing.T) {
	rbm := newTokenRBM(t)
	c, err := New(channel.Config{BaseURL: rbm.srv.URL, AgentID: testAgent, Token: "ya29.expired"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = send(c, "k")
	var ce *channel.Error
	if !errors.As(err, &ce) || ce.Kind != channel.KindAuth {
		t.Fatalf("error %v, want auth", err)
	}
	if got, _ := rbm.seen(); len(got) != 1 {
		t.Fatalf("RBM saw %d calls, want 1", len(got))
	}
}

// TestServiceAccountConcurrentSends: sends arriving together share one mint.
func TestServiceAccountConcurrentSends(t *testing.T) {
	tokens := newTokenEndpoint(t, 3600)
	rbm := newTokenRBM(t)
	rbm.accept("tok-1")
	c, _ := accountClient(t, tokens.srv.URL, rbm.srv.URL)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := send(c, fmt.Sprint("c", i)); err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n := tokens.minted.Load(); n != 1 {
		t.Fatalf("%d tokens minted for concurrent sends, want 1", n)
	}
}

// TestTokenEndpointFailures: a refused key is an auth failure (no use retrying); an
// outage of the token endpoint is retried. Neither reaches RBM.
func TestTokenEndpointFailures(t *testing.T) {
	for _, tt := range []struct {
		status    int
		kind      channel.Kind
		retryable bool
	}{
		{http.StatusBadRequest, channel.KindAuth, false},
		{http.StatusUnauthorized, channel.KindAuth, false},
		{http.StatusServiceUnavailable, channel.KindUnavailable, true},
		{http.StatusTooManyRequests, channel.KindRateLimited, true},
	} {
		tokens := newTokenEndpoint(t, 3600)
		tokens.status.Store(int32(tt.status))
		rbm := newTokenRBM(t)
		c, _ := accountClient(t, tokens.srv.URL, rbm.srv.URL)
		err := send(c, "k")
		var ce *channel.Error
		if !errors.As(err, &ce) || ce.Kind != tt.kind || ce.Retryable != tt.retryable || ce.HTTPStatus != tt.status {
			t.Errorf("token endpoint %d: error %#v, want kind %s retryable %v", tt.status, err, tt.kind, tt.retryable)
		}
		if got, _ := rbm.seen(); len(got) != 0 {
			t.Errorf("token endpoint %d: RBM was called %d times", tt.status, len(got))
		}
	}
	// The endpoint down altogether.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	c, _ := accountClient(t, deadURL, "http://127.0.0.1:9")
	var ce *channel.Error
	if err := send(c, "k"); !errors.As(err, &ce) || ce.Kind != channel.KindUnavailable || !ce.Retryable {
		t.Errorf("token endpoint unreachable: %v, want retryable unavailability", err)
	}
}

func TestParseServiceAccount(t *testing.T) {
	good := serviceAccountJSON(t, "https://oauth2.example.com/token")
	var m map[string]any
	_ = json.Unmarshal([]byte(good), &m)
	with := func(k string, v any) string {
		c := map[string]any{}
		for kk, vv := range m {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	ecKey := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\nOF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n-----END PRIVATE KEY-----\n"
	tests := []struct {
		name, raw, err string
	}{
		{"good", good, ""},
		{"default token uri", with("token_uri", nil), ""},
		{"not JSON", "EAAG-not-json", "not a JSON object"},
		{"two values", good + good, "more than one JSON value"},
		{"wrong type", with("type", "authorized_user"), `type is "authorized_user"`},
		{"no email", with("client_email", nil), "client_email is missing"},
		{"no key", with("private_key", nil), "private_key is missing"},
		{"key not PEM", with("private_key", "abc"), "not a PEM block"},
		{"EC key", with("private_key", ecKey), "not an RSA key"},
		{"token uri not http", with("token_uri", "file:///etc/passwd"), "token_uri must be an http(s) URL"},
	}
	for _, tt := range tests {
		sa, err := ParseServiceAccount(tt.raw)
		if tt.err == "" {
			if err != nil || sa.ClientEmail == "" || sa.TokenURI == "" {
				t.Errorf("%s: %+v, %v", tt.name, sa.ClientEmail, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: the error quotes the key: %v", tt.name, err)
		}
	}
	if sa, _ := ParseServiceAccount(with("token_uri", nil)); sa.TokenURI != DefaultTokenURL {
		t.Errorf("token_uri defaults to %q, want %q", sa.TokenURI, DefaultTokenURL)
	}
}
