package store

import (
	"context"
	"errors"
	"fmt"
)

// Message senders.
const (
	SenderBot  = "bot"
	SenderUser = "user"
)

// Message statuses. Outbound: pending → sent → delivered → read, or failed; inbound
// messages are received.
const (
	MsgPending   = "pending"
	MsgSent      = "sent"
	MsgDelivered = "delivered"
	MsgRead      = "read"
	MsgFailed    = "failed"
	MsgReceived  = "received"
)

// Message is one message of a conversation.
type Message struct {
	ID         int64
	BotID      int64
	UserID     int64
	RunID      *string
	Step       *int
	Channel    string
	Sender     string
	Type       string
	Text       string
	Payload    []byte // JSON, nil when none
	Status     string
	ProviderID *string
	Error      string
	CreatedAt  int64
	UpdatedAt  int64
}

const messageCols = `id, bot_id, user_id, run_id, step, channel, sender, type, text, payload, status, provider_id, error, created_at, updated_at`

func scanMessage(r Row) (Message, error) {
	var m Message
	var payload *string
	err := r.Scan(&m.ID, &m.BotID, &m.UserID, &m.RunID, &m.Step, &m.Channel, &m.Sender, &m.Type, &m.Text, &payload,
		&m.Status, &m.ProviderID, &m.Error, &m.CreatedAt, &m.UpdatedAt)
	if payload != nil {
		m.Payload = []byte(*payload)
	}
	return m, err
}

// InsertMessage stores a message unless one with the same provider id, or the same run
// step, is already stored; then it returns that message's id and false.
func (s *Store) InsertMessage(ctx context.Context, q Querier, m Message) (int64, bool, error) {
	var payload *string
	if m.Payload != nil {
		p := string(m.Payload)
		payload = &p
	}
	if m.CreatedAt == 0 {
		m.CreatedAt = nowMS()
	}
	if m.UpdatedAt == 0 {
		m.UpdatedAt = m.CreatedAt
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO messages (bot_id, user_id, run_id, step, channel, sender, type, text, payload, status, provider_id, error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT DO NOTHING RETURNING id`,
		m.BotID, m.UserID, m.RunID, m.Step, m.Channel, m.Sender, m.Type, m.Text, payload, m.Status, m.ProviderID, m.Error,
		m.CreatedAt, m.UpdatedAt).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, false, fmt.Errorf("insert message: %w", err)
	}
	switch {
	case m.ProviderID != nil:
		err = q.QueryRow(ctx, `SELECT id FROM messages WHERE bot_id = $1 AND channel = $2 AND provider_id = $3`, m.BotID, m.Channel, *m.ProviderID).Scan(&id)
	case m.RunID != nil:
		err = q.QueryRow(ctx, `SELECT id FROM messages WHERE run_id = $1 AND step = $2`, *m.RunID, m.Step).Scan(&id)
	}
	if err != nil {
		return 0, false, fmt.Errorf("find duplicate message: %w", err)
	}
	return id, false, nil
}

// AddMessage stores a message that needs no id back (a run's local message), unless its
// run step already has one: the cheaper twin of InsertMessage for the engine's hot path.
func (s *Store) AddMessage(ctx context.Context, q Querier, m Message) error {
	if m.CreatedAt == 0 {
		m.CreatedAt = nowMS()
	}
	var payload *string
	if m.Payload != nil {
		p := string(m.Payload)
		payload = &p
	}
	// With no user id, the message is its run's user's: looked up by the statement, so
	// that it can be queued behind the one that stores the run (Tx.QueueExec).
	user := "$2"
	if m.UserID == 0 && m.RunID != nil {
		user = "(SELECT user_id FROM runs WHERE id = $3 AND $2 = 0)" // "$2 = 0" types the unused argument

	}
	err := queueExec(ctx, q, `INSERT INTO messages (bot_id, user_id, run_id, step, channel, sender, type, text, payload, status, provider_id, error, created_at, updated_at)
		VALUES ($1, `+user+`, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
		ON CONFLICT DO NOTHING`,
		[]any{m.BotID, m.UserID, m.RunID, m.Step, m.Channel, m.Sender, m.Type, m.Text, payload, m.Status, m.ProviderID, m.Error, m.CreatedAt}, nil)
	if err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	return nil
}

// MessageByRunStep returns the message a run's step produced.
func (s *Store) MessageByRunStep(ctx context.Context, q Querier, runID string, step int) (Message, error) {
	if q == nil {
		q = s.r
	}
	m, err := scanMessage(q.QueryRow(ctx, `SELECT `+messageCols+` FROM messages WHERE run_id = $1 AND step = $2`, runID, step))
	if err != nil {
		return Message{}, fmt.Errorf("message of run %s step %d: %w", runID, step, err)
	}
	return m, nil
}

// SetStepMessageOutcome records a send's result on the message a run step stored.
func (s *Store) SetStepMessageOutcome(ctx context.Context, q Querier, runID string, step int, status string, providerID *string, errText string) error {
	err := queueExec(ctx, q, `UPDATE messages SET status = $3, provider_id = COALESCE($4, provider_id), error = $5, updated_at = $6
		WHERE run_id = $1 AND step = $2`, []any{runID, step, status, providerID, errText, nowMS()}, nil)
	if err != nil {
		return fmt.Errorf("update message of run %s step %d: %w", runID, step, err)
	}
	return nil
}

// statusRank orders delivery statuses; a late "delivered" must not undo a "read".
const statusRank = `CASE %s WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE 0 END`

// ApplyDeliveryStatus updates the message with this provider id to status, unless it
// already has a later one. It reports whether a stored message was found. A broadcast's
// message moves its recipient in the broadcast's tally (retallyDelivery) in the same
// transaction.
func (s *Store) ApplyDeliveryStatus(ctx context.Context, botID int64, providerID, status, errText string) (bool, error) {
	type stored struct {
		id          int64
		status, key string
	}
	var found bool
	err := s.InTx(ctx, func(tx Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, status, COALESCE(send_key, '') FROM messages WHERE bot_id = $1 AND provider_id = $2`+
			s.forUpdateOf("messages"), botID, providerID)
		if err != nil {
			return err
		}
		var ms []stored
		for rows.Next() {
			var m stored
			if err := rows.Scan(&m.id, &m.status, &m.key); err != nil {
				rows.Close()
				return err
			}
			ms = append(ms, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		found = len(ms) > 0
		for _, m := range ms {
			n, err := tx.Exec(ctx, `UPDATE messages SET status = $2, error = CASE WHEN $3 = '' THEN error ELSE $3 END, updated_at = $4
				WHERE id = $1 AND `+fmt.Sprintf(statusRank, "status")+` < `+fmt.Sprintf(statusRank, "$2"), m.id, status, errText, nowMS())
			if err != nil {
				return err
			}
			if n == 1 {
				if err := s.retallyDelivery(ctx, tx, m.key, m.status, status); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("update status of %s: %w", providerID, err)
	}
	return found, nil
}
