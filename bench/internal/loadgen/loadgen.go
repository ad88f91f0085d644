// Package loadgen is what the benchmark programs share: a Parley server in process with a
// bot and flows, and closed-loop HTTP clients that record every request's latency.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// Profile starts a CPU profile to path (when not empty); the returned func stops it.
func Profile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return pprof.StopCPUProfile
}

// Server is a running Parley with one bot.
type Server struct {
	*app.Server
	// FlowURL is the v2 trigger URL of the bot, to which a flow key is appended.
	FlowURL string
	Bot     auth.NewBot
	stop    func()
	cfg     app.Config
	others  []func()
	joined  []*app.Server
}

// Start opens a server with cfg (a fresh SQLite file when cfg.DB is empty), creates a bot,
// imports the flows, and serves on a loopback port, with `parley serve`'s GC setting.
// setup, when not nil, runs before serving (e.g. to raise the account's rate limit).
func Start(ctx context.Context, cfg app.Config, flows []string, setup func(*app.Server, auth.NewBot) error) *Server {
	var cleanup []func()
	if cfg.DB == "" {
		dir, err := os.MkdirTemp("", "parley-bench")
		if err != nil {
			log.Fatal(err)
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		cfg.DB = filepath.Join(dir, "bench.db")
	}
	if cfg.SecretKey == "" {
		// A PostgreSQL server needs a key; the bench's flows hold no secrets, so a
		// throwaway one serves unless PARLEY_SECRET_KEY names the database's own.
		cfg.SecretKey = os.Getenv("PARLEY_SECRET_KEY")
		if cfg.SecretKey == "" && store.IsPostgres(cfg.DB) {
			cfg.SecretKey = secret.NewKey()
		}
	}
	app.TuneRuntime()
	inst := open(ctx, cfg)
	srv := inst.srv
	nb, err := auth.New(srv.Store(), 0).CreateBot(ctx, fmt.Sprintf("bench-%d", time.Now().UnixNano()), "bench")
	if err != nil {
		log.Fatal(err)
	}
	b, err := srv.Store().Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		log.Fatal(err)
	}
	for _, doc := range flows {
		if _, err := catalog.Import(ctx, srv.Store(), b.ID, []byte(doc)); err != nil {
			log.Fatal(err)
		}
	}
	if setup != nil {
		if err := setup(srv, nb); err != nil {
			log.Fatal(err)
		}
	}
	addr, stop := inst.serve()
	s := &Server{Server: srv, Bot: nb, cfg: cfg, FlowURL: flowURL(addr, nb)}
	s.stop = func() {
		for _, stop := range s.others {
			stop()
		}
		stop()
		for _, f := range cleanup {
			f()
		}
	}
	return s
}

// instance is a server opened on a loopback port, serving once serve is called.
type instance struct {
	srv    *app.Server
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan string
}

func open(ctx context.Context, cfg app.Config) instance {
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan string, 1)
	cfg.Addr, cfg.Ready = "127.0.0.1:0", ready
	srv, err := app.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	return instance{srv: srv, ctx: ctx, cancel: cancel, ready: ready}
}

// serve serves until stop, which returns once the server is closed; addr is where.
func (in instance) serve() (addr string, stop func()) {
	served := make(chan error, 1)
	go func() { served <- in.srv.Serve(in.ctx) }()
	return <-in.ready, func() {
		in.cancel()
		if err := <-served; err != nil {
			log.Print(err)
		}
		in.srv.Close()
	}
}

func flowURL(addr string, nb auth.NewBot) string {
	return fmt.Sprintf("http://%s/bot-api/v2.0/customer/%d/bot/%s/flow/", addr, nb.CustomerID, nb.BotKey)
}

// Join starts another instance in this process on s's database (PostgreSQL: instances
// share one schema), serving the same bot, and returns its flow URL. Stop stops it too.
func (s *Server) Join(ctx context.Context) string {
	inst := open(ctx, s.cfg)
	addr, stop := inst.serve()
	s.joined = append(s.joined, inst.srv)
	s.others = append(s.others, stop)
	return flowURL(addr, s.Bot)
}

// Stop shuts the server down and removes its temporary database.
func (s *Server) Stop() { s.stop() }

// Levels parses a comma-separated list of concurrency levels.
func Levels(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			log.Fatalf("bad concurrency %q", f)
		}
		out = append(out, c)
	}
	return out
}

// Result is one load's latencies, sorted.
type Result struct {
	N, Errors int
	Start     time.Time
	Elapsed   time.Duration
	Lat       []time.Duration
	FirstErr  string
}

// PerSecond is successful requests per second of load.
func (r Result) PerSecond() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// Mean latency.
func (r Result) Mean() time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, l := range r.Lat {
		sum += l
	}
	return sum / time.Duration(len(r.Lat))
}

// P is the q-th percentile latency.
func (r Result) P(q int) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	return r.Lat[(len(r.Lat)-1)*q/100]
}

// Next makes one request and the check of its answer (nil: any 200 will do).
type Next func() (*http.Request, func(body []byte) bool)

// InTurn makes the requests of each of nexts in turn (one per instance, say).
func InTurn(nexts ...Next) Next {
	var turn atomic.Int64
	return func() (*http.Request, func([]byte) bool) { return nexts[turn.Add(1)%int64(len(nexts))]() }
}

// Run keeps c clients busy back to back for d.
func Run(ctx context.Context, c int, d time.Duration, next Next) Result {
	deadline := time.Now().Add(d)
	return run(ctx, c, func() bool { return time.Now().Before(deadline) }, next)
}

// RunUntil keeps c clients busy back to back until stop is closed.
func RunUntil(ctx context.Context, c int, stop <-chan struct{}, next Next) Result {
	return run(ctx, c, func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}, next)
}

func run(ctx context.Context, c int, more func() bool, next Next) Result {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var mu sync.Mutex
	res := Result{Start: time.Now()}
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs, firstErr := 0, ""
			for more() && ctx.Err() == nil {
				req, ok := next()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs, firstErr = errs+1, err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || (ok != nil && !ok(b)) {
					errs, firstErr = errs+1, fmt.Sprintf("%d %s", resp.StatusCode, b)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.Lat = append(res.Lat, lat...)
			res.Errors += errs
			if firstErr != "" && res.FirstErr == "" {
				res.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(res.Start)
	res.N = len(res.Lat)
	slices.Sort(res.Lat)
	if res.FirstErr != "" {
		log.Printf("first error: %.300s", res.FirstErr)
	}
	return res
}

// Trigger returns a Next that posts a v2 trigger for a new user each time (phone numbers
// from seq), with extra attributes.
func Trigger(ctx context.Context, url, apiKey string, seq func() int64, ok func([]byte) bool) Next {
	return func() (*http.Request, func([]byte) bool) {
		n := seq()
		body := fmt.Sprintf(`{"user.channel": "whatsapp", "user.phone_no": "91%010d", "tier": "vip", "order_id": "%d"}`, 7000000000+n, n)
		req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Basic "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		return req, ok
	}
}

// Round is d rounded for display.
func Round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
