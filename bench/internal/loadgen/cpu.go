package loadgen

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/store"
)

// Usage is what a load level cost: this process's CPU (server and load generator, which
// share it), PostgreSQL's CPU and the store's traffic counters.
type Usage struct {
	Self, PG time.Duration
	// SelfKnown is false where the process's CPU time cannot be read (ProcessCPU).
	SelfKnown bool
	// PGKnown is false when PostgreSQL's processes could not be read (another machine,
	// or SQLite).
	PGKnown bool
	DB      store.DBStats
}

// Sample reads the usage counters of s and the instances that joined it now; Sub of two
// samples is what happened between.
func Sample(ctx context.Context, s *Server) Usage {
	var u Usage
	u.Self, u.SelfKnown = ProcessCPU()
	for _, srv := range append([]*app.Server{s.Server}, s.joined...) {
		u.DB = u.DB.Add(srv.Store().Stats())
	}
	// The instances share this process's application name: their backends are found
	// through any one of them.
	u.PG, u.PGKnown = pgCPU(ctx, s.Store())
	return u
}

// pgCPU sums the CPU time of the PostgreSQL processes that work for this process: its
// own backends (by application name) and the server's background processes (WAL writer,
// checkpointer...), not other clients' backends. It reads /proc, so only works when
// PostgreSQL runs on this machine.
func pgCPU(ctx context.Context, st *store.Store) (time.Duration, bool) {
	pool := st.PgxPool()
	if pool == nil {
		return 0, false
	}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE application_name = current_setting('application_name') OR backend_type <> 'client backend'`)
	if err != nil {
		return 0, false
	}
	defer rows.Close()
	var total time.Duration
	n := 0
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			return 0, false
		}
		if d, ok := procCPU(pid); ok {
			total += d
			n++
		}
	}
	return total, rows.Err() == nil && n > 0
}

// procCPU reads utime+stime of a process from /proc/<pid>/stat (in clock ticks of
// 1/100 s, the value on Linux).
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces: fields count after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+stt) * 10 * time.Millisecond, true
}

// Sub is the usage from earlier to u.
func (u Usage) Sub(earlier Usage) Usage {
	return Usage{Self: u.Self - earlier.Self, SelfKnown: u.SelfKnown && earlier.SelfKnown, PG: u.PG - earlier.PG,
		PGKnown: u.PGKnown && earlier.PGKnown, DB: u.DB.Sub(earlier.DB)}
}

// UsageHeader is the header of PerRun's columns.
const UsageHeader = "cpu µs/run  pg µs/run  trips/run  stmts/run  ops/commit"

// PerRun formats u divided over runs, under UsageHeader.
func (u Usage) PerRun(runs int) string {
	if runs == 0 {
		return ""
	}
	n := float64(runs)
	perRun := func(d time.Duration, known bool) string {
		if !known {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(d.Microseconds())/n)
	}
	opsPerCommit := 0.0
	if u.DB.Commits > 0 {
		opsPerCommit = float64(u.DB.Ops) / float64(u.DB.Commits)
	}
	return fmt.Sprintf("%10s %10s %10.2f %10.2f %11.1f", perRun(u.Self, u.SelfKnown), perRun(u.PG, u.PGKnown),
		float64(u.DB.RoundTrips)/n, float64(u.DB.Statements)/n, opsPerCommit)
}

// WithAppName gives a postgres:// DSN an application name unique to this process, by
// which Sample finds its backends; other DSNs are returned as they are.
func WithAppName(dsn string) string {
	if !store.IsPostgres(dsn) || strings.Contains(dsn, "application_name=") {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "application_name=parley_bench_" + strconv.Itoa(os.Getpid())
}
