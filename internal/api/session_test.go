package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/console"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// browser is a console client: a cookie jar and the session's CSRF token, as the web
// app holds them.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	e.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{e: e, c: &http.Client{Jar: jar}}
}

// send makes a request with the cookie jar; hdr are extra header name/value pairs.
func (b *browser) send(method, path string, body any, hdr ...string) response {
	b.e.t.Helper()
	var rd io.Reader
	if body != nil {
		s, ok := body.(string)
		if !ok {
			s = jsonString(body)
		}
		rd = strings.NewReader(s)
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, rd)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{HTTP: res.StatusCode, Header: res.Header, Body: raw}
	var env struct {
		Status api.Status      `json:"status"`
		Obj    json.RawMessage `json:"responseObject"`
	}
	if json.Unmarshal(raw, &env) == nil {
		out.Status, out.Obj = env.Status, env.Obj
	}
	return out
}

// do is send with the CSRF token, as the console sends every request.
func (b *browser) do(method, path string, body any) response {
	b.e.t.Helper()
	return b.send(method, path, body, "X-CSRF-Token", b.csrf)
}

type sessionObj struct {
	User struct {
		ID         *int64 `json:"id"`
		Email      string `json:"email"`
		Role       string `json:"role"`
		CustomerID *int64 `json:"customer_id"`
	} `json:"user"`
	CSRFToken string `json:"csrf_token"`
}

// signIn signs the browser in with body and keeps the CSRF token.
func (b *browser) signIn(body any) sessionObj {
	b.e.t.Helper()
	r := b.send("POST", "/admin/v1/session", body)
	wantStatus(b.e.t, r, 200, api.CodeSuccess)
	var s sessionObj
	r.obj(b.e.t, &s)
	if s.CSRFToken == "" {
		b.e.t.Fatalf("sign-in without a CSRF token: %s", r.Body)
	}
	b.csrf = s.CSRFToken
	return s
}

// consoleUser creates a console account with the admin token.
func (e *env) consoleUser(email string, customerID *int64) {
	e.t.Helper()
	r := e.admin("POST", "/admin/v1/users", map[string]any{"email": email, "password": "correct horse battery", "customer_id": customerID})
	wantStatus(e.t, r, 200, api.CodeSuccess)
}

func TestConsoleSignIn(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		acme := e.a.CustomerID
		e.consoleUser("ops@example.com", nil)
		e.consoleUser("Ann@Acme.example", &acme)
		for _, c := range []struct {
			name string
			body string
			hdr  []string
			http int
			code int
			role string
		}{
			{"admin token", `{"admin_token": "` + adminToken + `"}`, nil, 200, api.CodeSuccess, "operator"},
			{"operator account", `{"email": "ops@example.com", "password": "correct horse battery"}`, nil, 200, api.CodeSuccess, "operator"},
			{"customer account, email in any case", `{"email": " ann@ACME.example", "password": "correct horse battery"}`, nil, 200, api.CodeSuccess, "customer"},
			{"wrong token", `{"admin_token": "nope"}`, nil, 401, api.CodeUnauthorized, ""},
			{"wrong password", `{"email": "ops@example.com", "password": "correct horse batterY"}`, nil, 401, api.CodeUnauthorized, ""},
			{"unknown email", `{"email": "who@example.com", "password": "correct horse battery"}`, nil, 401, api.CodeUnauthorized, ""},
			{"both ways at once", `{"admin_token": "` + adminToken + `", "email": "ops@example.com", "password": "x"}`, nil, 400, api.CodeInvalidInput, ""},
			{"nothing", `{}`, nil, 400, api.CodeInvalidInput, ""},
			{"misspelt field", `{"admin_tokn": "` + adminToken + `"}`, nil, 400, api.CodeInvalidInput, ""},
			{"not JSON", `admin`, nil, 400, api.CodeInvalidInput, ""},
			{"from another site", `{"admin_token": "` + adminToken + `"}`, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403, api.CodeForbidden, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				b := e.browser()
				r := b.send("POST", "/admin/v1/session", c.body, c.hdr...)
				wantStatus(t, r, c.http, c.code)
				if c.role == "" {
					if len(r.Header.Values("Set-Cookie")) > 0 {
						t.Fatalf("a refused sign-in set a cookie: %v", r.Header.Values("Set-Cookie"))
					}
					return
				}
				var s sessionObj
				r.obj(t, &s)
				if s.User.Role != c.role || s.CSRFToken == "" {
					t.Fatalf("session = %s", r.Obj)
				}
				if c.role == "customer" && (s.User.CustomerID == nil || *s.User.CustomerID != acme || s.User.Email != "ann@acme.example") {
					t.Fatalf("customer session = %s", r.Obj)
				}
				cookie := r.Header.Get("Set-Cookie")
				for _, want := range []string{"parley_session=", "Path=/", "HttpOnly", "SameSite=Lax"} {
					if !strings.Contains(cookie, want) {
						t.Fatalf("cookie %q lacks %s", cookie, want)
					}
				}
				if strings.Contains(cookie, "Secure") {
					t.Fatalf("cookie over plain HTTP is Secure: %q", cookie)
				}
				// The session reads back, with the same CSRF token.
				r = b.send("GET", "/admin/v1/session", nil)
				wantStatus(t, r, 200, api.CodeSuccess)
				var again sessionObj
				r.obj(t, &again)
				if again.CSRFToken != s.CSRFToken || again.User.Role != c.role {
					t.Fatalf("session read back = %s", r.Obj)
				}
			})
		}
		// Behind a TLS-terminating proxy the cookie is Secure.
		r := e.browser().send("POST", "/admin/v1/session", `{"admin_token": "`+adminToken+`"}`, "X-Forwarded-Proto", "https")
		if !strings.Contains(r.Header.Get("Set-Cookie"), "Secure") {
			t.Fatalf("cookie behind https is not Secure: %q", r.Header.Get("Set-Cookie"))
		}
		// Without a session: 401.
		wantStatus(t, e.browser().send("GET", "/admin/v1/session", nil), 401, api.CodeUnauthorized)
		wantStatus(t, e.browser().send("GET", "/admin/v1/customers", nil), 401, api.CodeUnauthorized)
	})
}

