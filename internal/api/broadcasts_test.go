package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// withBroadcasts publishes broadcasts (newEnv wires them to its engine), through the
// channel registry when the env has one (withChannels first), else the sandbox. A
// broadcast may have 50 recipients.
func withBroadcasts(t *testing.T, cfg *engine.Config, deps *api.Deps) {
	deps.Broadcasts = broadcast.New(broadcast.Config{Store: deps.Store, Max: 50})
}

// seedV1 is the vendor's v1 broadcast example, as real clients send it.
const seedV1 = `{
"broadcastId": null,
"broadcastTitle": "testing broadcast",
"publishedOn": "2019-06-03T06:48:27.170Z",
"audience": {
"rule": {
"channels": ["whatsapp"],
"channelUserIds": ["919019486731"]
}
},
"payload": {
"type": "direct",
"content": [
{
"type": "text",
"data": {
"message": "this is a test message"
}
},
{
"type": "text",
"data": {
"message": "this is another message"
}
}
]
},
"status": null
}`

type broadcastView struct {
	BroadcastID    int64  `json:"broadcastId"`
	BroadcastTitle string `json:"broadcastTitle"`
	Status         string `json:"status"`
	PublishedOn    string `json:"publishedOn"`
	Duplicate      bool   `json:"duplicate"`
	Totals         struct {
		Recipients int `json:"recipients"`
		Queued     int `json:"queued"`
		Sent       int `json:"sent"`
		Delivered  int `json:"delivered"`
		Read       int `json:"read"`
		Failed     int `json:"failed"`
		Cancelled  int `json:"cancelled"`
	} `json:"totals"`
}

func (e *env) createBroadcast(version string, nb auth.NewBot, body string, hdr ...string) broadcastView {
	e.t.Helper()
	r := e.do("POST", botPath(version, nb)+"/broadcast", nb.APIKey, body, hdr...)
	wantStatus(e.t, r, 200, api.CodeSuccess)
	var v broadcastView
	r.obj(e.t, &v)
	if v.BroadcastID <= 0 {
		e.t.Fatalf("broadcast without an id: %s", r.Obj)
	}
	return v
}

// awaitBroadcast polls a broadcast until it has status want.
func (e *env) awaitBroadcast(nb auth.NewBot, id int64, want string) broadcastView {
	e.t.Helper()
	return e.awaitBroadcastWhere(nb, id, want, func(v broadcastView) bool { return v.Status == want })
}

// awaitBroadcastWhere polls a broadcast until ok (totals of a large broadcast may be a
// recount behind).
func (e *env) awaitBroadcastWhere(nb auth.NewBot, id int64, what string, ok func(broadcastView) bool) broadcastView {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", fmt.Sprintf("%s/broadcast/%d", botPath("v1.0", nb), id), nb.APIKey, nil)
		wantStatus(e.t, r, 200, api.CodeSuccess)
		var v broadcastView
		r.obj(e.t, &v)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("broadcast %d is not %s: %s", id, what, r.Obj)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type recipientsPage struct {
	Recipients []struct {
		ChannelUserID string `json:"channelUserId"`
		Status        string `json:"status"`
		Reason        string `json:"reason"`
	} `json:"recipients"`
	Total int `json:"total"`
}

func (e *env) recipients(nb auth.NewBot, id int64, query string) recipientsPage {
	e.t.Helper()
	r := e.do("GET", fmt.Sprintf("%s/broadcast/%d/recipients%s", botPath("v2.0", nb), id, query), nb.APIKey, nil)
	wantStatus(e.t, r, 200, api.CodeSuccess)
	var p recipientsPage
	r.obj(e.t, &p)
	return p
}

// makeUsers creates users of bot nb through the API trigger.
func (e *env) makeUsers(nb auth.NewBot, phones ...string) {
	e.t.Helper()
	e.importFlow(nb, `{"key": "hello", "start": "end", "nodes": [{"id": "end", "type": "end"}]}`)
	for _, p := range phones {
		wantStatus(e.t, e.do("POST", botPath("v2.0", nb)+"/flow/hello", nb.APIKey, map[string]string{"user.phone_no": p}), 200, api.CodeSuccess)
	}
}

func texts(ms []convMessage) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return strings.Join(out, "|")
}

