package broadcast

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzPlan: whatever a client sends as a broadcast, planning it either refuses it with
// an InputError (the API's 400 naming the field) or gives a plan within the limits, and
// never panics.
func FuzzPlan(f *testing.F) {
	f.Add([]byte(`{"broadcastId": null, "broadcastTitle": "t", "publishedOn": "2019-06-03T06:48:27.170Z",
		"audience": {"rule": {"channels": ["whatsapp"], "channelUserIds": ["919876543210"]}},
		"payload": {"type": "direct", "content": [{"type": "text", "data": {"message": "hi"}}]}, "status": null}`))
	f.Add([]byte(`{"broadcastTitle": "t", "platform": "whatsapp", "users": [{"phoneNumber": "+91 98765 43210", "firstName": "A"}],
		"payload": {"type": "whatsapp_template", "content": [{"type": "template", "template": {"name": "n", "language": {"code": "en"},
		"namespace": "x", "components": [{"type": "body", "parameters": [{"type": "text", "text": "v"}]}]}}]}}`))
	f.Add([]byte(`{"audience": {"rule": {"channels": ["rcs", "sandbox"], "channelUserIds": ["1", "1", ""]}},
		"payload": {"type": "direct", "content": [{"type": "image", "data": {"url": "https://x.example/a.png"}}]}}`))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, body []byte) {
		var v1 V1Request
		if json.Unmarshal(body, &v1) == nil {
			check(t, "v1", body)(PlanV1(v1, now, maxRecipients))
		}
		var v2 V2Request
		if json.Unmarshal(body, &v2) == nil {
			check(t, "v2", body)(PlanV2(v2, now, maxRecipients))
		}
	})
}

// maxRecipients is the server maximum the fuzzed plans are made with.
const maxRecipients = 5

func check(t *testing.T, version string, body []byte) func(*Plan, error) {
	return func(p *Plan, err error) {
		t.Helper()
		var input *InputError
		switch {
		case err != nil && !errors.As(err, &input):
			t.Fatalf("%s: %s: error %T %v is not an InputError", version, body, err, err)
		case err != nil && input.Msg == "":
			t.Fatalf("%s: %s: an InputError without a message", version, body)
		case err != nil:
		case len(p.Content) == 0 || len(p.Recipients)+len(p.Users) == 0:
			t.Fatalf("%s: %s: a plan with nothing to send or no one to send it to: %+v", version, body, p)
		case len(p.Recipients) > maxRecipients || len(p.Users) > maxRecipients:
			t.Fatalf("%s: %s: %d recipients, %d users over the limit of %d", version, body, len(p.Recipients), len(p.Users), maxRecipients)
		case p.PublishAt.IsZero():
			t.Fatalf("%s: %s: no publishing time", version, body)
		}
	}
}
