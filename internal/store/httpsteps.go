package store

import (
	"context"
	"errors"
	"fmt"
)

// HTTPStepLogsKept is how many of its latest calls each http step keeps a log of.
const HTTPStepLogsKept = 20

// HTTPStep names an http node of a flow. Its state and logs are shared by every version
// of the flow, so a new version of a flow keeps its steps' history.
type HTTPStep struct {
	FlowID int64
	NodeID string
}

func (k HTTPStep) String() string { return fmt.Sprintf("http step %s of flow #%d", k.NodeID, k.FlowID) }

// HTTPStepState is what is kept about a step besides its logs. Times are Unix ms.
type HTTPStepState struct {
	// Shape is the response structure recorded at the first successful JSON call.
	Shape string
	// ChangedShape is the latest structure that differed from Shape; not empty means the
	// step is flagged until a remap.
	ChangedShape string
	// Calls counts the calls logged; the latest call's log id.
	Calls       int64
	LastCallAt  *int64
	AlertSentAt *int64
}

// HTTPStepLog is one logged call. Detail is the redacted request and response as JSON;
// the list of a step's logs leaves it out.
type HTTPStepLog struct {
	Seq        int64
	RunID      string // "" for a test call
	At         int64  // Unix ms
	DurationUS int64
	Method     string
	URL        string
	Status     int
	Error      string
	Message    string
	Detail     []byte
}

// HTTPRateWindow is the span the HTTP-step rate limit counts calls over.
const HTTPRateWindow = int64(60_000) // ms

// ClaimHTTPCalls takes n HTTP-step calls of the customer, all or none, and reports
// whether it got them: the customer's http_rate, or defaultLimit when it has none, caps
// the calls within any 60 s. The calls may be made from at to until (Unix ms; until ==
// at for a call made at once, later for a block an instance uses as calls come). A
// claim counts against the limit while its until is less than 60 s old, so calls made
// in its span and calls claimed within 60 s of its end never add up to more than the
// limit. Nothing is counted when the claim is refused. The customer's row is locked
// while counting, so the limit holds across every instance sharing the database. q is
// a transaction, or nil for one of its own.
func (s *Store) ClaimHTTPCalls(ctx context.Context, q Querier, customerID, at, until int64, defaultLimit, n int) (bool, error) {
	if n < 1 {
		return false, fmt.Errorf("claim %d http calls: want at least one", n)
	}
	if q == nil {
		var ok bool
		err := s.InTx(ctx, func(tx Tx) error {
			var err error
			ok, err = s.ClaimHTTPCalls(ctx, tx, customerID, at, until, defaultLimit, n)
			return err
		})
		return ok, err
	}
	lock := ""
	if s.dialect == Postgres {
		// NO KEY: bots of the customer may still be inserted meanwhile (their foreign key
		// takes a KEY SHARE lock).
		lock = " FOR NO KEY UPDATE"
	}
	limit := int64(defaultLimit)
	var own *int64
	err := q.QueryRow(ctx, `SELECT http_rate FROM customers WHERE id = $1`+lock, customerID).Scan(&own)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("claim %d http calls of customer %d: %w", n, customerID, err)
	}
	if own != nil {
		limit = *own
	}
	if int64(n) > limit {
		return false, nil
	}
	var used int64
	if err := q.QueryRow(ctx, `SELECT COALESCE(SUM(n), 0) FROM http_rate_claims WHERE customer_id = $1 AND ends_at > $2`,
		customerID, at-HTTPRateWindow).Scan(&used); err != nil {
		return false, fmt.Errorf("count http calls of customer %d: %w", customerID, err)
	}
	if used+int64(n) > limit {
		return false, nil
	}
	if _, err := q.Exec(ctx, `INSERT INTO http_rate_claims (customer_id, ends_at, n) VALUES ($1, $2, $3)
		ON CONFLICT (customer_id, ends_at) DO UPDATE SET n = http_rate_claims.n + excluded.n`, customerID, until, n); err != nil {
		return false, fmt.Errorf("claim %d http calls of customer %d: %w", n, customerID, err)
	}
	return true, nil
}

