package store

import (
	"context"
	"errors"
	"fmt"
)

// Run statuses.
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunWaiting   = "waiting"
	RunCompleted = "completed"
	RunFailed    = "failed"
)

// Run is a stored run. State is the engine's JSON; the store does not look inside it.
type Run struct {
	ID          string
	BotID       int64
	FlowID      int64
	FlowVersion int
	UserID      int64
	Channel     string
	Status      string
	Node        string
	State       []byte
	WaitSeq     int
	WakeAt      *int64 // Unix ms
	Owner       *string
	Error       string
	CreatedAt   int64
	UpdatedAt   int64
}

const runCols = `id, bot_id, flow_id, flow_version, user_id, channel, status, node, state, wait_seq, wake_at, owner, error, created_at, updated_at`

func scanRun(r Row) (Run, error) {
	var x Run
	var state string
	err := r.Scan(&x.ID, &x.BotID, &x.FlowID, &x.FlowVersion, &x.UserID, &x.Channel, &x.Status, &x.Node, &state,
		&x.WaitSeq, &x.WakeAt, &x.Owner, &x.Error, &x.CreatedAt, &x.UpdatedAt)
	x.State = []byte(state)
	return x, err
}

// InsertRun stores a new run.
func (s *Store) InsertRun(ctx context.Context, q Querier, r Run) error {
	_, err := q.Exec(ctx, `INSERT INTO runs (`+runCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		r.ID, r.BotID, r.FlowID, r.FlowVersion, r.UserID, r.Channel, r.Status, r.Node, string(r.State),
		r.WaitSeq, r.WakeAt, r.Owner, r.Error, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert run %s: %w", r.ID, err)
	}
	return nil
}

