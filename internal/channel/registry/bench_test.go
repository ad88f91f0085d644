package registry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// benchGraph is a minimal Graph API /messages endpoint for benchmarks: it answers every
// send with Meta's success shape and records when each arrived.
type benchGraph struct {
	*httptest.Server
	n  atomic.Int64
	mu sync.Mutex
	at []time.Time
}

func newBenchGraph(b *testing.B, record bool) *benchGraph {
	g := &benchGraph{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := g.n.Add(1)
		if record {
			g.mu.Lock()
			g.at = append(g.at, time.Now())
			g.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"messaging_product":"whatsapp","contacts":[{"input":"919812300001","wa_id":"919812300001"}],"messages":[{"id":"wamid.B`+
			strconv.FormatInt(n, 10)+`"}]}`)
	}))
	b.Cleanup(g.Close)
	return g
}

// rate is the measured throughput: sends after the first over the time from the first
// to the last arrival.
func (g *benchGraph) rate() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	at := append([]time.Time(nil), g.at...)
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	if len(at) < 2 {
		return 0
	}
	return float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
}

var benchTemplate = msg.Content{Template: &msg.Template{Name: "order_update", Language: msg.TemplateLang{Code: "en"},
	Components: []map[string]any{{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "A1"}}}}}}

// sendMany sends n templates through senders from `workers` goroutines and returns the
// wall time.
func sendMany(b *testing.B, senders []channel.Sender, n, workers int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		s := senders[w%len(senders)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := s.Send(context.Background(), channel.Recipient{ChannelUserID: "919812300001"}, benchTemplate, ""); err != nil {
					b.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPacedSend sends through the registry's wrapper and the WhatsApp adapter to a
// local fake Graph API with 80 messages/s configured, for at least 5 s, from 32
// goroutines, and reports the rate the fake received. "sqlite" paces in process;
// "postgres-2-instances" (with PARLEY_TEST_POSTGRES) runs two registries sharing the
// database's pacing, as two server instances would.
func BenchmarkPacedSend(b *testing.B) {
	const rate = 80
	cases := []struct {
		name      string
		dsn       func(testing.TB) string
		instances int
	}{{"sqlite", storetest.SQLiteDSN, 1}}
	if storetest.PostgresURL() != "" {
		cases = append(cases, struct {
			name      string
			dsn       func(testing.TB) string
			instances int
		}{"postgres-2-instances", storetest.PostgresDSN, 2})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			st := storetest.Open(b, c.dsn(b))
			graph := newBenchGraph(b, true)
			bot := benchBot(b, st)
			var senders []channel.Sender
			for range c.instances {
				reg := registry.New(st, registry.Options{})
				if err := reg.Set(context.Background(), bot, "whatsapp", waConfig(graph.URL, rate)); err != nil {
					b.Fatal(err)
				}
				s, err := reg.Sender(context.Background(), bot, "whatsapp")
				if err != nil {
					b.Fatal(err)
				}
				senders = append(senders, s)
			}
			n := max(b.N, 5*rate+1) // at least 5 s of sends
			b.ResetTimer()
			elapsed := sendMany(b, senders, n, 32)
			b.StopTimer()
			got := graph.rate()
			b.ReportMetric(got, "msgs/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
			b.Logf("%s: %d sends at %d/s configured: %.2f msgs/s measured over %v", c.name, n, rate, got, elapsed.Round(time.Millisecond))
			if got < rate-4 || got > rate+4 {
				b.Errorf("measured %.2f msgs/s, want %d ± 4", got, rate)
			}
		})
	}
}

// BenchmarkUnpacedSend is the sender path alone with pacing lifted: registry wrapper and
// WhatsApp adapter to the local fake, from 64 goroutines.
func BenchmarkUnpacedSend(b *testing.B) {
	st := storetest.Open(b, storetest.SQLiteDSN(b))
	graph := newBenchGraph(b, false)
	bot := benchBot(b, st)
	reg := registry.New(st, registry.Options{})
	if err := reg.Set(context.Background(), bot, "whatsapp", waConfig(graph.URL, registry.Unlimited)); err != nil {
		b.Fatal(err)
	}
	s, err := reg.Sender(context.Background(), bot, "whatsapp")
	if err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 20000)
	b.ResetTimer()
	elapsed := sendMany(b, []channel.Sender{s}, n, 64)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
}

// BenchmarkEngineUnpaced measures the whole engine path on one SQLite instance: API
// trigger calls (engine.Trigger) start a one-message flow for distinct users; each run
// stores its message as pending, sends it through the registry (pacing lifted) and the
// WhatsApp adapter to the local fake Graph API, and records it as sent. The figure is
// messages recorded as sent per second, from the first trigger to the last record.
func BenchmarkEngineUnpaced(b *testing.B) {
	ctx := context.Background()
	st := storetest.Open(b, storetest.SQLiteDSN(b))
	graph := newBenchGraph(b, false)
	bot := benchBot(b, st)
	reg := registry.New(st, registry.Options{})
	if err := reg.Set(ctx, bot, "whatsapp", waConfig(graph.URL, registry.Unlimited)); err != nil {
		b.Fatal(err)
	}
	// A template: business-initiated messages to users who have not written are
	// templates on WhatsApp.
	if _, err := catalog.Import(ctx, st, bot, []byte(`{"key": "notify", "start": "m", "nodes": [
		{"id": "m", "type": "message", "template": {"name": "order_update", "language": {"code": "en"},
		 "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{order_id}}"}]}]}, "next": "end"},
		{"id": "end", "type": "end"}]}`)); err != nil {
		b.Fatal(err)
	}
	eng := engine.New(st, engine.Config{Channels: reg}) // default workers (64), as `parley serve` runs
	if err := eng.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer eng.Stop(context.Background())
	bt, err := st.BotByID(ctx, bot)
	if err != nil {
		b.Fatal(err)
	}

	n := max(b.N, 20000)
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				digits := fmt.Sprintf("91981%07d", i)
				if _, err := eng.Trigger(ctx, engine.TriggerRequest{BotID: bot, CustomerID: bt.CustomerID, FlowKey: "notify",
					Channel: "whatsapp", Phone: "+" + digits, Digits: digits, Attrs: map[string]string{"order_id": strconv.FormatInt(i, 10)}}); err != nil {
					b.Errorf("trigger: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)
	sent := waitSent(b, st, n, 2*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.Logf("%d triggers accepted in %v; %d messages sent and recorded in %v (fake Graph API got %d requests)",
		n, accepted.Round(time.Millisecond), sent, elapsed.Round(time.Millisecond), graph.n.Load())
	if sent != n {
		b.Errorf("%d of %d messages recorded as sent", sent, n)
	}
}

// waitSent polls until n messages are recorded as sent, or timeout; it returns the count.
func waitSent(b *testing.B, st *store.Store, n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		var sent int
		if err := st.Reader().QueryRow(context.Background(), `SELECT COUNT(*) FROM messages WHERE status = 'sent'`).Scan(&sent); err != nil {
			b.Fatal(err)
		}
		if sent >= n || time.Now().After(deadline) {
			return sent
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func benchBot(b *testing.B, st *store.Store) int64 {
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	bt, err := st.CreateBot(ctx, c.ID, "beeeeeeeeeeeeeee", "bench")
	if err != nil {
		b.Fatal(err)
	}
	return bt.ID
}