func TestConsoleCSRFAndSignOut(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		b := e.browser()
		b.signIn(map[string]string{"admin_token": adminToken})
		customers := "/admin/v1/customers"
		// Reads need no token.
		wantStatus(t, b.send("GET", customers, nil), 200, api.CodeSuccess)
		for _, c := range []struct {
			name string
			hdr  []string
		}{
			{"no token", nil},
			{"wrong token", []string{"X-CSRF-Token", "x" + b.csrf}},
			{"right token, other site", []string{"X-CSRF-Token", b.csrf, "Sec-Fetch-Site", "cross-site"}},
			{"right token, other origin", []string{"X-CSRF-Token", b.csrf, "Origin", "https://evil.example"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := b.send("POST", customers, map[string]string{"name": "evil"}, c.hdr...)
				wantStatus(t, r, 403, api.CodeForbidden)
				if r.Status.Desc != "CSRF_FAILED" {
					t.Fatalf("desc = %s", r.Body)
				}
			})
		}
		r := b.send("POST", customers, map[string]string{"name": "initech"}, "X-CSRF-Token", b.csrf, "Sec-Fetch-Site", "same-origin")
		wantStatus(t, r, 200, api.CodeSuccess)
		// Nothing refused was stored.
		r = b.send("GET", customers, nil)
		if strings.Contains(string(r.Obj), "evil") || !strings.Contains(string(r.Obj), "initech") {
			t.Fatalf("customers = %s", r.Obj)
		}
		// Bearer callers (scripts) need no CSRF token: the header is not sent by browsers on their own.
		wantStatus(t, e.admin("POST", customers, map[string]string{"name": "hooli"}), 200, api.CodeSuccess)
		// Sign-out needs the token, then ends the session.
		wantStatus(t, b.send("DELETE", "/admin/v1/session", nil), 403, api.CodeForbidden)
		r = b.do("DELETE", "/admin/v1/session", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		wantStatus(t, b.send("GET", customers, nil), 401, api.CodeUnauthorized)
		wantStatus(t, b.send("GET", "/admin/v1/session", nil), 401, api.CodeUnauthorized)
	})
}

func TestConsoleSignInLimit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.consoleUser("ops@example.com", nil)
		e.consoleUser("dev@example.com", nil)
		b := e.browser()
		bad := map[string]string{"email": "ops@example.com", "password": "guess guess guess"}
		for i := 0; i < 10; i++ {
			wantStatus(t, b.send("POST", "/admin/v1/session", bad), 401, api.CodeUnauthorized)
		}
		// The email's failures are used up: even the right password is refused for now.
		r := b.send("POST", "/admin/v1/session", map[string]string{"email": "ops@example.com", "password": "correct horse battery"})
		wantStatus(t, r, 429, api.CodeRateLimited)
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 15*60+1 {
			t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
		}
		// Another account from the same address still signs in, until the address has
		// failed 20 times.
		b.signIn(map[string]string{"email": "dev@example.com", "password": "correct horse battery"})
		for i := 0; i < 10; i++ {
			wantStatus(t, b.send("POST", "/admin/v1/session", map[string]string{"admin_token": "wrong"}), 401, api.CodeUnauthorized)
		}
		wantStatus(t, b.send("POST", "/admin/v1/session", map[string]string{"admin_token": adminToken}), 429, api.CodeRateLimited)
	})
}

