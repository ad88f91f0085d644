package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

const fixtureDir = "../../../../shared/fixtures/whatsapp"

func sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	const secret = "app-secret-123"
	good := sign(body, secret)
	tests := []struct {
		name   string
		body   []byte
		header string
		secret string
		want   bool
	}{
		{"good", body, good, secret, true},
		{"upper-case hex", body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), secret, true},
		{"body changed", append([]byte(" "), body...), good, secret, false},
		{"wrong secret", body, good, "other-secret", false},
		{"missing header", body, "", secret, false},
		{"empty secret", body, sign(body, ""), "", false},
		{"no prefix", body, strings.TrimPrefix(good, "sha256="), secret, false},
		{"sha1 prefix", body, "sha1=" + strings.TrimPrefix(good, "sha256="), secret, false},
		{"malformed hex", body, "sha256=zz" + good[9:], secret, false},
		{"odd-length hex", body, good[:len(good)-1], secret, false},
		{"truncated", body, good[:len(good)-2], secret, false},
		{"prefix only", body, "sha256=", secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifySignature(tt.body, tt.header, tt.secret); got != tt.want {
				t.Errorf("VerifySignature = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyHandshake(t *testing.T) {
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name      string
		q         url.Values
		token     string
		challenge string
		ok        bool
	}{
		{"good", q("hub.mode", "subscribe", "hub.verify_token", "vt-1", "hub.challenge", "1158201444"), "vt-1", "1158201444", true},
		{"wrong token", q("hub.mode", "subscribe", "hub.verify_token", "vt-2", "hub.challenge", "1"), "vt-1", "", false},
		{"wrong mode", q("hub.mode", "unsubscribe", "hub.verify_token", "vt-1", "hub.challenge", "1"), "vt-1", "", false},
		{"no mode", q("hub.verify_token", "vt-1", "hub.challenge", "1"), "vt-1", "", false},
		{"empty configured token", q("hub.mode", "subscribe", "hub.verify_token", "", "hub.challenge", "1"), "", "", false},
		{"no challenge", q("hub.mode", "subscribe", "hub.verify_token", "vt-1"), "vt-1", "", false},
		{"token prefix only", q("hub.mode", "subscribe", "hub.verify_token", "vt", "hub.challenge", "1"), "vt-1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := VerifyHandshake(tt.q, tt.token)
			if c != tt.challenge || ok != tt.ok {
				t.Errorf("VerifyHandshake = %q, %v; want %q, %v", c, ok, tt.challenge, tt.ok)
			}
		})
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if os.IsNotExist(err) {
		t.Skipf("fixture %s not present", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ts(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// asha is the sender of most fixtures.
func asha(typ string) channel.Inbound {
	return channel.Inbound{
		ProviderMessageID: "wamid.HBgMOTE5ODEyMzAwMDAxFQIAEhggQTE",
		From:              "919812300001",
		Name:              "Asha Rao",
		Type:              typ,
		Timestamp:         ts(1763900000),
	}
}

func with(in channel.Inbound, f func(*channel.Inbound)) channel.Inbound { f(&in); return in }

func TestParseWebhookFixtures(t *testing.T) {
	tests := map[string]Batch{
		"text.json": {Messages: []channel.Inbound{with(asha("text"), func(in *channel.Inbound) {
			in.Text = "Where is my order A1?"
		})}},
		"button.json": {Messages: []channel.Inbound{with(asha("button"), func(in *channel.Inbound) {
			in.Text = "Decline"
			in.Payload = "flow_EBAE1F6090D54CC3B7689F02C04A004F||data_personx_response=declined_invoice_no_12345"
		})}},
		"button_reply.json": {Messages: []channel.Inbound{with(asha("interactive"), func(in *channel.Inbound) {
			in.Text, in.Payload = "Yes", "flow_order_update||data_choice=yes"
		})}},
		"list_reply.json": {Messages: []channel.Inbound{with(asha("interactive"), func(in *channel.Inbound) {
			in.Text, in.Payload = "Medium", "size_m"
		})}},
		"image.json": {Messages: []channel.Inbound{with(asha("image"), func(in *channel.Inbound) {
			in.Text = "Damaged box"
			in.Media = &msg.Media{Type: "image", URL: "wa-media:1480932465566", Caption: "Damaged box"}
		})}},
		"flow_reply.json": {Messages: []channel.Inbound{with(asha("interactive"), func(in *channel.Inbound) {
			in.Text = "Sent"
			in.Payload = `{"flow_token": "t0k3n", "email": "asha@example.com"}`
		})}},
		"unsupported.json": {Messages: []channel.Inbound{with(asha("unsupported"), func(in *channel.Inbound) {
			in.Unsupported = "Message type unknown (code 131051)"
		})}},
		"username_only.json": {Messages: []channel.Inbound{{
			ProviderMessageID: "wamid.USERNAME1", From: "", UserID: "IN.5021337", Name: "Kim",
			Type: "text", Text: "hi, no number shown", Timestamp: ts(1763900020),
		}}},
		"multiple.json": {Messages: []channel.Inbound{
			{ProviderMessageID: "wamid.MULTI1", From: "919812300001", Name: "Asha Rao", Type: "text", Text: "first", Timestamp: ts(1763900000)},
			{ProviderMessageID: "wamid.MULTI2", From: "918888800002", Name: "Ravi K", Type: "text", Text: "second", Timestamp: ts(1763900000)},
		}},
		"status_delivered.json": {Statuses: []channel.Status{{
			ProviderMessageID: "wamid.OUTBOUND0001", Status: "delivered", Recipient: "919812300001", Timestamp: ts(1763900005),
		}}},
		"status_read.json": {Statuses: []channel.Status{{
			ProviderMessageID: "wamid.OUTBOUND0001", Status: "read", Recipient: "919812300001", Timestamp: ts(1763900009),
		}}},
		"status_failed.json": {Statuses: []channel.Status{{
			ProviderMessageID: "wamid.OUTBOUND0002", Status: "failed", Recipient: "919812300001", Timestamp: ts(1763900011),
			ErrorCode: 131047, ErrorTitle: "Re-engagement message",
		}}},
	}

	// Every fixture on disk must have an expectation, so a new one cannot go untested.
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if len(files) == 0 {
		t.Skip("no WhatsApp fixtures at " + fixtureDir)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("fixture %s has no expectation in this test", filepath.Base(f))
		}
	}

	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			body := readFixture(t, name)
			got, err := ParseWebhook(body)
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if !reflect.DeepEqual(got.PhoneNumberIDs, []string{"104242"}) {
				t.Errorf("PhoneNumberIDs = %v", got.PhoneNumberIDs)
			}
			checkBatch(t, got, &want)
		})
	}
}

// checkBatch compares got with want, and checks each message's Raw separately: it must
// be that message's own JSON.
func checkBatch(t *testing.T, got, want *Batch) {
	t.Helper()
	if len(got.Messages) != len(want.Messages) {
		t.Fatalf("%d messages, want %d: %+v", len(got.Messages), len(want.Messages), got.Messages)
	}
	for i := range got.Messages {
		g := got.Messages[i]
		var raw struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(g.Raw, &raw); err != nil || raw.ID != g.ProviderMessageID {
			t.Errorf("message %d: Raw %s is not the message's own JSON", i, g.Raw)
		}
		g.Raw = nil
		if !reflect.DeepEqual(g, want.Messages[i]) {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, g, want.Messages[i])
		}
	}
	if len(got.Statuses) != len(want.Statuses) || (len(want.Statuses) > 0 && !reflect.DeepEqual(got.Statuses, want.Statuses)) {
		t.Errorf("statuses:\n got %+v\nwant %+v", got.Statuses, want.Statuses)
	}
}

