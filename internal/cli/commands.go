package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/queue"
	"github.com/parleyhq/parley/internal/store"
)

func envOr(env Env, name, def string) string {
	if v := env.Getenv(name); v != "" {
		return v
	}
	return def
}

func serve(ctx context.Context, env Env, args []string) error {
	fs := flags(env, "serve")
	addr := fs.String("addr", envOr(env, "PARLEY_ADDR", "127.0.0.1:8080"), "listen address (env PARLEY_ADDR)")
	db := dbFlag(fs, env)
	// The token's default is read after parsing, so -h never prints the secret.
	adminToken := fs.String("admin-token", "", "bearer token for /admin/v1; empty disables the admin API (env PARLEY_ADMIN_TOKEN)")
	demo := fs.Bool("demo", false, "seed a demo customer, bot, API key and flow, and print a curl that triggers it")
	workers := fs.Int("workers", 0, "runs executed at once (default 64; env PARLEY_WORKERS)")
	maxRunning := fs.Int("max-running", 0, "runs of one customer executed at once, for accounts without their own max_running (default: --workers; env PARLEY_MAX_RUNNING)")
	logLevel := fs.String("log-level", envOr(env, "PARLEY_LOG_LEVEL", "info"), "debug, info, warn or error (env PARLEY_LOG_LEVEL)")
	metricsAddr := fs.String("metrics-addr", envOr(env, "PARLEY_METRICS_ADDR", ""),
		"serve /metrics on this address instead of --addr (env PARLEY_METRICS_ADDR)")
	broadcastMax := fs.Int("broadcast-max", 0, fmt.Sprintf("most recipients of one broadcast (default %d; env PARLEY_BROADCAST_MAX)", broadcast.DefaultMax))
	retain := fs.String("retain", envOr(env, "PARLEY_RETAIN", ""),
		"delete finished runs, messages, HTTP-step logs and finished broadcasts older than this, e.g. runs=30d,messages=90d,http_logs=7d,broadcasts=30d; kinds left out are kept (env PARLEY_RETAIN)")
	grace := fs.String("shutdown-grace", envOr(env, "PARLEY_SHUTDOWN_GRACE", app.DefaultShutdownGrace.String()),
		"how long a shutdown (SIGINT, SIGTERM) may take: requests in flight, then runs in hand, then jobs, each with its share (env PARLEY_SHUTDOWN_GRACE)")
	hf := addHTTPStepFlags(fs, env)
	smtpURL := smtpFlag(fs)
	secretKey := secretKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *broadcastMax == 0 {
		if v := env.Getenv("PARLEY_BROADCAST_MAX"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return usageError{"PARLEY_BROADCAST_MAX must be a positive number"}
			}
			*broadcastMax = n
		}
	}
	if *broadcastMax < 0 {
		return usageError{"--broadcast-max must be a positive number"}
	}
	shutdownGrace, err := time.ParseDuration(*grace)
	if err != nil || shutdownGrace <= 0 {
		return usageError{fmt.Sprintf("--shutdown-grace %q: want a positive duration such as 30s", *grace)}
	}
	retention, err := queue.ParseRetention(*retain)
	if err != nil {
		return usageError{"--retain " + err.Error()}
	}
	httpRate, httpAllow, err := hf.values()
	if err != nil {
		return err
	}
	keys, err := secretKeyValue(*secretKey, env)
	if err != nil {
		return err
	}
	if *adminToken == "" {
		*adminToken = env.Getenv("PARLEY_ADMIN_TOKEN")
	}
	if *workers == 0 {
		if v := env.Getenv("PARLEY_WORKERS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return usageError{"PARLEY_WORKERS must be a positive number"}
			}
			*workers = n
		}
	}
	if *maxRunning == 0 {
		if v := env.Getenv("PARLEY_MAX_RUNNING"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return usageError{"PARLEY_MAX_RUNNING must be a positive number"}
			}
			*maxRunning = n
		}
	}
	if *maxRunning < 0 {
		return usageError{"--max-running must be a positive number"}
	}
	log, err := newLogger(env.Stderr, *logLevel)
	if err != nil {
		return err
	}
	app.TuneRuntime()
	srv, err := app.Open(ctx, app.Config{Addr: *addr, DB: *db, AdminToken: *adminToken, Demo: *demo, Workers: *workers, MaxRunning: *maxRunning,
		Log: log, DemoOut: env.Stdout, HTTPRate: httpRate, HTTPAllow: httpAllow, SMTPURL: smtpValue(*smtpURL, env),
		MetricsAddr: *metricsAddr, BroadcastMax: *broadcastMax, SecretKey: keys, Retain: retention, ShutdownGrace: shutdownGrace})
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Serve(ctx)
}

