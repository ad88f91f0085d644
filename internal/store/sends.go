package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A one-off send is a bot message outside any run (run_id NULL) with a send_key; while
// its provider call may be under way it is pending and owned by the sending instance
// (see migration 00004 and engine.SendBatch).

// Send is a stored one-off message with its key.
type Send struct {
	Message
	Key string
}

const sendCols = messageCols + `, send_key`

func scanSend(r Row) (Send, error) {
	var s Send
	var payload *string
	var key *string
	err := r.Scan(&s.ID, &s.BotID, &s.UserID, &s.RunID, &s.Step, &s.Channel, &s.Sender, &s.Type, &s.Text, &payload,
		&s.Status, &s.ProviderID, &s.Error, &s.CreatedAt, &s.UpdatedAt, &key)
	if payload != nil {
		s.Payload = []byte(*payload)
	}
	if key != nil {
		s.Key = *key
	}
	return s, err
}

// UpsertUserForSend creates or updates a send's recipient and returns its id and when
// they last wrote (Unix ms, nil when never), which WhatsApp's 24-hour window needs.
func (s *Store) UpsertUserForSend(ctx context.Context, q Querier, u UserUpsert) (int64, *time.Time, error) {
	var id int64
	var last *int64
	if err := q.QueryRow(ctx, s.upsertUserSQL("id, last_inbound_at"), u.args(nowMS())...).Scan(&id, &last); err != nil {
		return 0, nil, fmt.Errorf("upsert user %s: %w", u.ChannelUserID, err)
	}
	return id, msTimePtr(last), nil
}

// InsertSend stores m as a one-off send under key, owned by owner ("" for none: a send
// already settled). When the bot has a message with this key created at or after
// expiredBefore, nothing is stored and that message is returned with false; an older
// one gives its key up.
func (s *Store) InsertSend(ctx context.Context, q Querier, m Message, key, owner string, expiredBefore int64) (Send, bool, error) {
	if key == "" {
		return Send{}, false, errors.New("insert send: empty key")
	}
	var payload, own *string
	if m.Payload != nil {
		p := string(m.Payload)
		payload = &p
	}
	if owner != "" {
		own = &owner
	}
	if m.UpdatedAt == 0 {
		m.UpdatedAt = m.CreatedAt
	}
	for range 2 {
		var id int64
		err := q.QueryRow(ctx, `INSERT INTO messages (bot_id, user_id, channel, sender, type, text, payload, status, provider_id, error, created_at, updated_at, send_key, owner)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			ON CONFLICT DO NOTHING RETURNING id`,
			m.BotID, m.UserID, m.Channel, m.Sender, m.Type, m.Text, payload, m.Status, m.ProviderID, m.Error,
			m.CreatedAt, m.UpdatedAt, key, own).Scan(&id)
		if err == nil {
			m.ID = id
			return Send{Message: m, Key: key}, true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Send{}, false, fmt.Errorf("insert send: %w", err)
		}
		prev, err := scanSend(q.QueryRow(ctx, `SELECT `+sendCols+` FROM messages WHERE bot_id = $1 AND send_key = $2`, m.BotID, key))
		if err != nil {
			// The conflict was another unique value (a provider id): not a duplicate send.
			return Send{}, false, fmt.Errorf("insert send: find the message holding key %q: %w", key, err)
		}
		if prev.CreatedAt >= expiredBefore {
			return prev, false, nil
		}
		if _, err := q.Exec(ctx, `UPDATE messages SET send_key = NULL WHERE id = $1`, prev.ID); err != nil {
			return Send{}, false, fmt.Errorf("insert send: expire key: %w", err)
		}
	}
	return Send{}, false, fmt.Errorf("insert send: key %q stays taken", key)
}

// NewSend is a one-off send to store: the message, its key, and its owner ("" for a
// send already settled).
type NewSend struct {
	Message Message
	Key     string
	Owner   string
}

// sendRowsPerInsert bounds one multi-row insert (14 parameters a row).
const sendRowsPerInsert = 64

// InsertSends stores sends the way InsertSend stores one, many to a statement, and
// returns the id of each (0 for one it did not store, whose key was taken or which
// conflicted otherwise: InsertSend then says which). A key given twice is stored once,
// for its first send.
func (s *Store) InsertSends(ctx context.Context, q Querier, sends []NewSend) ([]int64, error) {
	ids := make([]int64, len(sends))
	var sql strings.Builder
	args := make([]any, 0, min(len(sends), sendRowsPerInsert)*14)
	for start := 0; start < len(sends); start += sendRowsPerInsert {
		chunk := sends[start:min(start+sendRowsPerInsert, len(sends))]
		sql.Reset()
		args = args[:0]
		sql.WriteString(`INSERT INTO messages (bot_id, user_id, channel, sender, type, text, payload, status, provider_id, error, created_at, updated_at, send_key, owner) VALUES `)
		for i, n := range chunk {
			if n.Key == "" {
				return nil, errors.New("insert sends: empty key")
			}
			m := n.Message
			var payload, own *string
			if m.Payload != nil {
				p := string(m.Payload)
				payload = &p
			}
			if n.Owner != "" {
				own = &n.Owner
			}
			if m.UpdatedAt == 0 {
				m.UpdatedAt = m.CreatedAt
			}
			if i > 0 {
				sql.WriteByte(',')
			}
			sql.WriteByte('(')
			for j := range 14 {
				if j > 0 {
					sql.WriteByte(',')
				}
				sql.WriteString("$" + strconv.Itoa(len(args)+j+1))
			}
			sql.WriteByte(')')
			args = append(args, m.BotID, m.UserID, m.Channel, m.Sender, m.Type, m.Text, payload, m.Status, m.ProviderID, m.Error,
				m.CreatedAt, m.UpdatedAt, n.Key, own)
		}
		sql.WriteString(` ON CONFLICT DO NOTHING RETURNING id, send_key`)
		rows, err := q.Query(ctx, sql.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("insert sends: %w", err)
		}
		stored := make(map[string]int64, len(chunk))
		for rows.Next() {
			var id int64
			var key string
			if err := rows.Scan(&id, &key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("insert sends: %w", err)
			}
			stored[key] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("insert sends: %w", err)
		}
		for i, n := range chunk {
			if id, ok := stored[n.Key]; ok {
				ids[start+i] = id
				delete(stored, n.Key) // a repeat of the key was not stored
			}
		}
	}
	return ids, nil
}