// envelope wraps message and status JSON items in one change of a notification.
func envelope(contacts, messages, statuses string) []byte {
	v := `{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550104242","phone_number_id":"104242"}`
	if contacts != "" {
		v += `,"contacts":[` + contacts + `]`
	}
	if messages != "" {
		v += `,"messages":[` + messages + `]`
	}
	if statuses != "" {
		v += `,"statuses":[` + statuses + `]`
	}
	v += `}`
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":` + v + `}]}]}`)
}

const ashaContact = `{"profile":{"name":"Asha Rao"},"wa_id":"919812300001"}`

func TestParseWebhookMessageKinds(t *testing.T) {
	base := func(typ string) channel.Inbound {
		return channel.Inbound{ProviderMessageID: "wamid.X", From: "919812300001", Name: "Asha Rao", Type: typ, Timestamp: ts(1763900000)}
	}
	m := func(typ, field string) string {
		s := `{"from":"919812300001","id":"wamid.X","timestamp":"1763900000","type":"` + typ + `"`
		if field != "" {
			s += `,` + field
		}
		return s + `}`
	}
	tests := []struct {
		name string
		item string
		want channel.Inbound
	}{
		{"video", m("video", `"video":{"id":"v1","mime_type":"video/mp4","caption":"look"}`),
			with(base("video"), func(in *channel.Inbound) {
				in.Text, in.Media = "look", &msg.Media{Type: "video", URL: "wa-media:v1", Caption: "look"}
			})},
		{"audio", m("audio", `"audio":{"id":"a1","mime_type":"audio/ogg"}`),
			with(base("audio"), func(in *channel.Inbound) { in.Media = &msg.Media{Type: "audio", URL: "wa-media:a1"} })},
		{"voice", m("voice", `"voice":{"id":"vo1"}`),
			with(base("voice"), func(in *channel.Inbound) { in.Media = &msg.Media{Type: "voice", URL: "wa-media:vo1"} })},
		{"sticker", m("sticker", `"sticker":{"id":"s1","animated":false}`),
			with(base("sticker"), func(in *channel.Inbound) { in.Media = &msg.Media{Type: "sticker", URL: "wa-media:s1"} })},
		{"document", m("document", `"document":{"id":"d1","filename":"bill.pdf","caption":"my bill"}`),
			with(base("document"), func(in *channel.Inbound) {
				in.Text = "my bill"
				in.Media = &msg.Media{Type: "document", URL: "wa-media:d1", Caption: "my bill", Filename: "bill.pdf"}
			})},
		{"image without id", m("image", `"image":{"caption":"x"}`),
			with(base("image"), func(in *channel.Inbound) { in.Unsupported = "image message without a media id" })},
		{"location", m("location", `"location":{"latitude":12.9716,"longitude":-77.5946,"name":"Office"}`),
			with(base("location"), func(in *channel.Inbound) { in.Text = "12.9716,-77.5946" })},
		{"reaction is unsupported", m("reaction", `"reaction":{"message_id":"wamid.Y","emoji":"👍"}`),
			with(base("reaction"), func(in *channel.Inbound) { in.Unsupported = `message type "reaction" is not supported` })},
		{"nfm_reply without body", m("interactive", `"interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","response_json":"{\"a\":1}"}}`),
			with(base("interactive"), func(in *channel.Inbound) { in.Text, in.Payload = "Form submitted", `{"a":1}` })},
		{"nfm_reply with an object", m("interactive", `"interactive":{"type":"nfm_reply","nfm_reply":{"body":"Sent","response_json":{"a": 1}}}`),
			with(base("interactive"), func(in *channel.Inbound) { in.Text, in.Payload = "Sent", `{"a":1}` })},
		{"unknown interactive", m("interactive", `"interactive":{"type":"call_permission_reply"}`),
			with(base("interactive"), func(in *channel.Inbound) {
				in.Unsupported = `interactive type "call_permission_reply" is not supported`
			})},
		{"error with details", m("text", `"errors":[{"code":131052,"title":"Media download error","error_data":{"details":"Unable to download"}}]`),
			with(base("text"), func(in *channel.Inbound) { in.Unsupported = "Media download error: Unable to download (code 131052)" })},
		{"no type", `{"from":"919812300001","id":"wamid.X","timestamp":"1763900000"}`,
			with(base(""), func(in *channel.Inbound) { in.Unsupported = "message has no type" })},
		{"from with plus and numeric timestamp", `{"from":"+919812300001","id":"wamid.X","timestamp":1763900000,"type":"text","text":{"body":"hi"}}`,
			with(base("text"), func(in *channel.Inbound) { in.Text = "hi" })},
		{"bad timestamp gives zero time", `{"from":"919812300001","id":"wamid.X","timestamp":"soon","type":"text","text":{"body":"hi"}}`,
			with(base("text"), func(in *channel.Inbound) { in.Text, in.Timestamp = "hi", time.Time{} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseWebhook(envelope(ashaContact, tt.item, ""))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			checkBatch(t, b, &Batch{Messages: []channel.Inbound{tt.want}})
		})
	}
}

func TestParseWebhookMalformedMessageKeepsID(t *testing.T) {
	b, err := ParseWebhook(envelope(ashaContact, `{"id":"wamid.BAD","type":"text","text":{"body":42}}`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Messages) != 1 {
		t.Fatalf("%d messages, want 1", len(b.Messages))
	}
	in := b.Messages[0]
	if in.ProviderMessageID != "wamid.BAD" || in.Type != "text" || !strings.HasPrefix(in.Unsupported, "malformed message") {
		t.Errorf("got %+v", in)
	}
}

func TestParseWebhookContacts(t *testing.T) {
	tests := []struct {
		name, contacts, messages string
		want                     []string // "name/user id" per message
	}{
		{"two messages, matched by wa_id out of order",
			`{"profile":{"name":"B"},"wa_id":"2222"},{"profile":{"name":"A"},"wa_id":"1111"}`,
			`{"from":"1111","id":"m1","type":"text","text":{"body":"x"}},{"from":"2222","id":"m2","type":"text","text":{"body":"y"}}`,
			[]string{"A/", "B/"}},
		{"lone contact names a lone message with a different id",
			`{"profile":{"name":"A"},"wa_id":"1111"}`,
			`{"from":"9999","id":"m1","type":"text","text":{"body":"x"}}`,
			[]string{"A/"}},
		{"no match among several messages",
			`{"profile":{"name":"A"},"wa_id":"1111"}`,
			`{"from":"9999","id":"m1","type":"text","text":{"body":"x"}},{"from":"8888","id":"m2","type":"text","text":{"body":"y"}}`,
			[]string{"/", "/"}},
		{"phone user whose contact also has a user id",
			`{"profile":{"name":"A"},"wa_id":"1111","user_id":"IN.1"},{"profile":{"name":"B"},"wa_id":"2222","user_id":"IN.2"}`,
			`{"from":"2222","id":"m1","type":"text","text":{"body":"x"}},{"from":"1111","id":"m2","type":"text","text":{"body":"y"}}`,
			[]string{"B/IN.2", "A/IN.1"}},
		{"username users matched by user id",
			`{"profile":{"name":"A","username":"@a"},"user_id":"IN.1"},{"profile":{"name":"B","username":"@b"},"user_id":"IN.2"}`,
			`{"from_user_id":"IN.2","id":"m1","type":"text","text":{"body":"x"}},{"from_user_id":"IN.1","id":"m2","type":"text","text":{"body":"y"}}`,
			[]string{"B/IN.2", "A/IN.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseWebhook(envelope(tt.contacts, tt.messages, ""))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range b.Messages {
				got = append(got, m.Name+"/"+m.UserID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("name/user id = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseWebhookSeveralEntriesAndChanges(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[
		{"id":"1","changes":[
			{"field":"messages","value":{"metadata":{"phone_number_id":"A"},"messages":[{"from":"1","id":"m1","type":"text","text":{"body":"1"}}]}},
			{"field":"messages","value":{"metadata":{"phone_number_id":"A"},"statuses":[{"id":"s1","status":"sent","recipient_id":"1","timestamp":"5"}]}},
			{"field":"message_template_status_update","value":{"event":"APPROVED","messages":"not an array"}}]},
		{"id":"2","changes":[
			{"field":"messages","value":{"metadata":{"phone_number_id":"B"},"messages":[{"from":"2","id":"m2","type":"text","text":{"body":"2"}}],
			 "statuses":[{"status":"sent"},{"id":"s2","status":"delivered","recipient_id":"2"}]}}]}]}`)
	b, err := ParseWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range b.Messages {
		ids = append(ids, m.ProviderMessageID)
	}
	for _, s := range b.Statuses {
		ids = append(ids, s.ProviderMessageID)
	}
	// The status without an id is dropped; the other field's change is ignored.
	if want := []string{"m1", "m2", "s1", "s2"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	if want := []string{"A", "B"}; !reflect.DeepEqual(b.PhoneNumberIDs, want) {
		t.Errorf("PhoneNumberIDs = %v, want %v", b.PhoneNumberIDs, want)
	}
}

func TestParseWebhookErrors(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty", ``},
		{"not JSON", `not json`},
		{"truncated", `{"object":"whatsapp_business_account","entry":[`},
		{"wrong object", `{"object":"page","entry":[]}`},
		{"no object", `{"entry":[]}`},
		{"entry not an array", `{"object":"whatsapp_business_account","entry":{}}`},
		{"value of the wrong shape", `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":{}}}]}]}`},
		{"JSON array", `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := ParseWebhook([]byte(tt.body)); err == nil {
				t.Errorf("ParseWebhook(%q) = %+v, want an error", tt.body, b)
			}
		})
	}
}

func FuzzParseWebhook(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add(envelope(ashaContact, `{"from":"1","id":"m","type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{"response_json":5}}}`, ""))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":null}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := ParseWebhook(body)
		if err != nil {
			if b != nil {
				t.Fatal("error with a non-nil batch")
			}
			return
		}
		for _, m := range b.Messages {
			if m.Media != nil && !strings.HasPrefix(m.Media.URL, MediaIDPrefix) {
				t.Fatalf("media URL %q lacks the media-id prefix", m.Media.URL)
			}
			if len(m.Raw) > 0 && !json.Valid(m.Raw) {
				t.Fatalf("Raw is not JSON: %q", m.Raw)
			}
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(`{"object":"whatsapp_business_account"}`), "sha256=00", "secret")
	f.Add([]byte{}, "", "")
	f.Add([]byte("x"), "sha256=zz", "s")
	f.Fuzz(func(t *testing.T, body []byte, header, secret string) {
		_ = VerifySignature(body, header, secret) // must not panic on any input
		if secret == "" {
			if VerifySignature(body, sign(body, secret), secret) {
				t.Fatal("accepted a signature under an empty secret")
			}
			return
		}
		if !VerifySignature(body, sign(body, secret), secret) {
			t.Fatal("rejected its own signature")
		}
		if VerifySignature(append(body, 'x'), sign(body, secret), secret) {
			t.Fatal("accepted a signature over a different body")
		}
	})
}
