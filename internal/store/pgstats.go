package store

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// pgStats counts what this process sends to PostgreSQL, as a pgx tracer: a statement
// run on its own is a round trip, a batch is one round trip for all its statements.
type pgStats struct {
	roundTrips, statements, batches atomic.Int64
}

func (p *pgStats) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	p.roundTrips.Add(1)
	p.statements.Add(1)
	return ctx
}

func (p *pgStats) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (p *pgStats) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	p.roundTrips.Add(1)
	p.batches.Add(1)
	return ctx
}

func (p *pgStats) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	p.statements.Add(1)
}

func (p *pgStats) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// DBStats are counters of the database traffic since the store opened.
type DBStats struct {
	// RoundTrips, Statements and Pipelines count what went to PostgreSQL (zero on
	// SQLite, which is in-process): Pipelines are the round trips that carried several
	// queued statements at once.
	RoundTrips, Statements, Pipelines int64
	// Commits and Ops count the Batcher's group commits and the operations they carried.
	Commits, Ops int64
}

// Stats returns the store's traffic counters.
func (s *Store) Stats() DBStats {
	var out DBStats
	if s.stats != nil {
		out.RoundTrips, out.Statements, out.Pipelines = s.stats.roundTrips.Load(), s.stats.statements.Load(), s.stats.batches.Load()
	}
	out.Commits, out.Ops = s.batchCommits.Load(), s.batchOps.Load()
	return out
}

// Add is the sum of two counters.
func (d DBStats) Add(o DBStats) DBStats {
	return DBStats{RoundTrips: d.RoundTrips + o.RoundTrips, Statements: d.Statements + o.Statements,
		Pipelines: d.Pipelines + o.Pipelines, Commits: d.Commits + o.Commits, Ops: d.Ops + o.Ops}
}

// Sub is what the counters grew since earlier.
func (d DBStats) Sub(earlier DBStats) DBStats {
	return DBStats{RoundTrips: d.RoundTrips - earlier.RoundTrips, Statements: d.Statements - earlier.Statements,
		Pipelines: d.Pipelines - earlier.Pipelines, Commits: d.Commits - earlier.Commits, Ops: d.Ops - earlier.Ops}
}