func migrate(ctx context.Context, env Env, args []string) error {
	fs := flags(env, "migrate")
	db := dbFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := openDB(ctx, env, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	return printJSON(env.Stdout, map[string]any{"migrated": true, "db": st.Dialect().String()})
}

func subcommand(args []string, name string, subs ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usageError{fmt.Sprintf("missing subcommand: %s %v", name, subs)}
	}
	for _, s := range subs {
		if args[0] == s {
			return s, args[1:], nil
		}
	}
	return "", nil, usageError{fmt.Sprintf("unknown subcommand %q: want one of %v", args[0], subs)}
}

func botCmd(ctx context.Context, env Env, args []string) error {
	_, rest, err := subcommand(args, "bot", "create")
	if err != nil {
		return err
	}
	fs := flags(env, "bot create")
	db := dbFlag(fs, env)
	customer := fs.String("customer", "", "customer name (created when new)")
	name := fs.String("name", "", "bot name")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := errors.Join(require("customer", *customer), require("name", *name)); err != nil {
		return usageError{err.Error()}
	}
	st, err := openDB(ctx, env, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	nb, err := auth.New(st, 0).CreateBot(ctx, *customer, *name)
	if err != nil {
		return err
	}
	return printJSON(env.Stdout, nb)
}

// botFlags adds --db, --customer and --bot.
type botFlags struct {
	db       *string
	customer *int64
	bot      *string
}

func addBotFlags(fs *flag.FlagSet, dbf *string) botFlags {
	return botFlags{db: dbf, customer: fs.Int64("customer", 0, "customer id"), bot: fs.String("bot", "", "bot key")}
}

func (b botFlags) check() error {
	if *b.customer <= 0 {
		return usageError{"--customer (a customer id) is required"}
	}
	return require("bot", *b.bot)
}

// lookupBot opens the database and finds the bot.
func (b botFlags) lookupBot(ctx context.Context, env Env) (*store.Store, store.Bot, error) {
	st, err := openDB(ctx, env, *b.db)
	if err != nil {
		return nil, store.Bot{}, err
	}
	bot, err := st.Bot(ctx, *b.customer, *b.bot)
	if err != nil {
		st.Close()
		if errors.Is(err, store.ErrNotFound) {
			return nil, store.Bot{}, fmt.Errorf("customer %d has no bot %q", *b.customer, *b.bot)
		}
		return nil, store.Bot{}, err
	}
	return st, bot, nil
}

func keyCmd(ctx context.Context, env Env, args []string) error {
	sub, rest, err := subcommand(args, "key", "create", "list", "revoke", "regenerate")
	if err != nil {
		return err
	}
	fs := flags(env, "key "+sub)
	bf := addBotFlags(fs, dbFlag(fs, env))
	id := fs.Int64("id", 0, "key id (revoke, regenerate)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	if (sub == "revoke" || sub == "regenerate") && *id <= 0 {
		return usageError{"--id is required: see 'parley key list'"}
	}
	st, b, err := bf.lookupBot(ctx, env)
	if err != nil {
		return err
	}
	defer st.Close()
	a := auth.New(st, 0)
	switch sub {
	case "create":
		k, err := a.CreateKey(ctx, b.CustomerID, b.Key)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, k)
	case "list":
		keys, err := a.ListKeys(ctx, b.CustomerID, b.Key)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, map[string]any{"keys": keys})
	case "revoke":
		if err := a.RevokeKey(ctx, b.CustomerID, b.Key, *id); err != nil {
			return err
		}
		return printJSON(env.Stdout, map[string]any{"id": *id, "revoked": true})
	default:
		k, err := a.RegenerateKey(ctx, b.CustomerID, b.Key, *id)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, k)
	}
}

