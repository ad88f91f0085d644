// Package app wires a Parley server together: store, migrations, job queue, engine, HTTP
// API; and takes it apart again on shutdown without losing accepted work.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"

	"github.com/parleyhq/parley/internal/alert"
	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/queue"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// Config is the server's configuration.
type Config struct {
	Addr       string
	DB         string
	AdminToken string
	// Demo seeds a demo customer, bot, key and flow and prints a curl that triggers it.
	Demo bool
	// Workers is how many runs execute at once.
	Workers int
	// MaxRunning is how many runs of one customer execute at once, for accounts without
	// their own max_running (0: Workers).
	MaxRunning int
	// Log receives the server's JSON logs.
	Log *slog.Logger
	// DemoOut receives the demo's instructions (stdout).
	DemoOut io.Writer
	// Ready, when set, receives the bound address once the server accepts connections.
	Ready chan<- string
	// HTTPRate is the HTTP-step calls per minute of an account without a rate of its own
	// (httpstep.DefaultRate when not positive).
	HTTPRate int
	// HTTPAllow lists the CIDRs, IPs and host names (the last two optionally with a
	// port, which limits them to it) http steps may reach although they are loopback,
	// private or link-local.
	HTTPAllow []string
	// SMTPURL is the server that sends http steps' alert mail; empty sends none.
	SMTPURL string
	// MetricsAddr, when set, serves /metrics on a listener of its own at this address
	// (e.g. one only the monitoring network reaches), and the API's listener no longer
	// serves it.
	MetricsAddr string
	// BroadcastMax bounds the recipients of one broadcast (broadcast.DefaultMax when not
	// positive).
	BroadcastMax int
	// SecretKey lists the keys (base64 or hex of 32 bytes, comma-separated) that
	// encrypt secrets at rest; the first encrypts, all decrypt. Empty: on SQLite the key
	// kept beside the database (generated at first start), on PostgreSQL a refusal to
	// start.
	SecretKey string
	// ShutdownGrace bounds a graceful shutdown (DefaultShutdownGrace when not positive).
	ShutdownGrace time.Duration
	// Retain says how long finished runs, messages, HTTP-step logs and finished
	// broadcasts are kept (zero: for ever).
	Retain queue.Retention
}

// Server is a running Parley.
type Server struct {
	cfg   Config
	log   *slog.Logger
	st    *store.Store
	q     *queue.Queue
	eng   *engine.Engine
	steps *httpstep.Service
	bc    *broadcast.Service
	api   *api.Server
	http  *http.Server
	// metrics serves /metrics on MetricsAddr (nil when it is not set).
	metrics   *http.Server
	metricsLn net.Listener
	closed    bool
}