func TestConsoleAccounts(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		acme, globex := e.a.CustomerID, e.c.CustomerID
		ops := e.browser()
		ops.signIn(map[string]string{"admin_token": adminToken})
		for _, c := range []struct {
			name string
			body any
			http int
			code int
		}{
			{"short password", map[string]any{"email": "x@example.com", "password": "short"}, 400, api.CodeInvalidInput},
			{"bad email", map[string]any{"email": "not an email", "password": "long enough password"}, 400, api.CodeInvalidInput},
			{"named email", map[string]any{"email": "Ann <ann@example.com>", "password": "long enough password"}, 400, api.CodeInvalidInput},
			{"unknown customer", map[string]any{"email": "x@example.com", "password": "long enough password", "customer_id": 999}, 400, api.CodeInvalidInput},
			{"unknown field", map[string]any{"email": "x@example.com", "password": "long enough password", "role": "operator"}, 400, api.CodeInvalidInput},
			{"customer user", map[string]any{"email": "ann@acme.example", "password": "long enough password", "customer_id": acme}, 200, api.CodeSuccess},
			{"taken email", map[string]any{"email": "ANN@acme.example", "password": "long enough password"}, 409, api.CodeConflict},
			{"other customer's user", map[string]any{"email": "bob@globex.example", "password": "long enough password", "customer_id": globex}, 200, api.CodeSuccess},
		} {
			t.Run(c.name, func(t *testing.T) { wantStatus(t, ops.do("POST", "/admin/v1/users", c.body), c.http, c.code) })
		}
		r := ops.do("GET", "/admin/v1/users", nil)
		var list struct {
			Users []struct {
				ID         int64  `json:"id"`
				Email      string `json:"email"`
				Role       string `json:"role"`
				CustomerID *int64 `json:"customer_id"`
			} `json:"users"`
		}
		r.obj(t, &list)
		if len(list.Users) != 2 || list.Users[0].Email != "ann@acme.example" || list.Users[0].Role != "customer" || *list.Users[0].CustomerID != acme {
			t.Fatalf("users = %s", r.Obj)
		}
		if strings.Contains(string(r.Body), "argon2") || strings.Contains(string(r.Body), "password") {
			t.Fatalf("the list shows password hashes: %s", r.Body)
		}
		ann, bob := list.Users[0].ID, list.Users[1].ID

		b := e.browser()
		b.signIn(map[string]string{"email": "ann@acme.example", "password": "long enough password"})
		// A customer user cannot manage accounts, customers or other accounts' passwords.
		wantStatus(t, b.do("GET", "/admin/v1/users", nil), 403, api.CodeForbidden)
		wantStatus(t, b.do("POST", "/admin/v1/users", map[string]any{"email": "z@example.com", "password": "long enough password"}), 403, api.CodeForbidden)
		wantStatus(t, b.do("POST", "/admin/v1/customers", map[string]any{"name": "mine"}), 403, api.CodeForbidden)
		wantStatus(t, b.do("PATCH", "/admin/v1/customers/"+itoa(acme), map[string]any{"http_rate": 1000}), 403, api.CodeForbidden)
		wantStatus(t, b.do("POST", "/admin/v1/bots", map[string]any{"customer": "globex", "name": "x"}), 403, api.CodeForbidden)
		wantStatus(t, b.do("PUT", "/admin/v1/users/"+itoa(bob)+"/password", map[string]any{"password": "another long password"}), 403, api.CodeForbidden)
		// It sees its own customer only.
		r = b.do("GET", "/admin/v1/customers", nil)
		if !strings.Contains(string(r.Obj), `"customer_id":`+itoa(acme)) || strings.Contains(string(r.Obj), `"customer_id":`+itoa(globex)) {
			t.Fatalf("customers seen by acme's user = %s", r.Obj)
		}
		// It changes its own password; that ends its sessions.
		wantStatus(t, b.do("PUT", "/admin/v1/users/"+itoa(ann)+"/password", map[string]any{"password": "a brand new password"}), 200, api.CodeSuccess)
		wantStatus(t, b.do("GET", "/admin/v1/customers", nil), 401, api.CodeUnauthorized)
		b.signIn(map[string]string{"email": "ann@acme.example", "password": "a brand new password"})
		// Deleting the account ends its sessions at once.
		wantStatus(t, ops.do("DELETE", "/admin/v1/users/"+itoa(ann), nil), 200, api.CodeSuccess)
		wantStatus(t, b.do("GET", "/admin/v1/customers", nil), 401, api.CodeUnauthorized)
		wantStatus(t, ops.do("DELETE", "/admin/v1/users/"+itoa(ann), nil), 404, api.CodeNotFound)
		wantStatus(t, ops.do("DELETE", "/admin/v1/users/abc", nil), 400, api.CodeInvalidInput)
	})
}

