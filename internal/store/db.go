// Package store holds all of Parley's SQL. One Store serves both engines: SQLite (the
// default, embedded, one writer connection) and PostgreSQL (pgx, shared by many server
// instances). Queries use $N placeholders, which both engines accept; the few statements
// that differ live side by side in the entity files.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyhq/parley/internal/secret"
)

// Dialect is the database engine behind a Store.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a unique value is already taken.
var ErrConflict = errors.New("already exists")

// Querier runs statements; it is satisfied by the store's pools and by transactions.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is a single-row result; Scan returns ErrNotFound when there is none.
type Row interface {
	Scan(dest ...any) error
}

// Tx is a transaction. Driver returns the engine's own transaction (*sql.Tx on SQLite,
// pgx.Tx on PostgreSQL) so the job queue can enqueue inside it.
//
// QueueExec and QueueRow add a statement whose outcome the caller does not need at once.
// On PostgreSQL they are held back and sent together, in one round trip, when the
// transaction next needs an answer (a direct statement, or its commit): a group commit of
// many runs then costs a few round trips instead of one per statement. On SQLite, which
// has no round trips, they run at once. check and scan (either may be nil) see the
// outcome when it comes; an error they return, or the statement's, fails the transaction.
// Arguments are read when the statement is queued.
type Tx interface {
	Querier
	Driver() any
	QueueExec(query string, args []any, check func(rowsAffected int64) error) error
	QueueRow(query string, args []any, scan func(Row) error) error
}

// queueExec queues query on q when q is a transaction, and runs it at once otherwise.
func queueExec(ctx context.Context, q Querier, query string, args []any, check func(int64) error) error {
	if tx, ok := q.(Tx); ok {
		return tx.QueueExec(query, args, check)
	}
	n, err := q.Exec(ctx, query, args...)
	if err != nil || check == nil {
		return err
	}
	return check(n)
}

// Store is the database.
type Store struct {
	dialect Dialect

	// SQLite: writes go through one connection (SQLite has one writer anyway, and a
	// single connection avoids SQLITE_BUSY between our own transactions); reads use a
	// pool of read-only connections, which WAL lets run beside the writer.
	writer *sql.DB
	reader *sql.DB

	wStmts *stmtCache

	checkpointer                     *sql.DB
	stopCheckpoints, checkpointsDone chan struct{}
	// walLong is set when a background checkpoint finds the WAL longer than
	// walRestartPages; the writer then finishes the checkpoint (finishCheckpoint).
	walLong         atomic.Bool
	walRestartPages int
	checkpointEvery time.Duration
	// walPath is the WAL file, which an idle server shrinks to nothing once it is
	// longer than walKeepBytes (checkpointLoop).
	walPath      string
	walKeepBytes int64

	// PostgreSQL.
	pool *pgxpool.Pool
	// stats counts the statements and round trips sent to PostgreSQL.
	stats *pgStats
	// lookups coalesces the reads of users by channel id.
	lookups *userLookups
	// The Batchers' group commits and the operations they carried.
	batchCommits, batchOps atomic.Int64

	w, r Querier

	secrets *secret.Keyring

	closeOnce sync.Once
	closeErr  error
}

// Options tune how a Store is opened.
type Options struct {
	// MaxConns caps PostgreSQL connections (default 32) and SQLite readers (default 8).
	MaxConns int
	// Secrets is the keyring of the secrets encrypted at rest in this database. The
	// store only carries it, since a key belongs to the database it encrypts; the
	// packages that know which values are secret (channel registry, flow catalog, http
	// steps) encrypt and decrypt. Nil means no key: secrets cannot be written.
	Secrets *secret.Keyring
	// WALRestartPages is the SQLite WAL length, in pages, past which the writer
	// finishes a checkpoint itself so that the WAL starts over; 0 takes 262,144 (1 GiB
	// of 4 KiB pages).
	WALRestartPages int
	// CheckpointEvery is how often SQLite's WAL is checkpointed in the background
	// (default 500 ms).
	CheckpointEvery time.Duration
	// WALKeepBytes is the SQLite WAL file size past which a server that has stopped
	// writing empties the file; 0 takes 64 MiB.
	WALKeepBytes int64
}

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to dsn: a postgres:// URL or a SQLite file path. It does not migrate.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	open := openSQLite
	if IsPostgres(dsn) {
		open = openPostgres
	}
	s, err := open(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	s.secrets = opts.Secrets
	return s, nil
}