// DeleteExpiredHTTPClaims forgets rate-limit claims that ended before before, which
// no longer count against any limit.
func (s *Store) DeleteExpiredHTTPClaims(ctx context.Context, before int64) error {
	if _, err := s.w.Exec(ctx, `DELETE FROM http_rate_claims WHERE ends_at < $1`, before); err != nil {
		return fmt.Errorf("expire http rate claims: %w", err)
	}
	return nil
}

// CountHTTPStepCalls numbers n new calls of the step, the last made at lastAt (Unix ms),
// making the step's row at its first call. It returns the state before the calls, so
// that they are numbered Calls+1 to Calls+n. Inside a transaction it locks the row until
// the commit, so concurrent writers number calls one after the other.
func (s *Store) CountHTTPStepCalls(ctx context.Context, q Querier, k HTTPStep, n int, lastAt int64) (HTTPStepState, error) {
	if n < 1 {
		return HTTPStepState{}, fmt.Errorf("count %d calls of %s: want at least one", n, k)
	}
	var st HTTPStepState
	err := q.QueryRow(ctx, `INSERT INTO http_steps (flow_id, node_id, calls, last_call_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (flow_id, node_id) DO UPDATE SET calls = http_steps.calls + excluded.calls, last_call_at = excluded.last_call_at
		RETURNING shape, changed_shape, calls, alert_sent_at`, k.FlowID, k.NodeID, n, lastAt).
		Scan(&st.Shape, &st.ChangedShape, &st.Calls, &st.AlertSentAt)
	if err != nil {
		return HTTPStepState{}, fmt.Errorf("count calls of %s: %w", k, err)
	}
	st.Calls -= int64(n)
	return st, nil
}

// SetHTTPStepShapes writes the step's recorded and changed response structures.
func (s *Store) SetHTTPStepShapes(ctx context.Context, q Querier, k HTTPStep, shape, changed string) error {
	if _, err := q.Exec(ctx, `UPDATE http_steps SET shape = $3, changed_shape = $4 WHERE flow_id = $1 AND node_id = $2`,
		k.FlowID, k.NodeID, shape, changed); err != nil {
		return fmt.Errorf("set structure of %s: %w", k, err)
	}
	return nil
}

// PutHTTPStepLog stores the log of call l.Seq in its slot, replacing the call made
// HTTPStepLogsKept calls before it.
func (s *Store) PutHTTPStepLog(ctx context.Context, q Querier, k HTTPStep, l HTTPStepLog) error {
	err := queueExec(ctx, q, `INSERT INTO http_step_logs
		(flow_id, node_id, slot, seq, run_id, at, duration_us, method, url, status, error, message, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (flow_id, node_id, slot) DO UPDATE SET seq = excluded.seq, run_id = excluded.run_id,
			at = excluded.at, duration_us = excluded.duration_us, method = excluded.method, url = excluded.url,
			status = excluded.status, error = excluded.error, message = excluded.message, detail = excluded.detail`,
		[]any{k.FlowID, k.NodeID, l.Seq % HTTPStepLogsKept, l.Seq, l.RunID, l.At, l.DurationUS, l.Method, l.URL, l.Status,
			l.Error, l.Message, string(l.Detail)}, nil)
	if err != nil {
		return fmt.Errorf("log call %d of %s: %w", l.Seq, k, err)
	}
	return nil
}

// ClaimHTTPStepAlert takes the step's alert mail for now when none was sent since
// sentAfter (Unix ms), or since the last reset. Only one of any number of concurrent
// claimers gets it.
func (s *Store) ClaimHTTPStepAlert(ctx context.Context, q Querier, k HTTPStep, now, sentAfter int64) (bool, error) {
	n, err := q.Exec(ctx, `UPDATE http_steps SET alert_sent_at = $3
		WHERE flow_id = $1 AND node_id = $2 AND (alert_sent_at IS NULL OR alert_sent_at <= $4)`,
		k.FlowID, k.NodeID, now, sentAfter)
	if err != nil {
		return false, fmt.Errorf("claim alert of %s: %w", k, err)
	}
	return n == 1, nil
}

