package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/api"
)

// TestBroadcastAdminCreate: the admin API (the console's New broadcast) takes the v1
// body, or with ?version=2 the v2 one, for a bot with admin credentials: the broadcast goes
// out like a platform one, a bad body is a 400 naming the field with nothing stored, and it
// needs credentials for that bot.
func TestBroadcastAdminCreate(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.makeUsers(e.a, "919019486731")
		path := fmt.Sprintf("/admin/v1/customers/%d/bots/%s/broadcasts", e.a.CustomerID, e.a.BotKey)
		r := e.admin("POST", path, seedV1)
		wantStatus(t, r, 200, api.CodeSuccess)
		var v broadcastView
		r.obj(t, &v)
		if v.BroadcastID <= 0 || v.BroadcastTitle != "testing broadcast" || v.Totals.Recipients != 1 {
			t.Fatalf("created = %s", r.Obj)
		}
		v = e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		if v.Totals.Sent != 1 {
			t.Fatalf("published = %+v", v)
		}
		// The same Idempotency-Key gives the same broadcast back.
		first := e.do("POST", path, "", seedV1, "Authorization", "Bearer "+adminToken, "Idempotency-Key", "console-1")
		again := e.do("POST", path, "", seedV1, "Authorization", "Bearer "+adminToken, "Idempotency-Key", "console-1")
		var a, b broadcastView
		first.obj(t, &a)
		again.obj(t, &b)
		if a.BroadcastID != b.BroadcastID || !b.Duplicate {
			t.Fatalf("a retry made broadcast %d after %d (duplicate %v)", b.BroadcastID, a.BroadcastID, b.Duplicate)
		}

		r = e.admin("POST", path, strings.Replace(seedV1, `"channels": ["whatsapp"]`, `"channels": ["fax"]`, 1))
		wantStatus(t, r, 400, api.CodeInvalidInput)
		if !strings.Contains(r.Status.Details, "fax") {
			t.Fatalf("unknown channel: %+v", r.Status)
		}
		list := e.admin("GET", path, nil)
		var l struct {
			Broadcasts []broadcastView `json:"broadcasts"`
		}
		list.obj(t, &l)
		if len(l.Broadcasts) != 2 {
			t.Fatalf("the bot has %d broadcasts, want 2 (the refused one stored nothing): %s", len(l.Broadcasts), list.Obj)
		}
		// ?version=2 takes the v2 body: its users are created as the broadcast is stored.
		r = e.admin("POST", path+"?version=2", fmt.Sprintf(seedV2, "+91 90194 86799"))
		wantStatus(t, r, 200, api.CodeSuccess)
		r.obj(t, &v)
		if v.Totals.Recipients != 1 {
			t.Fatalf("v2 created = %s", r.Obj)
		}
		wantStatus(t, e.admin("POST", path+"?version=3", seedV1), 400, api.CodeInvalidInput)
		wantStatus(t, e.admin("POST", path+"?version=2", seedV1), 400, api.CodeInvalidInput)
		// Credentials: none is a 401; a bot's API key is not an admin credential.
		wantStatus(t, e.do("POST", path, "", seedV1), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("POST", path, e.a.APIKey, seedV1), 401, api.CodeUnauthorized)
	}, withBroadcasts)
}
