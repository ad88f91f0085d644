package store

import (
	"context"
	"errors"
	"fmt"
)

// The retention deletes below each remove at most limit rows in one short statement (or
// transaction), so a writer waits for one small batch at most; the caller loops with a
// pause between batches. Times are Unix ms.

// DeleteFinishedRuns removes up to limit completed or failed runs last updated before
// before. Queued, running and waiting runs are never touched. A run's messages and
// HTTP-call logs stay: they follow their own retention. Its idempotency key needs no
// care as long as before is older than the 24-hour idempotency window (keys older than
// that are expired and cleaned up).
func (s *Store) DeleteFinishedRuns(ctx context.Context, before int64, limit int) (int64, error) {
	n, err := s.w.Exec(ctx, `DELETE FROM runs WHERE id IN (
		SELECT id FROM runs WHERE status IN ('completed', 'failed') AND updated_at < $1 LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("delete old runs: %w", err)
	}
	return n, nil
}

// DeleteOldMessages removes up to limit messages created before before, except those
// still pending (a send in progress) and those of a run that is not finished: a waiting
// run replays its steps' messages to avoid sending one twice. (A message without a run
// matches no run. Written as a plain NOT EXISTS, PostgreSQL looks each run up by its key;
// behind an OR it hashed the whole runs table for every batch.)
func (s *Store) DeleteOldMessages(ctx context.Context, before int64, limit int) (int64, error) {
	n, err := s.w.Exec(ctx, `DELETE FROM messages WHERE id IN (
		SELECT m.id FROM messages m WHERE m.created_at < $1 AND m.status <> 'pending'
			AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = m.run_id AND r.status NOT IN ('completed', 'failed'))
		LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("delete old messages: %w", err)
	}
	return n, nil
}

// DeleteOldHTTPStepLogs removes up to limit HTTP-step call logs made before before. A
// step's call counter is untouched, so later calls keep their numbers and slots.
func (s *Store) DeleteOldHTTPStepLogs(ctx context.Context, before int64, limit int) (int64, error) {
	n, err := s.w.Exec(ctx, `DELETE FROM http_step_logs WHERE (flow_id, node_id, slot) IN (
		SELECT flow_id, node_id, slot FROM http_step_logs WHERE at < $1 LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("delete old http step logs: %w", err)
	}
	return n, nil
}

// DeleteOldBroadcasts takes apart one finished (published, cancelled or failed) broadcast
// that finished before before: up to limit of its recipients per call, then, once none
// is left, the broadcast itself. It returns the rows deleted; 0 means nothing is left to
// do. Scheduled and publishing broadcasts are never touched.
func (s *Store) DeleteOldBroadcasts(ctx context.Context, before int64, limit int) (int64, error) {
	var total int64
	err := s.InTx(ctx, func(tx Tx) error {
		total = 0
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM broadcasts WHERE status IN ('PUBLISHED', 'CANCELLED', 'FAILED')
			AND COALESCE(finished_at, updated_at) < $1 ORDER BY id LIMIT 1`, before).Scan(&id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `DELETE FROM broadcast_recipients WHERE broadcast_id = $1 AND seq IN (
			SELECT seq FROM broadcast_recipients WHERE broadcast_id = $1 ORDER BY seq LIMIT $2)`, id, limit)
		if err != nil {
			return err
		}
		total = n
		if n == int64(limit) {
			return nil // more recipients to go: the next batch
		}
		if n, err = tx.Exec(ctx, `DELETE FROM broadcasts WHERE id = $1`, id); err != nil {
			return err
		}
		total += n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete old broadcasts: %w", err)
	}
	return total, nil
}