// Secrets is the keyring of the database's encrypted secrets (nil when none is set).
func (s *Store) Secrets() *secret.Keyring { return s.secrets }

// sqliteBusyTimeout is how long a connection waits for another's lock.
const sqliteBusyTimeout = 10 * time.Second

func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)",
		fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"synchronous(NORMAL)",
		"foreign_keys(ON)",
		// Statement and savepoint journals stay in memory: spilled to a temporary file
		// they cost the bulk writes of a broadcast's fan-out a write syscall per page.
		"temp_store(MEMORY)",
	} {
		q.Add("_pragma", p)
	}
	// Page caches are kept small. A reader's cache is dropped whenever another connection
	// commits, so under writes a large one only churns memory; the writer's keeps what one
	// transaction touches. At 32 MB each, the broadcast benchmark's peak RSS was 200 MB
	// rather than 120 MB (BENCHMARKS.md, Broadcasts).
	if readOnly {
		q.Add("_pragma", "cache_size(-2000)")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "cache_size(-8000)")
		// Checkpoints run in the background (see checkpointLoop) instead of stalling the
		// commit that happens to cross the WAL's size threshold.
		q.Add("_pragma", "wal_autocheckpoint(0)")
		// No journal_size_limit: SQLite would shrink a long WAL file in the commit that
		// starts it over, holding the write lock meanwhile, and truncating a file of
		// pages not yet on disk took 290 ms (bench/broadcast, 300,000 recipients). The
		// file is reused from its start instead, and emptied once the writes stop
		// (checkpointLoop).
		// Take the write lock at BEGIN, so a transaction never fails to upgrade a read
		// lock: with busy_timeout that makes concurrent writers (the CLI beside a running
		// server) wait instead of failing.
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func openSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		path = "parley.db"
	}
	w, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	n := opts.MaxConns
	if n <= 0 {
		n = 8
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	cp, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	cp.SetMaxOpenConns(1)
	s := &Store{dialect: SQLite, writer: w, reader: r, wStmts: newStmtCache(w), checkpointer: cp, stopCheckpoints: make(chan struct{}), checkpointsDone: make(chan struct{}),
		walRestartPages: opts.WALRestartPages, checkpointEvery: opts.CheckpointEvery, walPath: path + "-wal", walKeepBytes: opts.WALKeepBytes}
	if s.walKeepBytes <= 0 {
		s.walKeepBytes = defaultWALKeepBytes
	}
	if s.walRestartPages <= 0 {
		s.walRestartPages = defaultWALRestartPages
	}
	if s.checkpointEvery <= 0 {
		s.checkpointEvery = 500 * time.Millisecond
	}
	s.w, s.r = sqlQuerier{db: w, stmts: s.wStmts}, sqlQuerier{db: r, stmts: newStmtCache(r)}
	go s.checkpointLoop()
	return s, nil
}

