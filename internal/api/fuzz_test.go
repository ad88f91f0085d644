package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// FuzzTriggerBody sends arbitrary bodies and query strings to both trigger versions:
// the answer is always a 200 or a 4xx in the envelope, never a 5xx.
func FuzzTriggerBody(f *testing.F) {
	st := storetest.Open(f, storetest.SQLiteDSN(f))
	ctx := context.Background()
	a := auth.New(st, 0)
	nb, err := a.CreateBot(ctx, "acme", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	b, _ := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if _, err := catalog.Import(ctx, st, b.ID, []byte(orderFlow)); err != nil {
		f.Fatal(err)
	}
	eng := engine.New(st, engine.Config{Workers: 4})
	if err := eng.Start(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = eng.Stop(context.Background()) })
	h := api.New(api.Deps{Store: st, Auth: a, Engine: eng})
	base := botPath("v2.0", nb) + "/flow/order_update"
	v1 := botPath("v1.0", nb) + "/flow/order_update"
	for _, s := range []string{
		`{"user.channel": "whatsapp", "user.phone_no": "919876543210", "payment_status": "Payment Success"}`,
		`{"user_channel": "rcs", "user_phone_no": 919876543210, "n": 1.5e3, "b": true, "z": null}`,
		`{"user.phone_no": "+1 (555) 078-3881"}`, `{"user.phone_no": {}}`, `[]`, `{`, `"x"`, `{"a":[1,{"b":2}]}`,
	} {
		f.Add(s, "")
	}
	f.Add("", "user.phone_no=919876543210&x=1")
	f.Add("{}", "user.phone_no=%zz&wait_ms=5")
	f.Fuzz(func(t *testing.T, body, query string) {
		for _, path := range []string{base, v1} {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.URL.RawQuery = query
			req.Header.Set("Authorization", "Basic "+nb.APIKey)
			if strings.Contains(query, "wait") {
				q := req.URL.Query()
				q.Del("wait")
				q.Del("wait_ms")
				req.URL.RawQuery = q.Encode()
			}
			w := httptest.NewRecorder()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			h.ServeHTTP(w, req.WithContext(ctx))
			cancel()
			if w.Code >= 500 || (w.Code != http.StatusOK && w.Code < 400) {
				t.Fatalf("%s %q with %q: HTTP %d %s", path, body, query, w.Code, w.Body)
			}
			if !strings.Contains(w.Body.String(), `"status":{"code":`) {
				t.Fatalf("not an envelope: %s", w.Body)
			}
		}
	})
}