func TestBroadcastV1(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.makeUsers(e.a, "919019486731", "919019486732")
		e.makeUsers(e.b, "919019486733") // another bot's user is unknown to bot a
		// The seed's body, as sent; the date is in the past, so it goes out at once.
		v := e.createBroadcast("v1.0", e.a, seedV1)
		if v.BroadcastTitle != "testing broadcast" || v.Totals.Recipients != 1 {
			t.Fatalf("created = %+v", v)
		}
		v = e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		if v.Totals.Sent != 1 || v.Totals.Delivered != 1 || v.Totals.Queued != 0 {
			t.Fatalf("published = %+v", v)
		}
		if got := texts(e.conversation(e.a, "919019486731")); got != "this is a test message|this is another message" {
			t.Fatalf("conversation = %q", got)
		}
		// Keys in lower case, as some clients send them; an unknown user fails alone.
		body := strings.NewReplacer("broadcastTitle", "broadcasttitle", "publishedOn", "publishedon", "channelUserIds", "channeluserids",
			`["919019486731"]`, `["+919019486732", "919019486733", "919019486732"]`).Replace(seedV1)
		v = e.createBroadcast("v1.0", e.a, body)
		v = e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		if v.Totals.Recipients != 2 || v.Totals.Sent != 1 || v.Totals.Failed != 1 {
			t.Fatalf("second broadcast = %+v", v)
		}
		p := e.recipients(e.a, v.BroadcastID, "")
		if p.Total != 2 || p.Recipients[0].ChannelUserID != "919019486732" || p.Recipients[0].Status != "delivered" ||
			p.Recipients[1].Status != "failed" || !strings.Contains(p.Recipients[1].Reason, "unknown user") {
			t.Fatalf("recipients = %+v", p)
		}
		if p := e.recipients(e.a, v.BroadcastID, "?status=failed"); p.Total != 1 || p.Recipients[0].ChannelUserID != "919019486733" {
			t.Fatalf("failed recipients = %+v", p)
		}
		// Recipients page by number and by cursor alike, with and without a status.
		recipients := fmt.Sprintf("%s/broadcast/%d/recipients", botPath("v2.0", e.a), v.BroadcastID)
		for _, c := range []struct {
			status string
			want   []string
		}{{"", []string{"919019486732", "919019486733"}}, {"delivered", []string{"919019486732"}}, {"failed", []string{"919019486733"}}} {
			for _, size := range []int{1, 2, 3} {
				if got := e.walk(t, recipients+"?status="+c.status, size, len(c.want)); !slices.Equal(got, c.want) {
					t.Fatalf("recipients (status %q, %d a page) = %v, want %v", c.status, size, got, c.want)
				}
			}
		}
		if got := texts(e.conversation(e.b, "919019486733")); got != "" {
			t.Fatalf("another bot's user got %q", got)
		}
		// Interactive content: buttons, media and a card, in order.
		v = e.createBroadcast("v1.0", e.a, `{"broadcastTitle": "rich", "audience": {"rule": {"channels": ["sandbox"], "channelUserIds": ["919019486731"]}},
			"payload": {"type": "direct", "content": [
				{"type": "buttons", "data": {"message": "Coming?", "buttons": [{"id": "yes", "title": "Yes"}, {"title": "No"}]}},
				{"type": "image", "data": {"url": "https://example.com/a.png", "caption": "Map"}},
				{"type": "card", "data": {"title": "Venue", "description": "Hall 2", "buttons": [{"title": "Directions"}]}}]}}`)
		e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		ms := e.conversation(e.a, "919019486731")
		if len(ms) != 5 || ms[2].Type != "buttons" || ms[3].Type != "image" || ms[4].Type != "card" || !strings.Contains(string(ms[2].Payload), `"Yes"`) {
			t.Fatalf("rich conversation = %+v", ms)
		}
		// Lists, newest first, under both versions and the admin API.
		r := e.do("GET", botPath("v2.0", e.a)+"/broadcast", e.a.APIKey, nil)
		var list struct {
			Broadcasts []broadcastView `json:"broadcasts"`
		}
		r.obj(t, &list)
		if len(list.Broadcasts) != 3 || list.Broadcasts[0].BroadcastTitle != "rich" {
			t.Fatalf("list = %s", r.Obj)
		}
		// Lists and summaries leave the recipient lists out; the full view has them.
		if strings.Contains(string(r.Obj), "channelUserIds") {
			t.Fatalf("the list carries recipient lists: %s", r.Obj)
		}
		one := fmt.Sprintf("%s/broadcast/%d", botPath("v1.0", e.a), v.BroadcastID)
		if r := e.do("GET", one+"?summary=true", e.a.APIKey, nil); strings.Contains(string(r.Obj), "channelUserIds") || !strings.Contains(string(r.Obj), `"recipients":1`) {
			t.Fatalf("summary = %s", r.Obj)
		}
		if r := e.do("GET", one, e.a.APIKey, nil); !strings.Contains(string(r.Obj), `"channelUserIds":["919019486731"]`) {
			t.Fatalf("full view = %s", r.Obj)
		}
		r = e.admin("GET", fmt.Sprintf("/admin/v1/customers/%d/bots/%s/broadcasts/%d", e.a.CustomerID, e.a.BotKey, v.BroadcastID), nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		// Another bot's key cannot read it; another bot has no such broadcast.
		wantStatus(t, e.do("GET", fmt.Sprintf("%s/broadcast/%d", botPath("v1.0", e.a), v.BroadcastID), e.b.APIKey, nil), 403, api.CodeForbidden)
		wantStatus(t, e.do("GET", fmt.Sprintf("%s/broadcast/%d", botPath("v1.0", e.b), v.BroadcastID), e.b.APIKey, nil), 404, api.CodeNotFound)
	}, withBroadcasts)
}