// ResetHTTPStepAlert forgets the step's last alert mail, so its next failure sends one.
// A step that was never called has nothing to reset.
func (s *Store) ResetHTTPStepAlert(ctx context.Context, k HTTPStep) error {
	if _, err := s.w.Exec(ctx, `UPDATE http_steps SET alert_sent_at = NULL WHERE flow_id = $1 AND node_id = $2`,
		k.FlowID, k.NodeID); err != nil {
		return fmt.Errorf("reset alert of %s: %w", k, err)
	}
	return nil
}

// RemapHTTPStep accepts the step's changed response structure as the recorded one, which
// clears the flag. A step that is not flagged keeps its structure.
func (s *Store) RemapHTTPStep(ctx context.Context, k HTTPStep) error {
	if _, err := s.w.Exec(ctx, `UPDATE http_steps SET shape = changed_shape, changed_shape = ''
		WHERE flow_id = $1 AND node_id = $2 AND changed_shape <> ''`, k.FlowID, k.NodeID); err != nil {
		return fmt.Errorf("remap %s: %w", k, err)
	}
	return nil
}

// HTTPStepState reads a step's state; ErrNotFound when it was never called.
func (s *Store) HTTPStepState(ctx context.Context, k HTTPStep) (HTTPStepState, error) {
	var st HTTPStepState
	err := s.r.QueryRow(ctx, `SELECT shape, changed_shape, calls, last_call_at, alert_sent_at FROM http_steps
		WHERE flow_id = $1 AND node_id = $2`, k.FlowID, k.NodeID).
		Scan(&st.Shape, &st.ChangedShape, &st.Calls, &st.LastCallAt, &st.AlertSentAt)
	if err != nil {
		return HTTPStepState{}, fmt.Errorf("%s: %w", k, err)
	}
	return st, nil
}

const httpStepLogCols = `seq, run_id, at, duration_us, method, url, status, error, message`

func scanHTTPStepLog(r Row, detail *string) (HTTPStepLog, error) {
	var l HTTPStepLog
	dest := []any{&l.Seq, &l.RunID, &l.At, &l.DurationUS, &l.Method, &l.URL, &l.Status, &l.Error, &l.Message}
	if detail != nil {
		dest = append(dest, detail)
	}
	err := r.Scan(dest...)
	return l, err
}

// HTTPStepLogs lists the step's kept logs, newest first, without their detail.
func (s *Store) HTTPStepLogs(ctx context.Context, k HTTPStep) ([]HTTPStepLog, error) {
	rows, err := s.r.Query(ctx, `SELECT `+httpStepLogCols+` FROM http_step_logs
		WHERE flow_id = $1 AND node_id = $2 ORDER BY seq DESC`, k.FlowID, k.NodeID)
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", k, err)
	}
	defer rows.Close()
	out := []HTTPStepLog{}
	for rows.Next() {
		l, err := scanHTTPStepLog(rows, nil)
		if err != nil {
			return nil, fmt.Errorf("logs of %s: %w", k, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logs of %s: %w", k, err)
	}
	return out, nil
}

// HTTPStepLog reads the log of call seq of the step, detail included; ErrNotFound when
// that call is not among the kept ones.
func (s *Store) HTTPStepLog(ctx context.Context, k HTTPStep, seq int64) (HTTPStepLog, error) {
	var detail string
	l, err := scanHTTPStepLog(s.r.QueryRow(ctx, `SELECT `+httpStepLogCols+`, detail FROM http_step_logs
		WHERE flow_id = $1 AND node_id = $2 AND slot = $3 AND seq = $4`, k.FlowID, k.NodeID, seq%HTTPStepLogsKept, seq), &detail)
	if err != nil {
		return HTTPStepLog{}, fmt.Errorf("log %d of %s: %w", seq, k, err)
	}
	l.Detail = []byte(detail)
	return l, nil
}