// checkpointLoop copies the WAL back into the database file every half second (by
// default) from a connection of its own. A passive checkpoint never waits for the
// writer, so commits keep their latency; the writer connection has automatic
// checkpoints turned off.
func (s *Store) checkpointLoop() {
	defer close(s.checkpointsDone)
	t := time.NewTicker(s.checkpointEvery)
	defer t.Stop()
	lastFrames := -1
	for {
		select {
		case <-s.stopCheckpoints:
			_, _ = s.checkpointer.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			return
		case <-t.C:
			var busy, frames, copied int
			err := s.checkpointer.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
			if err != nil {
				continue
			}
			// Nothing committed since the last look, and all of it copied: the writes
			// have stopped, and a long WAL file can be emptied without holding anyone up.
			quiet := frames == lastFrames && copied == frames
			lastFrames = frames
			if quiet {
				s.emptyLongWAL()
				continue
			}
			if frames < s.walRestartPages {
				continue
			}
			// The writer will stop for what is left: first copy what was committed
			// during this checkpoint, and again, while that shrinks.
			for range 4 {
				left := frames - copied
				if left <= walTailFrames {
					break
				}
				if s.checkpointer.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied) != nil || frames-copied >= left {
					break
				}
			}
			s.walLong.Store(true)
		}
	}
}

// defaultWALKeepBytes is the WAL file size past which an idle server empties it.
const defaultWALKeepBytes = 64 << 20

// walEmptyWait bounds how long emptying the WAL waits for readers of older snapshots
// (while it waits, commits wait too); it is tried again at the next quiet look.
const walEmptyWait = 20 * time.Millisecond

// emptyLongWAL truncates the WAL file to nothing when it is longer than walKeepBytes.
// Every page in it has been copied to the database by then (the caller saw to it), and
// a TRUNCATE checkpoint does it under SQLite's locks.
func (s *Store) emptyLongWAL() {
	if fi, err := os.Stat(s.walPath); err != nil || fi.Size() <= s.walKeepBytes {
		return
	}
	ctx := context.Background()
	conn, err := s.checkpointer.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	// The connection's busy timeout is lowered for this call only: a writer that comes
	// meanwhile waits for the checkpoint, which must not wait long itself. (Should the
	// restore fail, the connection's passive checkpoints never wait anyway.)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", walEmptyWait.Milliseconds())); err != nil {
		return
	}
	_, _ = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	_, _ = conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", sqliteBusyTimeout.Milliseconds()))
}

// defaultWALRestartPages is the WAL length (in pages: 1 GiB of 4 KiB pages) past which
// the writer finishes a checkpoint itself. That stops its commits for some 30–45 ms on a
// small virtual disk (the fsyncs), so it is kept for a WAL that is really long: under
// the heaviest load, once every 10–15 s.
const defaultWALRestartPages = 262144

// walTailFrames is how many pages the background checkpoint leaves the writer to copy
// at most, when the writes let it catch up that far.
const walTailFrames = 256

// finishCheckpoint is for the writer, between transactions. SQLite starts its WAL over
// only once a checkpoint has copied every page in it, which a background checkpoint
// never does while the writer commits without pause: under sustained load the WAL grew
// by 80 MB a second, without end (2 GB in 25 s of bench/trigger). So when the
// background checkpoint finds it long, the writer copies the rest (the pages committed
// meanwhile), holding its own commits back for that long, and its next transaction
// starts the WAL from the beginning. A no-op on PostgreSQL.
func (s *Store) finishCheckpoint() {
	if s.writer == nil || !s.walLong.Swap(false) {
		return
	}
	_, _ = s.writer.Exec("PRAGMA wal_checkpoint(PASSIVE)")
}

func openPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres dsn: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = int32(opts.MaxConns)
	} else if cfg.MaxConns < 32 {
		cfg.MaxConns = 32 // the group-commit writers plus readers and the job queue
	}
	stats := &pgStats{}
	cfg.ConnConfig.Tracer = stats
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	s := &Store{dialect: Postgres, pool: pool, stats: stats}
	s.w, s.r = pgxQuerier{pool}, pgxQuerier{pool}
	s.lookups = newUserLookups(pool, s.userCols())
	return s, nil
}

// Dialect reports the engine.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close releases every connection; closing twice is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.pool != nil {
			s.lookups.close()
			s.pool.Close()
			return
		}
		close(s.stopCheckpoints)
		<-s.checkpointsDone
		s.closeErr = errors.Join(s.writer.Close(), s.reader.Close(), s.checkpointer.Close())
	})
	return s.closeErr
}