func TestBroadcastScheduleCancelIdempotency(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.makeUsers(e.a, "919019486731", "919019486732")
		at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format("2006-01-02T15:04:05.000Z") }
		body := func(when string) string {
			return strings.Replace(strings.Replace(seedV1, "2019-06-03T06:48:27.170Z", when, 1), `["919019486731"]`, `["919019486731", "919019486732"]`, 1)
		}
		// In the future: scheduled, nothing sent until then.
		v := e.createBroadcast("v1.0", e.a, body(at(1500*time.Millisecond)))
		if v.Status != "SCHEDULED" || v.Totals.Queued != 2 {
			t.Fatalf("scheduled = %+v", v)
		}
		time.Sleep(300 * time.Millisecond)
		if got := texts(e.conversation(e.a, "919019486731")); got != "" {
			t.Fatalf("sent before its time: %q", got)
		}
		e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		if got := texts(e.conversation(e.a, "919019486732")); got != "this is a test message|this is another message" {
			t.Fatalf("after its time: %q", got)
		}
		// Cancelled before its time: nothing is ever sent.
		v = e.createBroadcast("v1.0", e.a, body(at(time.Hour)))
		r := e.do("DELETE", fmt.Sprintf("%s/broadcast/%d", botPath("v2.0", e.a), v.BroadcastID), e.a.APIKey, nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var c broadcastView
		r.obj(t, &c)
		if c.Status != "CANCELLED" || c.Totals.Cancelled != 2 || c.Totals.Queued != 0 {
			t.Fatalf("cancelled = %s", r.Obj)
		}
		// Cancelling again, or a published broadcast, changes nothing.
		r = e.do("DELETE", fmt.Sprintf("%s/broadcast/%d", botPath("v1.0", e.a), v.BroadcastID-1), e.a.APIKey, nil)
		r.obj(t, &c)
		if c.Status != "PUBLISHED" {
			t.Fatalf("cancel a published broadcast = %s", r.Obj)
		}
		wantStatus(t, e.do("DELETE", botPath("v1.0", e.a)+"/broadcast/999", e.a.APIKey, nil), 404, api.CodeNotFound)
		if got := texts(e.conversation(e.a, "919019486731")); got != "this is a test message|this is another message" {
			t.Fatalf("after cancelling: %q", got)
		}
		// The same Idempotency-Key returns the first broadcast, once.
		first := e.createBroadcast("v1.0", e.a, body(at(time.Hour)), "Idempotency-Key", "campaign-7")
		again := e.createBroadcast("v1.0", e.a, body(at(time.Hour)), "Idempotency-Key", "campaign-7")
		if again.BroadcastID != first.BroadcastID || !again.Duplicate || first.Duplicate {
			t.Fatalf("first %+v, retry %+v", first, again)
		}
		other := e.createBroadcast("v1.0", e.b, body(at(time.Hour)), "Idempotency-Key", "campaign-7")
		if other.BroadcastID == first.BroadcastID || other.Duplicate {
			t.Fatalf("another bot's key collided: %+v", other)
		}
	}, withBroadcasts)
}

