package api_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
)

func TestPlatformAuth(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		users := botPath("v1.0", e.a) + "/users?attribute_name=x&attribute_value=y"
		basic := func(user, pass string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		}
		tests := []struct {
			name     string
			path     string
			header   string // Authorization; "" sends none
			wantHTTP int
			wantCode int
		}{
			{"own key", users, "Basic " + e.a.APIKey, 200, api.CodeSuccess},
			{"lowercase scheme", users, "basic " + e.a.APIKey, 200, api.CodeSuccess},
			{"RFC 7617 key as password", users, basic("anything", e.a.APIKey), 200, api.CodeSuccess},
			{"RFC 7617 key as user", users, basic(e.a.APIKey, ""), 200, api.CodeSuccess},
			{"bearer", users, "Bearer " + e.a.APIKey, 200, api.CodeSuccess},
			{"query parameter", users + "&authorization=" + url.QueryEscape("Basic "+e.a.APIKey), "", 200, api.CodeSuccess},
			{"no key", users, "", 401, api.CodeUnauthorized},
			{"unknown key", users, "Basic nonsense-key", 401, api.CodeUnauthorized},
			{"empty basic", users, "Basic", 401, api.CodeUnauthorized},
			{"basic and spaces", users, "Basic    ", 401, api.CodeUnauthorized},
			{"other scheme", users, "Digest " + e.a.APIKey, 401, api.CodeUnauthorized},
			{"bad base64 credentials", users, basic("x", "not-a-key"), 401, api.CodeUnauthorized},
			{"huge header", users, "Basic " + strings.Repeat("k", 5000), 401, api.CodeUnauthorized},
			{"other bot's key", users, "Basic " + e.b.APIKey, 403, api.CodeForbidden},
			{"other customer's key", users, "Basic " + e.c.APIKey, 403, api.CodeForbidden},
			{"unknown customer", "/bot-api/v1.0/customer/999999/bot/" + e.a.BotKey + "/users?attribute_name=x&attribute_value=y", "Basic " + e.a.APIKey, 400, api.CodeInvalidBotOrCustomer},
			{"unknown bot", "/bot-api/v1.0/customer/" + itoa(e.a.CustomerID) + "/bot/0000000000000000/users?attribute_name=x&attribute_value=y", "Basic " + e.a.APIKey, 400, api.CodeInvalidBotOrCustomer},
			{"customer not a number", "/bot-api/v1.0/customer/abc/bot/" + e.a.BotKey + "/users?attribute_name=x&attribute_value=y", "Basic " + e.a.APIKey, 400, api.CodeInvalidBotOrCustomer},
			{"unknown key on unknown pair is still 401", "/bot-api/v1.0/customer/999999/bot/x/users", "Basic nope", 401, api.CodeUnauthorized},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var r response
				if tt.header == "" {
					r = e.do("GET", tt.path, "", nil)
				} else {
					r = e.do("GET", tt.path, "", nil, "Authorization", tt.header)
				}
				wantStatus(t, r, tt.wantHTTP, tt.wantCode)
				if tt.wantCode != api.CodeSuccess && r.Status.Details == "" {
					t.Errorf("error without details: %s", r.Body)
				}
			})
		}
	})
}

func TestKeyLifecycle(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		users := botPath("v1.0", e.a) + "/users?attribute_name=x&attribute_value=y"
		wantStatus(t, e.do("GET", users, e.a.APIKey, nil), 200, api.CodeSuccess)

		// A key created through the admin API works at once.
		r := e.admin("POST", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/keys", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var second struct {
			ID     int64  `json:"id"`
			APIKey string `json:"api_key"`
		}
		r.obj(t, &second)
		wantStatus(t, e.do("GET", users, second.APIKey, nil), 200, api.CodeSuccess)

		// Revoking through the admin API takes effect at once in this process.
		wantStatus(t, e.admin("DELETE", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/keys/"+itoa(second.ID), nil), 200, api.CodeSuccess)
		wantStatus(t, e.do("GET", users, second.APIKey, nil), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("GET", users, e.a.APIKey, nil), 200, api.CodeSuccess)

		// A revocation by another process (the CLI writes the database directly) is seen
		// once the short verification cache expires.
		if err := e.st.RevokeAPIKey(ctx, mustBot(t, e, e.a).ID, e.a.KeyID); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Second)
		for e.do("GET", users, e.a.APIKey, nil).HTTP != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatal("revoked key still accepted after 1 s")
			}
			time.Sleep(10 * time.Millisecond)
		}

		// Regenerate: the old secret fails, the new one works, the id stays.
		r = e.admin("POST", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/keys/"+itoa(e.a.KeyID)+"/regenerate", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var regen struct {
			ID     int64  `json:"id"`
			APIKey string `json:"api_key"`
		}
		r.obj(t, &regen)
		if regen.ID != e.a.KeyID || regen.APIKey == e.a.APIKey {
			t.Fatalf("regenerate = %+v; want the same id with a new key", regen)
		}
		wantStatus(t, e.do("GET", users, e.a.APIKey, nil), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("GET", users, regen.APIKey, nil), 200, api.CodeSuccess)

		// Keys are listed by id and hint, never in full.
		r = e.admin("GET", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/keys", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if strings.Contains(string(r.Body), regen.APIKey) || strings.Contains(string(r.Body), second.APIKey) {
			t.Fatalf("key list shows a key: %s", r.Body)
		}
	})
}

func TestAdminAuth(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		wantStatus(t, e.do("GET", "/admin/v1/customers", "", nil), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("GET", "/admin/v1/customers", "", nil, "Authorization", "Bearer wrong"), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("GET", "/admin/v1/customers", "", nil, "Authorization", "Basic "+adminToken), 401, api.CodeUnauthorized)
		// A platform key is not an admin token.
		wantStatus(t, e.do("GET", "/admin/v1/customers", "", nil, "Authorization", "Bearer "+e.a.APIKey), 401, api.CodeUnauthorized)
		r := e.admin("GET", "/admin/v1/customers", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Body), `"acme"`) || !strings.Contains(string(r.Body), `"globex"`) {
			t.Fatalf("customers = %s", r.Body)
		}
	})
}
