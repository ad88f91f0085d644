package rcs

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/parleyhq/parley/internal/channel"
)

// Scope is the OAuth2 scope of the RBM API.
const Scope = "https://www.googleapis.com/auth/rcsbusinessmessaging"

// DefaultTokenURL is Google's token endpoint, used when a service-account key names none.
const DefaultTokenURL = "https://oauth2.googleapis.com/token"

// refreshMargin is how long before its expiry an access token is replaced, so a token
// does not run out between being handed out and reaching Google.
const refreshMargin = 2 * time.Minute

// ServiceAccount is what the adapter uses of a Google service-account key (the JSON file
// the Cloud console downloads).
type ServiceAccount struct {
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	// TokenURI is where access tokens are minted; DefaultTokenURL when absent. Tests
	// point it at a fake.
	TokenURI string `json:"token_uri"`
	Type     string `json:"type"`
}

// ParseServiceAccount reads and checks a service-account key: type service_account, a
// client email, an RSA private key in PEM, and an http(s) token_uri. Errors never quote
// the key.
func ParseServiceAccount(raw string) (ServiceAccount, error) {
	var sa ServiceAccount
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&sa); err != nil {
		return ServiceAccount{}, errors.New("not a JSON object (want the service-account key file's content)")
	}
	if dec.More() {
		return ServiceAccount{}, errors.New("more than one JSON value")
	}
	switch {
	case sa.Type != "service_account":
		return ServiceAccount{}, fmt.Errorf("type is %q, want \"service_account\"", sa.Type)
	case strings.TrimSpace(sa.ClientEmail) == "":
		return ServiceAccount{}, errors.New("client_email is missing")
	case strings.TrimSpace(sa.PrivateKey) == "":
		return ServiceAccount{}, errors.New("private_key is missing")
	}
	if _, err := parseRSAKey(sa.PrivateKey); err != nil {
		return ServiceAccount{}, err
	}
	if sa.TokenURI == "" {
		sa.TokenURI = DefaultTokenURL
	}
	u, err := url.Parse(sa.TokenURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ServiceAccount{}, errors.New("token_uri must be an http(s) URL")
	}
	return sa, nil
}

func parseRSAKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("private_key is not a PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("private_key is not an RSA key")
		}
		return rk, nil
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("private_key is not a PKCS #8 or PKCS #1 RSA key")
	}
	return k, nil
}

// tokenSource hands out the bearer token of RBM calls.
type tokenSource interface {
	// token returns a token that is valid now.
	token(ctx context.Context) (string, error)
	// rejected tells the source that RBM refused tok (401). It reports whether a new
	// token can be had, in which case the call is worth one more try.
	rejected(tok string) bool
}

// staticToken is an access token given in the settings: it cannot be renewed.
type staticToken string

func (s staticToken) token(context.Context) (string, error) { return string(s), nil }
func (s staticToken) rejected(string) bool                  { return false }

// accountTokens mints access tokens from a service-account key with the OAuth2
// JWT-bearer grant, and keeps the current one until shortly before it expires or RBM
// refuses it. One mint runs at a time; callers arriving meanwhile wait for its token.
type accountTokens struct {
	conf *jwt.Config
	hc   *http.Client
	now  func() time.Time

	lock chan struct{} // a one-slot semaphore: held while reading, minting or dropping
	tok  string
	// expires is when tok runs out by the clock now (zero: never said).
	expires time.Time
}

func newAccountTokens(sa ServiceAccount, hc *http.Client) *accountTokens {
	return &accountTokens{
		conf: &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), PrivateKeyID: sa.PrivateKeyID,
			Scopes: []string{Scope}, TokenURL: sa.TokenURI},
		hc: hc, now: time.Now, lock: make(chan struct{}, 1),
	}
}

func (a *accountTokens) token(ctx context.Context) (string, error) {
	select {
	case a.lock <- struct{}{}:
	case <-ctx.Done():
		return "", &channel.Error{Kind: channel.KindUnavailable, Retryable: true, Message: "rcs: access token: " + ctx.Err().Error()}
	}
	defer func() { <-a.lock }()
	if a.tok != "" && (a.expires.IsZero() || a.now().Add(refreshMargin).Before(a.expires)) {
		return a.tok, nil
	}
	// The token endpoint is called with the provider client (bounded times, no
	// redirects) and bounded by this call's context.
	tok, err := a.conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, a.hc)).Token()
	if err != nil {
		return "", tokenError(err)
	}
	if tok.AccessToken == "" {
		return "", &channel.Error{Kind: channel.KindAuth, Message: "rcs: the token endpoint answered without an access token"}
	}
	a.tok, a.expires = tok.AccessToken, time.Time{}
	if !tok.Expiry.IsZero() {
		// oauth2 dates the expiry by the wall clock; keep the token's lifetime by ours.
		a.expires = a.now().Add(time.Until(tok.Expiry))
	}
	return a.tok, nil
}

func (a *accountTokens) rejected(tok string) bool {
	a.lock <- struct{}{}
	defer func() { <-a.lock }()
	if a.tok == tok {
		a.tok = ""
	}
	return true
}

// tokenError classifies a failure to mint a token: the endpoint refusing the key is an
// auth failure (retrying will not help), an outage or a network error is retryable.
func tokenError(err error) *channel.Error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		e := &channel.Error{HTTPStatus: re.Response.StatusCode}
		switch s := re.Response.StatusCode; {
		case s == http.StatusTooManyRequests:
			e.Kind, e.Retryable = channel.KindRateLimited, true
		case s >= 500:
			e.Kind, e.Retryable = channel.KindUnavailable, true
		default:
			e.Kind = channel.KindAuth
		}
		if e.Retryable {
			e.RetryAfter = channel.RetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
		}
		msg := fmt.Sprintf("rcs: the token endpoint refused the service account: HTTP %d", re.Response.StatusCode)
		if re.ErrorCode != "" {
			msg += ": " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		} else if re.ErrorCode == "" && len(re.Body) > 0 {
			msg += ": " + channel.Snippet(re.Body)
		}
		e.Message = msg
		return e
	}
	return &channel.Error{Kind: channel.KindUnavailable, Retryable: true, Message: "rcs: access token: " + err.Error()}
}