func TestBroadcastBadInput(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.makeUsers(e.a, "919019486731")
		tooMany := make([]string, 51) // withBroadcasts allows 50
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("9190194867%02d", i)
		}
		manyJSON, _ := json.Marshal(tooMany)
		v1 := func(old, new string) string { return strings.Replace(seedV1, old, new, 1) }
		for _, c := range []struct {
			name, version, body, mention string
		}{
			{"no audience", "v1.0", v1(`"audience": {
"rule": {
"channels": ["whatsapp"],
"channelUserIds": ["919019486731"]
}
},`, ""), "audience"},
			{"empty audience", "v1.0", v1(`["919019486731"]`, `[]`), "channelUserIds"},
			{"no channels", "v1.0", v1(`["whatsapp"]`, `[]`), "channels"},
			{"unknown channel", "v1.0", v1(`["whatsapp"]`, `["whatsapp", "telegram"]`), "telegram"},
			{"too many recipients", "v1.0", v1(`["919019486731"]`, string(manyJSON)), "maximum of 50"},
			{"empty content", "v1.0", v1(`"content": [`, `"content": [], "x": [`), "content is empty"},
			{"unknown content type", "v1.0", v1(`"type": "text"`, `"type": "hologram"`), "payload.content[0]"},
			{"content without data", "v1.0", v1(`"data": {
"message": "this is a test message"
}`, `"data": null`), "data is required"},
			{"misspelt data field", "v1.0", v1(`"message": "this is a test message"`, `"mesage": "x"`), "mesage"},
			{"template in v1", "v1.0", v1(`"type": "direct"`, `"type": "whatsapp_template"`), "payload.type"},
			{"malformed date", "v1.0", v1("2019-06-03T06:48:27.170Z", "03/06/2019"), "publishedOn"},
			{"not JSON", "v1.0", `{"broadcastTitle": `, "JSON"},
			{"v2 without a phone", "v2.0", `{"platform": "whatsapp", "users": [{"phoneNumber": "919019486731"}, {"email": "a@b.c"}],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "t", "language": {"code": "en"}}}]}}`, "users[1].phoneNumber"},
			{"v2 with a bad phone", "v2.0", `{"platform": "whatsapp", "users": [{"phoneNumber": "12"}],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "t", "language": {"code": "en"}}}]}}`, "users[0].phoneNumber"},
			{"v2 template without a name", "v2.0", `{"platform": "whatsapp", "users": [{"phoneNumber": "919019486731"}],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"language": {"code": "en"}}}]}}`, "template.name"},
			{"v2 template without a language", "v2.0", `{"platform": "whatsapp", "users": [{"phoneNumber": "919019486731"}],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "t"}}]}}`, "template.language"},
			{"v2 other platform", "v2.0", `{"platform": "telegram", "users": [{"phoneNumber": "919019486731"}],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "t", "language": {"code": "en"}}}]}}`, "platform"},
			{"v2 without users", "v2.0", `{"platform": "whatsapp", "users": [],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "t", "language": {"code": "en"}}}]}}`, "users"},
			{"v2 NUL in a name", "v2.0", `{"platform": "whatsapp", "users": [{"phoneNumber": "919019486731", "firstName": "a\u0000b"}],
				"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "t", "language": {"code": "en"}}}]}}`, "firstName"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.do("POST", botPath(c.version, e.a)+"/broadcast", e.a.APIKey, c.body)
				wantStatus(t, r, 400, api.CodeInvalidInput)
				if !strings.Contains(r.Status.Details, c.mention) {
					t.Fatalf("details %q do not mention %q", r.Status.Details, c.mention)
				}
			})
		}
		// Nothing was stored, and no user was created or changed.
		r := e.do("GET", botPath("v1.0", e.a)+"/broadcast", e.a.APIKey, nil)
		if strings.Contains(string(r.Obj), "broadcastId") {
			t.Fatalf("a refused broadcast was stored: %s", r.Obj)
		}
		if attrs := e.userAttrs(e.a, "919019486731"); attrs["user.first_name"] != "" {
			t.Fatalf("a refused v2 broadcast changed a user: %v", attrs)
		}
		wantStatus(t, e.do("GET", botPath("v1.0", e.a)+"/broadcast/abc", e.a.APIKey, nil), 400, api.CodeInvalidInput)
		wantStatus(t, e.do("GET", botPath("v1.0", e.a)+"/broadcast/1/recipients?status=lost", e.a.APIKey, nil), 400, api.CodeInvalidInput)
		wantStatus(t, e.do("GET", botPath("v1.0", e.a)+"/broadcast/1/recipients?page_number=0", e.a.APIKey, nil), 400, api.CodeInvalidPage)
	}, withBroadcasts)
}