// Open builds a server: opens and migrates the database, prepares the engine, the job
// queue and the API. Nothing runs until Serve.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, created, err := SecretKeys(cfg.DB, cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if keys == nil {
		return nil, ErrPostgresNeedsKey
	}
	if created {
		log.Info("generated the key that encrypts secrets in the database; back it up with the database", "file", KeyFile(cfg.DB))
	} else if cfg.SecretKey == "" && secret.LaxMode(KeyFile(cfg.DB)) {
		log.Warn("the secret key file can be read by other users: chmod 600 it", "file", KeyFile(cfg.DB))
	}
	st, err := store.Open(ctx, cfg.DB, store.Options{Secrets: keys})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, st: st}
	if err := s.init(ctx); err != nil {
		_ = s.Close() // the store, and the http-step service if it was built
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	if err := Migrate(ctx, s.st); err != nil {
		return err
	}
	if s.cfg.Demo && s.cfg.AdminToken == "" {
		// The demo is for trying the console too: without a token of the operator's, it
		// makes one for this run and prints it.
		s.cfg.AdminToken = newDemoToken()
	}
	missing, err := registry.MissingKeys(ctx, s.st)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("channel credentials in the database are encrypted with key(s) %s, which the secret key (PARLEY_SECRET_KEY or the key file) does not hold: "+
			"add them after the current key (\"new,old\")", strings.Join(missing, ", "))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerDBMetrics(reg, s.st)

	httpClient, err := httpstep.NewClient(httpstep.Options{Allow: s.cfg.HTTPAllow})
	if err != nil {
		return fmt.Errorf("--http-allow: %w", err)
	}
	var mailer *alert.Mailer
	if s.cfg.SMTPURL != "" {
		if mailer, err = alert.New(s.cfg.SMTPURL); err != nil {
			return fmt.Errorf("--smtp-url: %w", err)
		}
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &queue.CleanupWorker{Store: s.st, IdempotencyWindow: engine.IdempotencyWindow, Log: s.log})
	river.AddWorker(workers, httpstep.NewAlertWorker(mailer))
	// Registered even without a retention: another instance's leader may enqueue the job,
	// and any instance may work it.
	river.AddWorker(workers, &queue.RetentionWorker{Store: s.st, Retain: s.cfg.Retain, Log: s.log})
	periodic := []*river.PeriodicJob{queue.CleanupJob(10 * time.Minute)}
	if s.cfg.Retain.Enabled() {
		periodic = append(periodic, queue.RetentionJob(time.Hour))
	}
	q, err := queue.New(s.st, queue.Config{
		Workers:  workers,
		Periodic: periodic,
		Log:      s.log.With("component", "river"),
	})
	if err != nil {
		return err
	}
	s.q = q
	s.steps, err = httpstep.NewService(httpstep.Config{Store: s.st, Client: httpClient, DefaultRate: s.cfg.HTTPRate,
		Queue: q, Mailer: mailer, Log: s.log.With("component", "httpstep")})
	if err != nil {
		return err
	}
	channels := registry.New(s.st, registry.Options{})
	s.eng = engine.New(s.st, engine.Config{Workers: s.cfg.Workers, MaxRunning: s.cfg.MaxRunning, Log: s.log.With("component", "engine"), Registry: reg,
		Channels: channels, HTTP: s.steps})
	s.bc = broadcast.New(broadcast.Config{Store: s.st, Channels: channels, Sends: s.eng, InstanceID: s.eng.InstanceID(), Max: s.cfg.BroadcastMax,
		Log: s.log.With("component", "broadcast")})
	authSvc := auth.New(s.st, 0)
	s.api = api.New(api.Deps{Store: s.st, Auth: authSvc, Engine: s.eng, Channels: channels, Log: s.log.With("component", "http"),
		Registry: reg, AdminToken: s.cfg.AdminToken, Ready: s.st.Ping, HTTPSteps: s.steps, SeparateMetrics: s.cfg.MetricsAddr != "",
		Broadcasts: s.bc})
	if s.cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", api.MetricsHandler(reg))
		s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	}
	if s.cfg.Demo {
		if err := seedDemo(ctx, s.st, authSvc, s.cfg, s.cfg.DemoOut); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// TuneRuntime sets the Go runtime up for a server. Call it once per process.
//   - The garbage collector gets more headroom (GOGC=200) unless the operator set GOGC:
//     the server's live heap is small, and collecting half as often measured ~10 % more
//     throughput and a lower p99 on the trigger path.
//   - On a machine with fewer than MinProcs CPUs, Go gets MinProcs schedulers unless the
//     operator set GOMAXPROCS. With one scheduler per core, a goroutine that runs long
//     (the SQLite writer, a checkpoint, a broadcast's fan-out) holds a core until Go's
//     10 ms preemption while a trigger's goroutine waits; with more schedulers than
//     cores, the kernel's finer time slices share them. On 2 cores this halved the
//     trigger p99 during a 100,000-recipient fan-out (BENCHMARKS.md, Broadcasts).
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < MinProcs {
		runtime.GOMAXPROCS(MinProcs)
	}
}

// MinProcs is the fewest Go schedulers TuneRuntime gives a server.
const MinProcs = 4

// Migrate applies Parley's and River's migrations.
func Migrate(ctx context.Context, st *store.Store) error {
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	return queue.Migrate(ctx, st)
}

// Handler is the HTTP API (for tests and benchmarks that serve it themselves).
func (s *Server) Handler() http.Handler { return s.api }

// MetricsAddr is the address /metrics is served on when Config.MetricsAddr is set
// (with the port chosen, for ":0"), once Serve has reported Ready; else "".
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Engine is the flow engine.
func (s *Server) Engine() *engine.Engine { return s.eng }

// Store is the database.
func (s *Server) Store() *store.Store { return s.st }

