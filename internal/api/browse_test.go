package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
)

type runPage struct {
	Runs []struct {
		RunID         string `json:"run_id"`
		FlowKey       string `json:"flow_key"`
		Status        string `json:"status"`
		ChannelUserID string `json:"channel_user_id"`
		CurrentNode   string `json:"current_node"`
	} `json:"runs"`
	Next *string `json:"next_cursor"`
}

func TestAdminRunList(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		e.importFlow(e.a, `{"key": "ask", "start": "q", "nodes": [{"id": "q", "type": "input", "text": "Name?", "save_as": "name"}]}`)
		e.importFlow(e.b, orderFlow)
		trigger := func(nbFlow, phone string) string {
			r := e.do("POST", botPath("v2.0", e.a)+"/flow/"+nbFlow, e.a.APIKey, map[string]string{"user.phone_no": phone, "order_id": "7"})
			wantStatus(t, r, 200, api.CodeSuccess)
			var v struct {
				RunID string `json:"run_id"`
			}
			r.obj(t, &v)
			return v.RunID
		}
		var order []string
		for i := range 5 {
			order = append(order, trigger("order_update", fmt.Sprintf("91987654321%d", i)))
		}
		waiting := trigger("ask", "919876543299")
		// Another bot's run is never listed.
		wantStatus(t, e.do("POST", botPath("v2.0", e.b)+"/flow/order_update", e.b.APIKey, map[string]string{"user.phone_no": "919876543210"}), 200, api.CodeSuccess)

		r := e.admin("GET", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey, nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"name":"a"`) {
			t.Fatalf("bot = %s", r.Obj)
		}
		wantStatus(t, e.admin("GET", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.c.BotKey, nil), 400, api.CodeInvalidBotOrCustomer)
		base := "/admin/v1/customers/" + itoa(e.a.CustomerID) + "/bots/" + e.a.BotKey + "/runs"
		list := func(query string) runPage {
			t.Helper()
			r := e.admin("GET", base+query, nil)
			wantStatus(t, r, 200, api.CodeSuccess)
			var p runPage
			r.obj(t, &p)
			return p
		}
		p := list("")
		if len(p.Runs) != 6 || p.Runs[0].RunID != waiting || p.Runs[5].RunID != order[0] || p.Next != nil {
			t.Fatalf("all runs = %+v", p)
		}
		if p.Runs[0].Status != "waiting" || p.Runs[0].CurrentNode != "q" || p.Runs[0].ChannelUserID != "919876543299" || p.Runs[1].CurrentNode != "" {
			t.Fatalf("summaries = %+v", p.Runs[:2])
		}
		// Filters.
		if p := list("?flow=ASK"); len(p.Runs) != 1 || p.Runs[0].RunID != waiting {
			t.Fatalf("flow filter = %+v", p)
		}
		if p := list("?user=%2B919876543299"); len(p.Runs) != 1 || p.Runs[0].RunID != waiting {
			t.Fatalf("user filter = %+v", p)
		}
		if p := list("?user=910000000000"); len(p.Runs) != 0 {
			t.Fatalf("unknown user = %+v", p)
		}
		if p := list("?status=completed"); len(p.Runs) != 5 {
			t.Fatalf("status filter = %+v", p)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if p := list("?since=" + future); len(p.Runs) != 0 {
			t.Fatalf("since the future = %+v", p)
		}
		if p := list("?until=" + future + "&since=0"); len(p.Runs) != 6 {
			t.Fatalf("until the future = %+v", p)
		}
		// Pages by cursor, without overlap or gap.
		var seen []string
		cursor := ""
		for range 4 {
			p := list("?limit=2&cursor=" + cursor)
			for _, r := range p.Runs {
				seen = append(seen, r.RunID)
			}
			if p.Next == nil {
				break
			}
			cursor = *p.Next
		}
		if len(seen) != 6 || seen[0] != waiting || seen[5] != order[0] {
			t.Fatalf("paged = %v", seen)
		}
		for _, c := range []struct {
			query string
			http  int
			code  int
		}{
			{"?status=lost", 400, api.CodeInvalidInput},
			{"?limit=0", 400, api.CodeInvalidInput},
			{"?limit=201", 400, api.CodeInvalidInput},
			{"?since=yesterday", 400, api.CodeInvalidDate},
			{"?flow=nope", 404, api.CodeNotFound},
		} {
			wantStatus(t, e.admin("GET", base+c.query, nil), c.http, c.code)
		}
	})
}

func TestAdminRunTrace(t *testing.T) {
	eachStepEnv(t, func(t *testing.T, e *env) {
		target := newCRM(t, `{"customer": {"tier": "gold"}}`)
		e.importFlow(e.a, `{"key": "t", "start": "hi", "nodes": [
			{"id": "hi", "type": "message", "text": "Hello {{order_id}}", "buttons": [{"title": "Yes"}], "next": "crm"},
			{"id": "crm", "type": "http", "method": "GET", "url": "`+target.URL+`/c", "save": {"tier": "customer.tier"}, "next": "bye"},
			{"id": "bye", "type": "message", "text": "You are {{tier}}"}]}`)
		r := e.do("POST", botPath("v2.0", e.a)+"/flow/t?wait=true", e.a.APIKey, map[string]string{"user.phone_no": "919876543210", "order_id": "42"})
		wantStatus(t, r, 200, api.CodeSuccess)
		var v struct {
			RunID  string `json:"run_id"`
			Status string `json:"status"`
		}
		r.obj(t, &v)
		if v.Status != "completed" {
			t.Fatalf("run = %s", r.Obj)
		}
		path := "/admin/v1/customers/" + itoa(e.a.CustomerID) + "/bots/" + e.a.BotKey + "/runs/" + v.RunID
		var trace struct {
			RunID string `json:"run_id"`
			Steps []struct {
				Node      string `json:"node"`
				Type      string `json:"type"`
				Outcome   string `json:"outcome"`
				HTTPLogID int64  `json:"http_log_id"`
			} `json:"steps"`
			Messages []struct {
				Text    string `json:"text"`
				Type    string `json:"type"`
				Sender  string `json:"sender"`
				Payload struct {
					Buttons []struct {
						Title string `json:"title"`
					} `json:"buttons"`
				} `json:"payload"`
			} `json:"messages"`
		}
		// The call's log is written in the background: it shows up within moments.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r = e.admin("GET", path, nil)
			wantStatus(t, r, 200, api.CodeSuccess)
			r.obj(t, &trace)
			if len(trace.Steps) == 3 && trace.Steps[1].HTTPLogID > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(trace.Steps) != 3 || trace.Steps[1].Type != "http" || trace.Steps[1].HTTPLogID != 1 || trace.Steps[0].HTTPLogID != 0 {
			t.Fatalf("steps = %s", r.Obj)
		}
		if len(trace.Messages) != 2 || trace.Messages[0].Text != "Hello 42" || trace.Messages[0].Sender != "bot" ||
			len(trace.Messages[0].Payload.Buttons) != 1 || trace.Messages[1].Text != "You are gold" {
			t.Fatalf("messages = %s", r.Obj)
		}
		// The log it links to is the call.
		r = e.admin("GET", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/flows/t/nodes/crm/logs/1", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), v.RunID) {
			t.Fatalf("log 1 = %s", r.Obj)
		}
	})
}

func TestAdminUsersAndConversations(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		for i, name := range []string{"Asha", "asher", "Bilal", "Chen"} {
			r := e.do("POST", botPath("v2.0", e.a)+"/flow/order_update", e.a.APIKey,
				map[string]string{"user.phone_no": fmt.Sprintf("+9198765432%02d", i), "user.user_name": name, "user_type": []string{"vip", "std"}[i%2]})
			wantStatus(t, r, 200, api.CodeSuccess)
		}
		base := "/admin/v1/customers/" + itoa(e.a.CustomerID) + "/bots/" + e.a.BotKey + "/users"
		names := func(query string) (out []string, next *string) {
			t.Helper()
			r := e.admin("GET", base+query, nil)
			wantStatus(t, r, 200, api.CodeSuccess)
			var p struct {
				Users []struct {
					Name string `json:"name"`
				} `json:"users"`
				Next *string `json:"next_cursor"`
			}
			r.obj(t, &p)
			for _, u := range p.Users {
				out = append(out, u.Name)
			}
			return out, p.Next
		}
		for _, c := range []struct {
			query string
			want  string
		}{
			{"", "Asha,asher,Bilal,Chen"},
			{"?search=ash", "Asha,asher"},
			{"?search=ASH", "Asha,asher"},
			{"?search=91987654320", "Asha,asher,Bilal,Chen"},
			{"?search=9198765432%25", ""}, // % is literal
			{"?search=919876543202", "Bilal"},
			{"?attribute_name=user_type&attribute_value=vip", "Asha,Bilal"},
			{"?attribute_name=user_type&attribute_value=vip&search=b", "Bilal"},
		} {
			if got, _ := names(c.query); strings.Join(got, ",") != c.want {
				t.Errorf("users%s = %v, want %s", c.query, got, c.want)
			}
		}
		first, next := names("?limit=3")
		if len(first) != 3 || next == nil {
			t.Fatalf("page 1 = %v %v", first, next)
		}
		if rest, next := names("?limit=3&cursor=" + *next); strings.Join(rest, ",") != "Chen" || next != nil {
			t.Fatalf("page 2 = %v %v", rest, next)
		}
		wantStatus(t, e.admin("GET", base+"?attribute_name=bad%20name&attribute_value=1", nil), 400, api.CodeInvalidInput)
		wantStatus(t, e.admin("GET", base+"?cursor=x", nil), 400, api.CodeInvalidInput)

		// One user, and its conversation as the platform API gives it.
		r := e.admin("GET", base+"/+919876543200", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"name":"Asha"`) {
			t.Fatalf("user = %s", r.Obj)
		}
		wantStatus(t, e.admin("GET", base+"/100", nil), 404, api.CodeNotFound)
		admin := e.admin("GET", base+"/919876543200/conversations", nil)
		platform := e.do("GET", botPath("v1.0", e.a)+"/channel-user/919876543200/conversations", e.a.APIKey, nil)
		wantStatus(t, admin, 200, api.CodeSuccess)
		if string(admin.Obj) != string(platform.Obj) || !strings.Contains(string(admin.Obj), "VIP order") {
			t.Fatalf("admin conversation %s, platform %s", admin.Obj, platform.Obj)
		}
		wantStatus(t, e.admin("GET", base+"/919876543200/conversations?start_date=x", nil), 400, api.CodeInvalidDate)
	})
}