// seedV2 is the vendor's v2 ("wrapper") example with a header image, a body parameter
// and a quick-reply button whose payload starts a flow.
const seedV2 = `{
 "broadcastId": null,
 "broadcastTitle": "testing broadcast",
 "publishedOn": "2021-10-08T03:29:27.170Z",
 "platform": "whatsapp",
 "users": [
 {
 "phonenumber": "%s",
 "email": "jahnavi.suthar123@engati.com",
 "organization": "abc",
 "title": "123",
 "lastName": "suthar",
 "firstName": "jahnavi 1",
 "userName": ""
 }
 ],
 "payload": {
 "type": "whatsapp_template",
 "content": [
 {
 "type": "template",
 "template": {
 "components": [
 {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/poster.png"}}]},
 {"type": "body", "parameters": [{"type": "text", "text": "1"}]},
 {"type": "button", "index": 0, "sub_type": "quick_reply", "parameters": [{"type": "payload", "payload": "flow_thanks||data_personx_response=declined_invoice_no_12345"}]}
 ],
 "namespace": "d44848c7-08b0-4a15-9c53-fbe0b4gft3182",
 "name": "test_template",
 "language": {"code": "en", "policy": "deterministic"}
 }
 }
 ]
 },
 "status": null
}`

func TestBroadcastV2TemplateThroughGraph(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		e.importFlow(e.a, `{"key": "thanks", "start": "t", "nodes": [{"id": "t", "type": "message", "text": "Noted: {{personx_response}}"}]}`)
		v := e.createBroadcast("v2.0", e.a, fmt.Sprintf(seedV2, "+91 90194 86731"))
		v = e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		if v.Totals.Sent != 1 || v.Totals.Failed != 0 {
			t.Fatalf("v2 = %+v", v)
		}
		// The user was created with the request's attributes.
		attrs := e.userAttrs(e.a, "919019486731")
		for k, want := range map[string]string{"user.email": "jahnavi.suthar123@engati.com", "user.first_name": "jahnavi 1",
			"user.last_name": "suthar", "user.organization": "abc", "user.title": "123", "user.phone_no": "+919019486731", "user.user_name": "919019486731"} {
			if attrs[k] != want {
				t.Errorf("%s = %q, want %q", k, attrs[k], want)
			}
		}
		// The template reached the Cloud API in its shape: no namespace, string index,
		// the header image, body parameter and button payload as given.
		sent := graph.sent()
		if len(sent) != 1 || sent[0].To != "919019486731" || sent[0].Type != "template" {
			t.Fatalf("graph got %+v", sent)
		}
		tpl, _ := json.Marshal(sent[0].Body["template"])
		for _, want := range []string{`"name":"test_template"`, `"link":"https://example.com/poster.png"`, `"text":"1"`,
			`"index":"0"`, `"payload":"flow_thanks||data_personx_response=declined_invoice_no_12345"`} {
			if !strings.Contains(string(tpl), want) {
				t.Errorf("template %s lacks %s", tpl, want)
			}
		}
		// Meta's statuses move the recipient on: delivered, then read.
		wamid := graph.sent()[0]
		_ = wamid
		p := e.recipients(e.a, v.BroadcastID, "")
		if p.Recipients[0].Status != "sent" {
			t.Fatalf("before statuses: %+v", p)
		}
		msgs := e.conversation(e.a, "919019486731")
		if len(msgs) != 1 || msgs[0].ProviderID == "" {
			t.Fatalf("conversation = %+v", msgs)
		}
		for _, st := range []string{"delivered", "read"} {
			body := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
				"metadata":{"display_phone_number":"15550000000","phone_number_id":%q},"statuses":[{"id":%q,"status":%q,"timestamp":"1700000000","recipient_id":"919019486731"}]}}]}]}`,
				waPhoneID, msgs[0].ProviderID, st)
			wantStatus(t, e.postWhatsApp(e.a, []byte(body), waAppSecret), 200, api.CodeSuccess)
		}
		v = e.awaitBroadcastWhere(e.a, v.BroadcastID, "read", func(v broadcastView) bool { return v.Totals.Read == 1 })
		if v.Status != "PUBLISHED" || v.Totals.Delivered != 1 || v.Totals.Sent != 1 {
			t.Fatalf("after statuses = %+v", v)
		}
		// A tap on the template's button starts the flow with the payload's data.
		tap := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
			"metadata":{"display_phone_number":"15550000000","phone_number_id":%q},"contacts":[{"profile":{"name":"Jahnavi"},"wa_id":"919019486731"}],
			"messages":[{"from":"919019486731","id":"wamid.tap1","timestamp":"1700000100","type":"button","context":{"from":"15550000000","id":%q},
			"button":{"payload":"flow_thanks||data_personx_response=declined_invoice_no_12345","text":"Decline"}}]}}]}]}`, waPhoneID, msgs[0].ProviderID)
		r := e.postWhatsApp(e.a, []byte(tap), waAppSecret)
		wantStatus(t, r, 200, api.CodeSuccess)
		var res webhookResult
		r.obj(t, &res)
		if len(res.Started) != 1 {
			t.Fatalf("tap = %s", r.Obj)
		}
		run := e.waitRun(e.a, res.Started[0])
		if run.FlowKey != "thanks" {
			t.Fatalf("tap started %+v", run)
		}
		if e.userAttrs(e.a, "919019486731")["personx_response"] != "declined_invoice_no_12345" {
			t.Fatal("the payload's data was not set")
		}
	}, withChannels, withBroadcasts)
}