// SettleSend records the outcome of a one-off send owner made, and ends its ownership;
// false when owner no longer owns it (another instance took the send over).
func (s *Store) SettleSend(ctx context.Context, q Querier, id int64, owner, status string, providerID *string, errText string) (bool, error) {
	n, err := q.Exec(ctx, `UPDATE messages SET status = $3, provider_id = COALESCE($4, provider_id), error = $5, owner = NULL, updated_at = $6
		WHERE id = $1 AND owner = $2`, id, owner, status, providerID, errText, nowMS())
	if err != nil {
		return false, fmt.Errorf("settle send #%d: %w", id, err)
	}
	if n == 1 && status == MsgFailed {
		// A broadcast's recipient is marked sent before its message settles only when
		// the send was resumed after a crash; its tally must then show the failure.
		var key string
		if err := q.QueryRow(ctx, `SELECT COALESCE(send_key, '') FROM messages WHERE id = $1`, id).Scan(&key); err != nil {
			return false, fmt.Errorf("settle send #%d: %w", id, err)
		}
		if err := s.retallyDelivery(ctx, q, key, MsgPending, MsgFailed); err != nil {
			return false, fmt.Errorf("settle send #%d: %w", id, err)
		}
	}
	return n == 1, nil
}

// DeleteSend removes a pending one-off send owner made that did not go out (a passing
// refusal), freeing its key; false when owner no longer owns it.
func (s *Store) DeleteSend(ctx context.Context, q Querier, id int64, owner string) (bool, error) {
	n, err := q.Exec(ctx, `DELETE FROM messages WHERE id = $1 AND owner = $2 AND status = 'pending'`, id, owner)
	if err != nil {
		return false, fmt.Errorf("delete send #%d: %w", id, err)
	}
	return n == 1, nil
}

// SendByID reads a one-off send; q may be nil to read outside a transaction.
func (s *Store) SendByID(ctx context.Context, q Querier, id int64) (Send, error) {
	if q == nil {
		q = s.r
	}
	m, err := scanSend(q.QueryRow(ctx, `SELECT `+sendCols+` FROM messages WHERE id = $1`, id))
	if err != nil {
		return Send{}, fmt.Errorf("send #%d: %w", id, err)
	}
	return m, nil
}

// claimOrphanSendsSQL picks pending sends from the partial index messages_sending. The
// order is by +id, not id: ordered by the key itself, SQLite would rather walk the whole
// messages table in key order than sort the few pending sends, and that walk, every
// sweep on the writer, grows with every message ever stored.
func (s *Store) claimOrphanSendsSQL() string {
	return `UPDATE messages SET owner = $1, updated_at = $2 WHERE id IN (
		SELECT id FROM messages WHERE status = 'pending' AND run_id IS NULL
		AND (owner IS NULL OR owner NOT IN (SELECT id FROM instances WHERE heartbeat_at >= $3))
		ORDER BY +id LIMIT $4` + s.skipLocked() + `) RETURNING id`
}

// ClaimOrphanSends takes over up to limit pending one-off sends whose owner is not a live
// instance (its heartbeat is older than liveSince, or it gave them up).
func (s *Store) ClaimOrphanSends(ctx context.Context, me string, now, liveSince int64, limit int) ([]int64, error) {
	rows, err := s.w.Query(ctx, s.claimOrphanSendsSQL(), me, now, liveSince, limit)
	if err != nil {
		return nil, fmt.Errorf("claim orphaned sends: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("claim orphaned sends: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ReleaseSends gives up pending one-off sends owned by me, so a sweep (here or on
// another instance) settles them; no ids means all of them.
func (s *Store) ReleaseSends(ctx context.Context, me string, ids ...int64) error {
	var err error
	if len(ids) == 0 {
		_, err = s.w.Exec(ctx, `UPDATE messages SET owner = NULL WHERE owner = $1 AND status = 'pending' AND run_id IS NULL`, me)
	} else {
		for _, id := range ids {
			if _, e := s.w.Exec(ctx, `UPDATE messages SET owner = NULL WHERE id = $1 AND owner = $2`, id, me); e != nil {
				err = errors.Join(err, e)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("release sends: %w", err)
	}
	return nil
}