func TestAdminFlowVersionsAndTryIt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		acme := e.a.CustomerID
		e.consoleUser("ann@acme.example", &acme)
		b := e.browser()
		b.signIn(map[string]string{"email": "ann@acme.example", "password": "correct horse battery"})
		flows := "/admin/v1/customers/" + itoa(acme) + "/bots/" + e.a.BotKey + "/flows"
		wantStatus(t, e.admin("POST", flows, orderFlow), 200, api.CodeSuccess)
		wantStatus(t, b.do("POST", flows, strings.Replace(orderFlow, "is on its way", "ships today", 1)), 200, api.CodeSuccess)

		r := b.do("GET", flows+"/order_update/versions", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var vs struct {
			Current  int `json:"current_version"`
			Versions []struct {
				Version     int    `json:"version"`
				PublishedBy string `json:"published_by"`
			} `json:"versions"`
		}
		r.obj(t, &vs)
		if vs.Current != 2 || len(vs.Versions) != 2 || vs.Versions[0].PublishedBy != "ann@acme.example" || vs.Versions[1].PublishedBy != "admin token" {
			t.Fatalf("versions = %s", r.Obj)
		}
		r = b.do("GET", flows+"/order_update/versions/1", nil)
		if r.HTTP != 200 || r.Header.Get("X-Flow-Version") != "1" || !strings.Contains(string(r.Body), "is on its way") {
			t.Fatalf("version 1 = %d %s", r.HTTP, r.Body)
		}
		wantStatus(t, b.do("GET", flows+"/order_update/versions/3", nil), 404, api.CodeNotFound)
		wantStatus(t, b.do("GET", flows+"/order_update/versions/zero", nil), 400, api.CodeInvalidInput)
		wantStatus(t, b.do("GET", flows+"/nope/versions", nil), 404, api.CodeNotFound)

		// Try it: the v2 trigger's rules, with the console's credentials.
		r = b.do("POST", flows+"/order_update/trigger?wait=true", map[string]string{"user.phone_no": "+919876543210", "order_id": "A-1", "user_type": "vip"})
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"status":"completed"`) || !strings.Contains(string(r.Obj), `"flow_version":2`) {
			t.Fatalf("try it = %s", r.Obj)
		}
		wantStatus(t, b.do("POST", flows+"/order_update/trigger", map[string]any{"user.phone_no": "12"}), 400, api.CodeInvalidInput)
		wantStatus(t, b.do("POST", flows+"/order_update/trigger", map[string]any{"user.phone_no": "+919876543210", "x": map[string]any{}}), 400, api.CodeInvalidInput)
		wantStatus(t, b.do("POST", flows+"/nope/trigger", map[string]any{"user.phone_no": "+919876543210"}), 404, api.CodeNotFound)
		// Without the CSRF token the console cannot start a flow.
		wantStatus(t, b.send("POST", flows+"/order_update/trigger", map[string]any{"user.phone_no": "+919876543210"}), 403, api.CodeForbidden)
	})
}