func TestBroadcastWhatsAppWindow(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		e.makeUsers(e.a, "919019486731") // never wrote: outside the window
		// 919019486732 writes to the bot: inside the window.
		in := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
			"metadata":{"display_phone_number":"15550000000","phone_number_id":%q},"contacts":[{"profile":{"name":"Ann"},"wa_id":"919019486732"}],
			"messages":[{"from":"919019486732","id":"wamid.in1","timestamp":"%d","type":"text","text":{"body":"hi"}}]}}]}]}`, waPhoneID, time.Now().Unix())
		wantStatus(t, e.postWhatsApp(e.a, []byte(in), waAppSecret), 200, api.CodeSuccess)
		v := e.createBroadcast("v1.0", e.a, strings.Replace(seedV1, `["919019486731"]`, `["919019486731", "919019486732"]`, 1))
		v = e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED")
		if v.Totals.Sent != 1 || v.Totals.Failed != 1 {
			t.Fatalf("window broadcast = %+v", v)
		}
		p := e.recipients(e.a, v.BroadcastID, "?status=failed")
		if len(p.Recipients) != 1 || p.Recipients[0].ChannelUserID != "919019486731" || !strings.Contains(p.Recipients[0].Reason, "24-hour") {
			t.Fatalf("refused = %+v", p)
		}
		sent := graph.sent()
		if len(sent) != 2 || sent[0].To != "919019486732" || sent[1].To != "919019486732" {
			t.Fatalf("graph got %+v", sent)
		}
	}, withChannels, withBroadcasts)
}

// TestBroadcastCancelDuring cancels a broadcast while it is being sent through a paced
// provider: what was sent stays sent, the batch in flight (8 messages in these tests)
// finishes, the rest is cancelled, and nothing goes out after.
func TestBroadcastCancelDuring(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		// Pace the number at 20 messages a second, so the fan-out takes a while.
		wantStatus(t, e.admin("PUT", channelPath(e.a, "whatsapp"), map[string]any{"adapter": "whatsapp", "base_url": graph.URL,
			"phone_number_id": waPhoneID, "rate_per_second": 20}), 200, api.CodeSuccess)
		var users []map[string]string
		for i := range 40 {
			users = append(users, map[string]string{"phoneNumber": fmt.Sprintf("9190194867%02d", i)})
		}
		usersJSON, _ := json.Marshal(users)
		v := e.createBroadcast("v2.0", e.a, fmt.Sprintf(`{"platform": "whatsapp", "users": %s, "payload": {"type": "whatsapp_template",
			"content": [{"type": "template", "template": {"name": "t", "language": {"code": "en", "policy": "deterministic"}}}]}}`, usersJSON))
		deadline := time.Now().Add(5 * time.Second)
		for len(graph.sent()) < 5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		r := e.do("DELETE", fmt.Sprintf("%s/broadcast/%d", botPath("v2.0", e.a), v.BroadcastID), e.a.APIKey, nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		atCancel := len(graph.sent())
		time.Sleep(time.Second) // the batch in flight finishes
		final := len(graph.sent())
		time.Sleep(500 * time.Millisecond)
		if n := len(graph.sent()); n != final || final > atCancel+8 || final >= 40 {
			t.Fatalf("sent %d at the cancel, %d a second later, then %d (of 40)", atCancel, final, n)
		}
		v = e.awaitBroadcast(e.a, v.BroadcastID, "CANCELLED")
		if v.Totals.Sent != final || v.Totals.Cancelled != 40-final || v.Totals.Queued != 0 {
			t.Fatalf("cancelled during: %+v, %d sent", v, final)
		}
		// Each recipient got at most one message.
		seen := map[string]bool{}
		for _, c := range graph.sent() {
			if seen[c.To] {
				t.Fatalf("%s got two messages", c.To)
			}
			seen[c.To] = true
		}
	}, withChannels, withBroadcasts)
}

// TestBroadcastTwoInstances runs two instances (engine and broadcast publisher each) on one
// PostgreSQL schema: scheduled broadcasts that come due together are each published by
// one of them, once.
func TestBroadcastTwoInstances(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: the two-instance test needs PostgreSQL", storetest.EnvPostgres)
	}
	st := storetest.Open(t, storetest.PostgresDSN(t))
	e := newEnv(t, st, withBroadcasts)
	ctx := context.Background()
	other := engine.New(st, engine.Config{InstanceID: "second-instance", Sweep: 50 * time.Millisecond})
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop(context.Background()) })
	second := broadcast.New(broadcast.Config{Store: st, Channels: engine.SandboxOnly{}, Sends: other, InstanceID: "second-instance",
		Sweep: 50 * time.Millisecond, Max: 50})
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background()) })

	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("9190194867%02d", i))
	}
	e.makeUsers(e.a, ids...)
	idsJSON, _ := json.Marshal(ids)
	due := time.Now().Add(time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
	var created []int64
	for range 6 {
		body := strings.NewReplacer("2019-06-03T06:48:27.170Z", due, `["919019486731"]`, string(idsJSON)).Replace(seedV1)
		created = append(created, e.createBroadcast("v1.0", e.a, body).BroadcastID)
	}
	for _, id := range created {
		v := e.awaitBroadcast(e.a, id, "PUBLISHED")
		if v.Totals.Sent != 40 {
			t.Fatalf("broadcast %d: %+v", id, v)
		}
	}
	// Every user got each broadcast's two messages once: 12 messages each.
	for _, id := range ids {
		if n := len(e.conversation(e.a, id)); n != 12 {
			t.Fatalf("%s got %d messages, want 12", id, n)
		}
	}
}

// A broadcast whose acceptance an instance that died left half-way is seen by no one:
// not read, listed or cancelled, and its Idempotency-Key answers 409 until the sweeper
// drops it, after which a retry stores it anew.
func TestBroadcastAbandonedAcceptance(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.makeUsers(e.a, "919019486731")
		bot, err := e.st.Bot(ctx, e.a.CustomerID, e.a.BotKey)
		if err != nil {
			t.Fatal(err)
		}
		nb := store.NewBroadcast{Broadcast: store.Broadcast{BotID: bot.ID, APIVersion: 1, Request: []byte(seedV1), Content: []byte(`[]`),
			Channels: []string{"whatsapp"}, PublishAt: time.Now().UnixMilli(), CreatedAt: time.Now().UnixMilli()},
			RecipientIDs: []string{"919019486731", "919019486732"}, IdempotencyKey: "campaign-9"}
		id, _, err := e.st.BeginBroadcast(ctx, nb, "instance-that-died", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.AddBroadcastRecipients(ctx, e.st.Writer(), id, nb.RecipientIDs[1:], 1, nb.CreatedAt); err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("%s/broadcast/%d", botPath("v1.0", e.a), id)
		wantStatus(t, e.do("GET", path, e.a.APIKey, nil), 404, api.CodeNotFound)
		wantStatus(t, e.do("GET", path+"/recipients", e.a.APIKey, nil), 404, api.CodeNotFound)
		wantStatus(t, e.do("DELETE", path, e.a.APIKey, nil), 404, api.CodeNotFound)
		if r := e.do("GET", botPath("v1.0", e.a)+"/broadcast", e.a.APIKey, nil); strings.Contains(string(r.Obj), "broadcastId") {
			t.Fatalf("an accepting broadcast is listed: %s", r.Obj)
		}
		r := e.do("POST", botPath("v1.0", e.a)+"/broadcast", e.a.APIKey, seedV1, "Idempotency-Key", "campaign-9")
		wantStatus(t, r, 409, api.CodeConflict)
		if !strings.Contains(r.Status.Details, "still being accepted") {
			t.Fatalf("409 says %q", r.Status.Details)
		}

		// This instance's sweeper drops it once the owner has been silent for the liveness
		// window.
		sweeper := broadcast.New(broadcast.Config{Store: e.st, Channels: noChannels{}, Sends: e.eng, InstanceID: e.eng.InstanceID(),
			Liveness: 300 * time.Millisecond, Sweep: 20 * time.Millisecond})
		if err := sweeper.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sweeper.Stop(ctx) }()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r = e.do("POST", botPath("v1.0", e.a)+"/broadcast", e.a.APIKey, seedV1, "Idempotency-Key", "campaign-9")
			if r.HTTP == 200 {
				break
			}
			wantStatus(t, r, 409, api.CodeConflict)
			if time.Now().After(deadline) {
				t.Fatal("the abandoned broadcast was not dropped")
			}
		}
		var v broadcastView
		r.obj(t, &v)
		if v.Duplicate || v.Totals.Recipients != 1 {
			t.Fatalf("retry after the drop = %s", r.Obj)
		}
		var left int
		if err := e.st.Writer().QueryRow(ctx, `SELECT COUNT(*) FROM broadcast_recipients WHERE channel_user_id = '919019486732'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("%d recipients of the dropped broadcast are left", left)
		}
	}, withBroadcasts)
}