// Ping checks the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.r.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// SQLiteWriter returns the SQLite writer pool (for the job queue, which must share the
// single writer connection), nil on PostgreSQL.
func (s *Store) SQLiteWriter() *sql.DB { return s.writer }

// PgxPool returns the PostgreSQL pool, nil on SQLite.
func (s *Store) PgxPool() *pgxpool.Pool { return s.pool }

// sqlDB returns a database/sql handle for tools that need one (migrations).
func (s *Store) sqlDB() *sql.DB {
	if s.pool != nil {
		return stdlib.OpenDBFromPool(s.pool)
	}
	return s.writer
}

// InTx runs fn in a transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(Tx) error) error {
	if s.pool != nil {
		return s.inPgxTx(ctx, fn)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer s.wStmts.prepareWanted(ctx)
	if err := fn(sqlTx{sqlQuerier{db: tx, stmts: s.wStmts, tx: tx}, tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inReadTx runs fn's reads in one transaction, so they all see the database as it was at
// the first: on SQLite a read transaction of a reader connection (WAL keeps its snapshot),
// on PostgreSQL a read-only REPEATABLE READ one.
func (s *Store) inReadTx(ctx context.Context, fn func(Querier) error) error {
	if s.pool != nil {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return fmt.Errorf("begin read: %w", translate(err))
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if err := fn(pgxQuerier{tx}); err != nil {
			return err
		}
		return translate(tx.Commit(ctx))
	}
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	// Nothing is written: ending it either way only releases the snapshot.
	defer func() { _ = tx.Rollback() }()
	rq := s.r.(sqlQuerier)
	defer rq.stmts.prepareWanted(ctx)
	return fn(sqlQuerier{db: tx, stmts: rq.stmts, tx: tx})
}

// database/sql adapter.

type sqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlQuerier runs statements through a cache of prepared statements: the SQLite driver
// would otherwise parse every statement on every call, which measured a quarter of the
// CPU of the trigger hot path.
type sqlQuerier struct {
	db    sqlRunner
	stmts *stmtCache
	tx    *sql.Tx // set inside a transaction
}

// stmt returns the prepared statement for query, bound to the transaction if any; nil
// when preparing failed (the caller then runs the query unprepared, which reports the
// error with its context).
func (q sqlQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	if q.tx == nil {
		return q.stmts.get(ctx, query)
	}
	// Inside a transaction the writer's only connection is taken, so a statement cannot
	// be prepared on the pool now: run it unprepared and prepare it after the commit.
	st := q.stmts.lookup(query)
	if st == nil {
		q.stmts.want(query)
		return nil
	}
	return q.tx.StmtContext(ctx, st)
}

// bindable rewrites a statement with many parameters to anonymous ones (positional.go).
func (q sqlQuerier) bindable(query string, args []any) (string, []any, error) {
	if len(args) < positionalFrom {
		return query, args, nil
	}
	return q.stmts.positional.rewrite(query, args)
}

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	query, args, err := q.bindable(query, args)
	if err != nil {
		return 0, err
	}
	var res sql.Result
	if st := q.stmt(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = q.db.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, translate(err)
	}
	return res.RowsAffected()
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	query, args, err := q.bindable(query, args)
	if err != nil {
		return nil, err
	}
	var rows *sql.Rows
	if st := q.stmt(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.db.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, translate(err)
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	query, args, err := q.bindable(query, args)
	if err != nil {
		return errRow{err}
	}
	if st := q.stmt(ctx, query); st != nil {
		return sqlRow{st.QueryRowContext(ctx, args...)}
	}
	return sqlRow{q.db.QueryRowContext(ctx, query, args...)}
}

// stmtCache prepares each distinct query once per pool. Queries are constants of this
// package, so the cache stays small.
type stmtCache struct {
	db     *sql.DB
	mu     sync.RWMutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
	// positional holds the rewrites of statements with many parameters.
	positional positionalQueries
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query]
}

func (c *stmtCache) want(query string) {
	c.mu.Lock()
	c.wanted[query] = true
	c.mu.Unlock()
}

// prepareWanted prepares the statements transactions asked for, once the connection is
// free again.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.RLock()
	n := len(c.wanted)
	c.mu.RUnlock()
	if n == 0 {
		return
	}
	c.mu.Lock()
	queries := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		queries = append(queries, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range queries {
		c.get(ctx, q)
	}
}

func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if st := c.lookup(query); st != nil {
		return st
	}
	// Prepare without holding the lock: preparing waits for a connection, which a
	// transaction may hold while it looks statements up.
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok {
		_ = st.Close()
		return prev
	}
	c.m[query] = st
	return st
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type sqlRow struct{ row *sql.Row }

func (r sqlRow) Scan(dest ...any) error { return translate(r.row.Scan(dest...)) }

type sqlTx struct {
	sqlQuerier
	tx *sql.Tx
}

func (t sqlTx) Driver() any { return t.tx }

func (t sqlTx) QueueExec(query string, args []any, check func(int64) error) error {
	n, err := t.Exec(context.Background(), query, args...)
	if err != nil || check == nil {
		return err
	}
	return check(n)
}

func (t sqlTx) QueueRow(query string, args []any, scan func(Row) error) error {
	if scan == nil {
		_, err := t.Exec(context.Background(), query, args...)
		return err
	}
	return scan(t.QueryRow(context.Background(), query, args...))
}

// pgx adapter.

type pgxRunner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgxQuerier struct{ db pgxRunner }

func (q pgxQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.db.Exec(ctx, query, args...)
	if err != nil {
		return 0, translate(err)
	}
	return tag.RowsAffected(), nil
}

func (q pgxQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := q.db.Query(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	return pgxRows{rows}, nil
}

func (q pgxQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	return pgxRow{q.db.QueryRow(ctx, query, args...)}
}

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Err() error { return translate(r.Rows.Err()) }

type pgxRow struct{ row pgx.Row }

func (r pgxRow) Scan(dest ...any) error { return translate(r.row.Scan(dest...)) }

// pgxTx is a PostgreSQL transaction that holds queued statements back until it needs
// an answer from the server. It begins lazily: a transaction of queued statements only
// goes to the server at its commit, BEGIN, statements and COMMIT in one round trip (two
// when a statement's outcome must be checked before committing).
type pgxTx struct {
	pgxQuerier
	conn    *pgxpool.Conn
	tx      pgx.Tx // once begun
	ctx     context.Context
	pending *pgx.Batch
	checked bool // a queued statement's outcome decides whether to commit
	// err is the first failure of queued statements: the transaction cannot commit.
	err error
}

func (s *Store) inPgxTx(ctx context.Context, fn func(Tx) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// A connection released inside a transaction (an error half-way through a
	// pipeline) is closed by the pool rather than reused.
	defer conn.Release()
	t := &pgxTx{conn: conn, ctx: ctx}
	t.pgxQuerier = pgxQuerier{pipeRunner{t}}
	if err := fn(t); err != nil {
		t.rollback()
		return err
	}
	if t.tx != nil {
		if err := t.flush(); err != nil {
			t.rollback()
			return err
		}
		if err := t.tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
	if t.pending == nil {
		return nil // nothing was written
	}
	b := t.pending
	t.pending = nil
	// BEGIN and COMMIT travel with the statements. A failed statement makes the server
	// turn the COMMIT into a rollback; a check that fails needs the answers before the
	// COMMIT, which then follows in a round trip of its own.
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+2)}
	full.Queue("BEGIN")
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	if !t.checked {
		full.Queue("COMMIT")
	}
	if err := conn.Conn().SendBatch(ctx, full).Close(); err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(ctx, "ROLLBACK")
		}
		return translate(err)
	}
	if t.checked {
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}

func (t *pgxTx) rollback() {
	switch {
	case t.tx != nil:
		_ = t.tx.Rollback(t.ctx)
	case t.conn.Conn().PgConn().TxStatus() != 'I':
		_, _ = t.conn.Exec(t.ctx, "ROLLBACK")
	}
}

// begin starts the transaction on the server, for a statement that needs its answer now.
func (t *pgxTx) begin() error {
	if t.tx != nil {
		return nil
	}
	tx, err := t.conn.Begin(t.ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t.tx = tx
	return nil
}

// Driver flushes what is queued, since the caller will run statements of its own; an
// error there is kept, and fails the commit.
func (t *pgxTx) Driver() any {
	if err := t.flush(); err != nil && t.tx == nil {
		return brokenTx{err: err}
	}
	return t.tx
}

// brokenTx is the pgx.Tx of a transaction that could not begin: its statements fail.
type brokenTx struct {
	pgx.Tx // nil: methods not overridden are not used by the job queue's inserts
	err    error
}

func (b brokenTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, b.err
}

func (b brokenTx) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, b.err }

func (b brokenTx) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{b.err} }