func flowCmd(ctx context.Context, env Env, args []string) error {
	sub, rest, err := subcommand(args, "flow", "import", "export", "validate")
	if err != nil {
		return err
	}
	fs := flags(env, "flow "+sub)
	if sub == "validate" {
		if err := parse(fs, rest); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageError{"usage: parley flow validate FILE"}
		}
		doc, err := readFlowFile(fs.Arg(0))
		if err != nil {
			return err
		}
		f, err := catalog.Validate(doc)
		var verrs flow.ValidationErrors
		if errors.As(err, &verrs) {
			_ = printJSON(env.Stdout, map[string]any{"valid": false, "errors": verrs})
			return fmt.Errorf("%s is not a valid flow: %d problem(s)", fs.Arg(0), len(verrs))
		}
		return printJSON(env.Stdout, map[string]any{"valid": true, "key": f.Key, "nodes": len(f.Nodes)})
	}
	bf := addBotFlags(fs, dbFlag(fs, env))
	key := fs.String("key", "", "flow key (export)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	if sub == "import" && fs.NArg() != 1 {
		return usageError{"usage: parley flow import --db DSN --customer CID --bot BOTKEY FILE"}
	}
	if sub == "export" && *key == "" {
		if fs.NArg() == 1 {
			*key = fs.Arg(0)
		} else {
			return usageError{"usage: parley flow export --db DSN --customer CID --bot BOTKEY --key FLOWKEY"}
		}
	}
	var doc []byte
	if sub == "import" {
		if doc, err = readFlowFile(fs.Arg(0)); err != nil {
			return err
		}
	}
	st, b, err := bf.lookupBot(ctx, env)
	if err != nil {
		return err
	}
	defer st.Close()
	if sub == "export" {
		rec, err := catalog.Export(ctx, st, b.ID, *key)
		if err != nil {
			return err
		}
		_, err = env.Stdout.Write(append(rec.Document, '\n'))
		return err
	}
	rec, err := catalog.ImportAs(ctx, st, b.ID, doc, "cli")
	if err != nil {
		return err
	}
	return printJSON(env.Stdout, map[string]any{"flow_key": rec.Key, "version": rec.Version})
}

// readFlowFile reads a flow document, refusing files over the limit the admin API
// applies too (catalog.MaxDocumentSize) without reading them whole.
func readFlowFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, catalog.MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(doc) > catalog.MaxDocumentSize {
		return nil, fmt.Errorf("%s is larger than %d bytes (1 MiB), the limit of a flow document", path, catalog.MaxDocumentSize)
	}
	return doc, nil
}

func accountCmd(ctx context.Context, env Env, args []string) error {
	_, rest, err := subcommand(args, "account", "set")
	if err != nil {
		return err
	}
	fs := flags(env, "account set")
	db := dbFlag(fs, env)
	customer := fs.Int64("customer", 0, "customer id")
	rate := fs.Int("http-rate", 0, "HTTP-step calls per minute for this account (0: the server default)")
	maxRunning := fs.Int("max-running", 0, "runs of this account executing at once on each instance (0: the server default, --max-running of serve)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *customer <= 0 {
		return usageError{"--customer (a customer id) is required"}
	}
	if *rate < 0 {
		return usageError{"--http-rate must be 0 or more"}
	}
	if *maxRunning < 0 || *maxRunning > store.MaxMaxRunning {
		return usageError{fmt.Sprintf("--max-running must be from 0 to %d", store.MaxMaxRunning)}
	}
	if !given["http-rate"] && !given["max-running"] {
		return usageError{"nothing to set: give --http-rate or --max-running (0 restores the server default)"}
	}
	st, err := openDB(ctx, env, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	orDefault := func(n *int) *int {
		if *n > 0 {
			return n
		}
		return nil
	}
	// Only the settings given change; the others keep their values.
	if given["http-rate"] {
		if err := st.SetCustomerHTTPRate(ctx, *customer, orDefault(rate)); err != nil {
			return err
		}
	}
	if given["max-running"] {
		if err := st.SetCustomerMaxRunning(ctx, *customer, orDefault(maxRunning)); err != nil {
			return err
		}
	}
	c, err := st.Customer(ctx, *customer)
	if err != nil {
		return err
	}
	return printJSON(env.Stdout, c)
}