// noChannels serves no channel: the sweeper under test publishes nothing.
type noChannels struct{}

func (noChannels) Sender(context.Context, int64, string) (channel.Sender, error) {
	return nil, errors.New("no channels here")
}

// A large broadcast's fan-out first refreshes PostgreSQL's statistics of the recipients,
// which arrived all at once (store.AnalyzeRecipients): without them the planner's
// choices halved the fan-out's rate and made the other bots' triggers wait.
func TestBroadcastRefreshesStatistics(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: this test needs PostgreSQL", storetest.EnvPostgres)
	}
	st := storetest.Open(t, storetest.PostgresDSN(t))
	e := newEnv(t, st, func(t *testing.T, cfg *engine.Config, deps *api.Deps) {
		deps.Broadcasts = broadcast.New(broadcast.Config{Store: deps.Store, Max: 2000})
	})
	const n = 1000
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("9190000%05d", i))
	}
	idsJSON, _ := json.Marshal(ids)
	v := e.createBroadcast("v1.0", e.a, strings.Replace(seedV1, `["919019486731"]`, string(idsJSON), 1))
	if v = e.awaitBroadcast(e.a, v.BroadcastID, "PUBLISHED"); v.Totals.Recipients != n || v.Totals.Failed != n {
		t.Fatalf("published = %+v; want %d recipients, all unknown users", v, n)
	}
	var tuples float64
	if err := st.PgxPool().QueryRow(context.Background(),
		`SELECT reltuples FROM pg_class WHERE oid = 'broadcast_recipients'::regclass`).Scan(&tuples); err != nil {
		t.Fatal(err)
	}
	if tuples < n {
		t.Fatalf("the planner's estimate of broadcast_recipients is %v rows after the fan-out; want at least %d", tuples, n)
	}
}