func (b brokenTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, b.err
}

func (t *pgxTx) QueueExec(query string, args []any, check func(int64) error) error {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	qq := t.pending.Queue(query, args...)
	if check == nil {
		qq.Exec(func(pgconn.CommandTag) error { return nil })
		return nil
	}
	t.checked = true
	qq.Exec(func(ct pgconn.CommandTag) error { return check(ct.RowsAffected()) })
	return nil
}

func (t *pgxTx) QueueRow(query string, args []any, scan func(Row) error) error {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	qq := t.pending.Queue(query, args...)
	if scan == nil {
		qq.Exec(func(pgconn.CommandTag) error { return nil })
		return nil
	}
	// A scan's error is this transaction's, known after the statement ran: like a
	// check, it must be heard before the COMMIT.
	t.checked = true
	qq.QueryRow(func(row pgx.Row) error { return scan(pgxRow{row}) })
	return nil
}

// queueGuarded queues a statement written to fail on the server with a division by zero
// when its guard does not hold, and reports that failure as guardErr. Unlike a check, a
// guard needs no answer before the COMMIT: the failure itself rolls the transaction back,
// so a transaction of queued statements stays one round trip.
func (t *pgxTx) queueGuarded(query string, args []any, guardErr error) {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	qq := t.pending.Queue(query, args...)
	qq.Fn = func(br pgx.BatchResults) error {
		_, err := br.Exec()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22012" { // division_by_zero
			return guardErr
		}
		return err
	}
}