// QueueRunOfUser queues the insertion of a new run in tx (Tx.QueueExec): the run is the
// bot's user with channelUserID, looked up by the statement itself, so that it can be
// queued right behind the statement that creates the user.
func (s *Store) QueueRunOfUser(tx Tx, r Run, channelUserID string) error {
	err := tx.QueueExec(`INSERT INTO runs (`+runCols+`) VALUES ($1, $2, $3, $4,
		(SELECT id FROM users WHERE bot_id = $2 AND channel_user_id = $5), $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		[]any{r.ID, r.BotID, r.FlowID, r.FlowVersion, channelUserID, r.Channel, r.Status, r.Node, string(r.State),
			r.WaitSeq, r.WakeAt, r.Owner, r.Error, r.CreatedAt, r.UpdatedAt}, nil)
	if err != nil {
		return fmt.Errorf("insert run %s: %w", r.ID, err)
	}
	return nil
}

// ErrFenced is what UpdateRunOwned fails with when the run is no longer owner's.
var ErrFenced = errors.New("run taken over by another instance")

// UpdateRun writes a run's progress if owner still owns it; false means another instance
// took it over (this one was presumed dead) and must stop working on it.
func (s *Store) UpdateRun(ctx context.Context, q Querier, r Run, owner string) (bool, error) {
	n, err := q.Exec(ctx, updateRunSQL, updateRunArgs(r, owner)...)
	if err != nil {
		return false, fmt.Errorf("update run %s: %w", r.ID, err)
	}
	return n == 1, nil
}

const updateRunSQL = `UPDATE runs SET flow_id = $2, flow_version = $3, status = $4, node = $5, state = $6,
		wait_seq = $7, wake_at = $8, owner = $9, error = $10, updated_at = $11
		WHERE id = $1 AND owner = $12`

func updateRunArgs(r Run, owner string) []any {
	return []any{r.ID, r.FlowID, r.FlowVersion, r.Status, r.Node, string(r.State), r.WaitSeq, r.WakeAt, r.Owner, r.Error, r.UpdatedAt, owner}
}

// UpdateRunOwned is UpdateRun that may be queued in a transaction (Tx.QueueExec): when
// owner no longer owns the run, the transaction fails with ErrFenced.
func (s *Store) UpdateRunOwned(ctx context.Context, q Querier, r Run, owner string) error {
	if t, ok := q.(*pgxTx); ok {
		// The fence fails on the server, so the commit needs no answer first.
		t.queueGuarded(`WITH u AS (`+updateRunSQL+` RETURNING 1) SELECT 1 / COUNT(*)::int FROM u`, updateRunArgs(r, owner), ErrFenced)
		return nil
	}
	err := queueExec(ctx, q, updateRunSQL, updateRunArgs(r, owner),
		func(n int64) error {
			if n != 1 {
				return ErrFenced
			}
			return nil
		})
	if err != nil && !errors.Is(err, ErrFenced) {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	return err
}

// RunByID reads a run; q may be nil to read outside a transaction.
func (s *Store) RunByID(ctx context.Context, q Querier, id string) (Run, error) {
	if q == nil {
		q = s.r
	}
	r, err := scanRun(q.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, id))
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// ClaimIdempotencyKey records that key (within 24 h, for this bot) belongs to runID. When
// a live claim exists, it returns that run's id and false.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, q Querier, botID int64, key, runID string, now, expiredBefore int64) (string, bool, error) {
	var got string
	err := q.QueryRow(ctx, `INSERT INTO idempotency_keys (bot_id, idem_key, run_id, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (bot_id, idem_key) DO UPDATE SET run_id = excluded.run_id, created_at = excluded.created_at
		WHERE idempotency_keys.created_at < $5
		RETURNING run_id`, botID, key, runID, now, expiredBefore).Scan(&got)
	if err == nil {
		return got, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return "", false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if err := q.QueryRow(ctx, `SELECT run_id FROM idempotency_keys WHERE bot_id = $1 AND idem_key = $2`, botID, key).Scan(&got); err != nil {
		return "", false, fmt.Errorf("read idempotency key: %w", err)
	}
	return got, false, nil
}

// DeleteExpiredIdempotencyKeys removes claims older than before.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, before int64) (int64, error) {
	n, err := s.w.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("expire idempotency keys: %w", err)
	}
	return n, nil
}

func (s *Store) skipLocked() string {
	if s.dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// forUpdateOf locks the rows a query reads of table alias until the transaction ends,
// on PostgreSQL; SQLite's one writer needs no row locks.
func (s *Store) forUpdateOf(alias string) string {
	if s.dialect == Postgres {
		return " FOR UPDATE OF " + alias
	}
	return ""
}

func (s *Store) claimIDs(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.w.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ClaimOrphanRuns takes over up to limit queued or running runs whose owner is not a live
// instance (its heartbeat is older than liveSince, or it shut down).
func (s *Store) ClaimOrphanRuns(ctx context.Context, me string, now, liveSince int64, limit int) ([]string, error) {
	ids, err := s.claimIDs(ctx, `UPDATE runs SET owner = $1, updated_at = $2 WHERE id IN (
		SELECT id FROM runs WHERE status IN ('queued', 'running')
		AND (owner IS NULL OR owner NOT IN (SELECT id FROM instances WHERE heartbeat_at >= $3))
		ORDER BY created_at LIMIT $4`+s.skipLocked()+`) RETURNING id`, me, now, liveSince, limit)
	if err != nil {
		return nil, fmt.Errorf("claim orphaned runs: %w", err)
	}
	return ids, nil
}

// ClaimDueRuns takes over up to limit waiting runs whose wake-up time has come.
func (s *Store) ClaimDueRuns(ctx context.Context, me string, now int64, limit int) ([]string, error) {
	ids, err := s.claimIDs(ctx, `UPDATE runs SET owner = $1, status = 'running', updated_at = $2 WHERE id IN (
		SELECT id FROM runs WHERE status = 'waiting' AND wake_at <= $2
		ORDER BY wake_at LIMIT $3`+s.skipLocked()+`) RETURNING id`, me, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim due runs: %w", err)
	}
	return ids, nil
}

// ClaimWaitingRun takes over a waiting run to resume it with a new state, if it is still
// waiting at waitSeq (nobody resumed it or timed it out meanwhile).
func (s *Store) ClaimWaitingRun(ctx context.Context, id string, waitSeq int, me string, state []byte) (bool, error) {
	n, err := s.w.Exec(ctx, `UPDATE runs SET owner = $1, status = 'running', state = $2, wait_seq = wait_seq + 1, wake_at = NULL, updated_at = $3
		WHERE id = $4 AND status = 'waiting' AND wait_seq = $5`, me, string(state), nowMS(), id, waitSeq)
	if err != nil {
		return false, fmt.Errorf("resume run %s: %w", id, err)
	}
	return n == 1, nil
}

// WaitingRuns lists a user's waiting runs, newest first.
func (s *Store) WaitingRuns(ctx context.Context, userID int64) ([]Run, error) {
	rows, err := s.r.Query(ctx, `SELECT `+runCols+` FROM runs WHERE user_id = $1 AND status = 'waiting' ORDER BY updated_at DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("waiting runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("waiting runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReleaseRuns gives up this instance's unfinished runs so another instance (or this one
// after a restart) picks them up at once.
func (s *Store) ReleaseRuns(ctx context.Context, me string) error {
	if _, err := s.w.Exec(ctx, `UPDATE runs SET owner = NULL WHERE owner = $1 AND status IN ('queued', 'running')`, me); err != nil {
		return fmt.Errorf("release runs: %w", err)
	}
	return nil
}

// ReleaseRun gives up one run this instance cannot go on with, for the sweeper to retry.
func (s *Store) ReleaseRun(ctx context.Context, id, me string) error {
	if _, err := s.w.Exec(ctx, `UPDATE runs SET owner = NULL WHERE id = $1 AND owner = $2`, id, me); err != nil {
		return fmt.Errorf("release run %s: %w", id, err)
	}
	return nil
}

// FailRun ends a run this instance claimed but can never execute, with the reason.
func (s *Store) FailRun(ctx context.Context, id, me, reason string, now int64) error {
	if _, err := s.w.Exec(ctx, `UPDATE runs SET status = 'failed', error = $3, owner = NULL, wake_at = NULL, updated_at = $4
		WHERE id = $1 AND owner = $2`, id, me, reason, now); err != nil {
		return fmt.Errorf("fail run %s: %w", id, err)
	}
	return nil
}

// Heartbeat records that instance id is alive.
func (s *Store) Heartbeat(ctx context.Context, id string, startedAt, now int64) error {
	_, err := s.w.Exec(ctx, `INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`, id, startedAt, now)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// LiveInstances counts the instances that heartbeated at or after since (Unix ms).
func (s *Store) LiveInstances(ctx context.Context, since int64) (int, error) {
	var n int
	if err := s.r.QueryRow(ctx, `SELECT COUNT(*) FROM instances WHERE heartbeat_at >= $1`, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("count live instances: %w", err)
	}
	return n, nil
}

// RemoveInstance forgets an instance (at shutdown) and any long dead ones.
func (s *Store) RemoveInstance(ctx context.Context, id string, deadBefore int64) error {
	if _, err := s.w.Exec(ctx, `DELETE FROM instances WHERE id = $1 OR heartbeat_at < $2`, id, deadBefore); err != nil {
		return fmt.Errorf("remove instance: %w", err)
	}
	return nil
}

// CountRuns counts runs by status (all runs when status is empty).
func (s *Store) CountRuns(ctx context.Context, status string) (int, error) {
	var n int
	err := s.r.QueryRow(ctx, `SELECT COUNT(*) FROM runs WHERE $1 = '' OR status = $1`, status).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count runs: %w", err)
	}
	return n, nil
}