// Serve runs until ctx ends, then shuts down gracefully: it stops taking requests, lets
// requests in flight finish, lets the engine reach its next commit point with every run
// in hand, and releases unfinished runs for the next owner.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	closeListeners := func() {
		ln.Close()
		if s.metricsLn != nil {
			s.metricsLn.Close()
		}
	}
	if s.metrics != nil {
		if s.metricsLn, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-addr: listen on %s: %w", s.cfg.MetricsAddr, err)
		}
	}
	if err := s.eng.Start(ctx); err != nil {
		closeListeners()
		return err
	}
	// River works jobs under its start context and cancels them, and its maintenance
	// mid-transaction, when that ends: it stops in its own stage of the shutdown instead.
	if err := s.q.Start(context.WithoutCancel(ctx)); err != nil {
		closeListeners()
		return errors.Join(err, s.eng.Stop(context.Background()))
	}
	if err := s.bc.Start(ctx); err != nil {
		closeListeners()
		return errors.Join(err, s.q.Stop(context.Background()), s.eng.Stop(context.Background()))
	}
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for ?wait=true and an HTTP-step test call (60 s at most).
		WriteTimeout:   90 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	attrs := []any{"addr", ln.Addr().String(), "db", s.st.Dialect().String(), "instance", s.eng.InstanceID()}
	if s.metricsLn != nil {
		attrs = append(attrs, "metrics_addr", s.metricsLn.Addr().String())
	}
	if s.cfg.Retain.Enabled() {
		attrs = append(attrs, "retain", s.cfg.Retain.String())
	}
	s.log.Info("listening", attrs...)
	if s.cfg.Ready != nil {
		s.cfg.Ready <- ln.Addr().String()
	}
	errc := make(chan error, 2)
	go func() { errc <- s.http.Serve(ln) }()
	if s.metrics != nil {
		go func() { errc <- s.metrics.Serve(s.metricsLn) }()
	}
	select {
	case err := <-errc:
		return errors.Join(err, s.shutdown())
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	return s.shutdown()
}

// DefaultShutdownGrace is how long a shutdown may take unless configured.
const DefaultShutdownGrace = 30 * time.Second

// Shares of the grace period, cumulative: each stage must end by its fraction of the
// grace, so a stage left with time by the one before may use it, but a slow stage (a
// client that never finishes its request) cannot eat the next one's share. The engine
// gets the most: calls in flight (up to 60 s each) are waited for.
const (
	httpStageEnd   = 0.3 // the HTTP server: requests in flight finish
	engineStageEnd = 0.8 // broadcasts and the engine: runs in hand reach a commit point
	// the job queue: jobs in progress finish, by the end of the grace
)

func (s *Server) shutdown() error {
	grace := s.cfg.ShutdownGrace
	if grace <= 0 {
		grace = DefaultShutdownGrace
	}
	start := time.Now()
	stage := func(end float64) (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), start.Add(time.Duration(float64(grace)*end)))
	}
	var errs []error
	ctx, cancel := stage(httpStageEnd)
	if err := s.http.Shutdown(ctx); err != nil {
		// Requests still in flight are cut off, so that the engine gets its share.
		s.log.Warn("requests still in flight at the end of their share of the shutdown grace: closing their connections", "err", err)
		_ = s.http.Close()
	}
	if s.metrics != nil {
		if err := s.metrics.Shutdown(ctx); err != nil {
			_ = s.metrics.Close()
		}
	}
	cancel()

	ctx, cancel = stage(engineStageEnd)
	if err := s.bc.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.eng.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	cancel()

	ctx, cancel = stage(1)
	defer cancel()
	if err := s.q.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("queue stop: %w", err))
	}
	s.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return errors.Join(errs...)
}

// Close releases the database.
func (s *Server) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.steps != nil {
		s.steps.Close()
	}
	return s.st.Close()
}

// registerDBMetrics exposes the store's traffic counters: with process_cpu_seconds_total
// they give the CPU and the PostgreSQL round trips a run costs (see BENCHMARKS.md).
func registerDBMetrics(reg prometheus.Registerer, st *store.Store) {
	for _, c := range []struct {
		name, help string
		get        func(store.DBStats) int64
	}{
		{"parley_db_round_trips_total", "Round trips to PostgreSQL (a pipelined batch of statements is one).", func(s store.DBStats) int64 { return s.RoundTrips }},
		{"parley_db_statements_total", "Statements sent to PostgreSQL.", func(s store.DBStats) int64 { return s.Statements }},
		{"parley_db_pipelines_total", "Round trips to PostgreSQL that carried a batch of queued statements.", func(s store.DBStats) int64 { return s.Pipelines }},
		{"parley_db_group_commits_total", "Group-commit transactions of the write batcher.", func(s store.DBStats) int64 { return s.Commits }},
		{"parley_db_group_commit_ops_total", "Operations carried by the write batcher's group commits.", func(s store.DBStats) int64 { return s.Ops }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.get(st.Stats())) }))
	}
}