// flush begins the transaction if needed and sends the queued statements in one round
// trip, hearing their outcomes.
func (t *pgxTx) flush() error {
	if t.err != nil {
		return t.err
	}
	if err := t.begin(); err != nil {
		t.err = err
		return err
	}
	b := t.pending
	if b == nil {
		return nil
	}
	t.pending = nil
	if err := t.tx.SendBatch(t.ctx, b).Close(); err != nil {
		t.err = translate(err)
	}
	return t.err
}

// pipeRunner runs a direct statement of a pgxTx after what was queued before it.
type pipeRunner struct{ t *pgxTx }

func (p pipeRunner) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.t.flush(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return p.t.tx.Exec(ctx, sql, args...)
}

func (p pipeRunner) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.t.flush(); err != nil {
		return nil, err
	}
	return p.t.tx.Query(ctx, sql, args...)
}

func (p pipeRunner) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.t.flush(); err != nil {
		return errRow{err}
	}
	return p.t.tx.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// translate maps engine errors onto the store's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows), errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
	}
	return err
}

// nowMS is the store's clock: Unix milliseconds, the unit of every time column.
func nowMS() int64 { return time.Now().UnixMilli() }

// Writer is the querier for writes outside a transaction.
func (s *Store) Writer() Querier { return s.w }

// Reader is the querier for reads that may lag a concurrent write.
func (s *Store) Reader() Querier { return s.r }