// TestConsoleCustomerIsolation walks every documented admin route under a customer with
// the session of another customer's user: each one is refused, whatever the method, and
// the same routes on its own customer are not.
func TestConsoleCustomerIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		acme := e.a.CustomerID
		e.consoleUser("ann@acme.example", &acme)
		b := e.browser()
		b.signIn(map[string]string{"email": "ann@acme.example", "password": "correct horse battery"})
		e.importFlow(e.c, orderFlow)
		e.importFlow(e.a, orderFlow)

		var doc struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(e.do("GET", "/openapi.json", "", nil).Body, &doc); err != nil {
			t.Fatal(err)
		}
		param := regexp.MustCompile(`\{[^}]+\}`)
		fill := func(path string, cid int64, botKey string) string {
			return param.ReplaceAllStringFunc(path, func(p string) string {
				switch p {
				case "{cid}":
					return itoa(cid)
				case "{botKey}":
					return botKey
				case "{flowKey}":
					return "order_update"
				case "{nodeId}":
					return "crm"
				case "{channel}":
					return "whatsapp"
				}
				return "1"
			})
		}
		n := 0
		for path, ops := range doc.Paths {
			if !strings.HasPrefix(path, "/admin/v1/customers/{cid}") {
				continue
			}
			for method := range ops {
				method = strings.ToUpper(method)
				n++
				other := b.do(method, fill(path, e.c.CustomerID, e.c.BotKey), "{}")
				if other.HTTP != 403 || other.Status.Code != api.CodeForbidden {
					t.Errorf("%s %s as another customer's user: HTTP %d %s", method, path, other.HTTP, other.Body)
				}
				if strings.Contains(string(other.Body), e.c.BotKey) {
					t.Errorf("%s %s leaked the other bot: %s", method, path, other.Body)
				}
				if method != "GET" {
					continue // changing acme's own settings is not this test's business
				}
				own := b.do(method, fill(path, acme, e.a.BotKey), nil)
				if own.HTTP == 403 || own.HTTP == 401 {
					t.Errorf("%s %s on its own customer: HTTP %d %s", method, path, own.HTTP, own.Body)
				}
			}
		}
		if n < 25 {
			t.Fatalf("only %d customer routes documented", n)
		}
	})
}

// clock is a settable time for session expiry tests.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.UnixMilli(c.now.Load()) }
func (c *clock) advance(d time.Duration) { c.now.Add(d.Milliseconds()) }
func withConsoleClock(c *clock) envOption {
	return func(t *testing.T, cfg *engine.Config, deps *api.Deps) {
		deps.Console = console.New(console.Config{Store: deps.Store, AdminToken: deps.AdminToken, Now: c.Now})
	}
}

func TestConsoleSessionExpiry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		c := &clock{}
		c.now.Store(time.Now().UnixMilli())
		e := newEnv(t, st, withConsoleClock(c))
		b := e.browser()
		b.signIn(map[string]string{"admin_token": adminToken})
		// Used within the idle limit, a session lives on past the first idle limit, up to
		// the absolute one...
		step := console.SessionIdle - time.Hour
		var age time.Duration
		for age+step < console.SessionMax {
			c.advance(step)
			age += step
			wantStatus(t, b.send("GET", "/admin/v1/customers", nil), 200, api.CodeSuccess)
		}
		// ...but not past it.
		c.advance(console.SessionMax - age)
		wantStatus(t, b.send("GET", "/admin/v1/customers", nil), 401, api.CodeUnauthorized)
		// Left idle, a fresh session ends after SessionIdle.
		b.signIn(map[string]string{"admin_token": adminToken})
		c.advance(console.SessionIdle + time.Minute)
		wantStatus(t, b.send("GET", "/admin/v1/customers", nil), 401, api.CodeUnauthorized)

		// A session opened with the admin token ends when the server's token changes.
		b.signIn(map[string]string{"admin_token": adminToken})
		other := api.New(api.Deps{Store: st, AdminToken: "rotated-token", Engine: e.eng})
		srv := httptest.NewServer(other)
		t.Cleanup(srv.Close)
		req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/customers", nil)
		for _, ck := range b.c.Jar.Cookies(mustURL(t, e.srv.URL)) {
			req.AddCookie(ck)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("session of the old admin token on a server with a new one: HTTP %d", res.StatusCode)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
