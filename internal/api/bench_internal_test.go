package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// benchServer is the API on a fresh SQLite database with one bot, plus an authenticated
// no-op route: authentication, the customer/bot check and the envelope, nothing else.
func benchServer(b *testing.B) (*Server, string, string) {
	st := storetest.Open(b, storetest.SQLiteDSN(b))
	a := auth.New(st, 0)
	nb, err := a.CreateBot(context.Background(), "acme", "bench")
	if err != nil {
		b.Fatal(err)
	}
	s := New(Deps{Store: st, Auth: a})
	s.mux.HandleFunc("GET /bot-api/v1.0/customer/{cid}/bot/{botKey}/noop", s.platform(
		func(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
			writeOK(w, map[string]int64{"customer_id": p.CustomerID})
			return nil
		}))
	return s, "/bot-api/v1.0/customer/" + strconv.FormatInt(nb.CustomerID, 10) + "/bot/" + nb.BotKey + "/noop", nb.APIKey
}

// BenchmarkAuthenticatedNoop serves the no-op route in process, from all cores.
func BenchmarkAuthenticatedNoop(b *testing.B) {
	s, path, key := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Basic "+key)
		for pb.Next() {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkAuthenticatedNoopHTTP is the same over real loopback HTTP/1.1 with keep-alive,
// the client and the server sharing the machine's cores.
func BenchmarkAuthenticatedNoopHTTP(b *testing.B) {
	s, path, key := benchServer(b)
	srv := httptest.NewServer(s)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.SetParallelism(16) // 16 goroutines per core: enough concurrency to keep both sides busy
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			req.Header.Set("Authorization", "Basic "+key)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 512)
			for {
				if _, err := res.Body.Read(buf); err != nil {
					break
				}
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
