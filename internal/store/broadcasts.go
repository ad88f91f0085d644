package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Broadcast statuses.
const (
	BroadcastScheduled  = "SCHEDULED"
	BroadcastPublishing = "PUBLISHING"
	BroadcastPublished  = "PUBLISHED"
	BroadcastCancelled  = "CANCELLED"
	BroadcastFailed     = "FAILED"
)

// Recipient statuses as stored; a sent recipient shows its last message's delivery
// status (delivered, read, failed) once the provider reports it.
const (
	RecipientQueued    = "queued"
	RecipientSending   = "sending"
	RecipientSent      = "sent"
	RecipientFailed    = "failed"
	RecipientCancelled = "cancelled"
)

// BroadcastSendKey is the one-off send key of recipient seq's message i of broadcast id:
// the engine sends each key at most once.
func BroadcastSendKey(id int64, i, seq int) string {
	return "broadcast:" + strconv.FormatInt(id, 10) + ":" + strconv.Itoa(i) + ":" + strconv.Itoa(seq)
}

// broadcastKeyPrefix is BroadcastSendKey without the seq, for SQL to append it to.
func broadcastKeyPrefix(id int64, i int) string {
	return "broadcast:" + strconv.FormatInt(id, 10) + ":" + strconv.Itoa(i) + ":"
}

// Broadcast is a stored broadcast.
type Broadcast struct {
	ID         int64
	BotID      int64
	APIVersion int
	Title      string
	Request    []byte
	// Summary is Request without its recipient lists, made when it was accepted: what a
	// summary or a list of broadcasts shows.
	Summary    []byte
	Content    []byte
	Channels   []string
	Status     string
	PublishAt  int64
	Owner      *string
	Recipients int
	Error      string
	CreatedAt  int64
	UpdatedAt  int64
	FinishedAt *int64
}

// broadcastCols are a broadcast's columns; broadcastHeadCols leave out its stored
// request (read as empty), which for a large broadcast is megabytes of recipient list
// that a summary, a page of recipients or a list of broadcasts does not show. The
// request has a table of its own (broadcast_requests), so that a change of status does
// not rewrite it: on SQLite, an update of a 100,000-recipient broadcast's row held the
// writer for 9 ms.
const (
	broadcastCols = broadcastColsHead + `COALESCE((SELECT request FROM broadcast_requests WHERE broadcast_id = broadcasts.id), '')` +
		broadcastColsTail
	broadcastHeadCols = broadcastColsHead + `'' AS request` + broadcastColsTail
	broadcastColsHead = `id, bot_id, api_version, title, `
	broadcastColsTail = `, summary, content, channels, status, publish_at, owner, recipients, error, created_at, updated_at, finished_at`
)

func scanBroadcast(r Row) (Broadcast, error) {
	var b Broadcast
	var req, summary, content, channels string
	err := r.Scan(&b.ID, &b.BotID, &b.APIVersion, &b.Title, &req, &summary, &content, &channels, &b.Status, &b.PublishAt, &b.Owner,
		&b.Recipients, &b.Error, &b.CreatedAt, &b.UpdatedAt, &b.FinishedAt)
	if err != nil {
		return Broadcast{}, err
	}
	b.Summary, b.Content = []byte(summary), []byte(content)
	if req != "" { // not read (broadcastHeadCols) when empty: a stored request never is
		b.Request = []byte(req)
	}
	if err := json.Unmarshal([]byte(channels), &b.Channels); err != nil {
		return Broadcast{}, fmt.Errorf("broadcast #%d channels: %w", b.ID, err)
	}
	return b, nil
}

// NewBroadcast is a broadcast to store with its recipients.
type NewBroadcast struct {
	Broadcast
	// RecipientIDs are channel user ids, in order.
	RecipientIDs []string
	// IdempotencyKey, when set, makes a retry within window return the first broadcast.
	IdempotencyKey string
}

// BroadcastAccepting is the status of a broadcast whose recipients are still being
// stored: no one sees, claims or cancels it. Accepting a large broadcast takes many small
// transactions, so that API triggers are never held up behind one big one; a broadcast
// left accepting by an instance that died is dropped (DropAbandonedBroadcasts).
const BroadcastAccepting = "ACCEPTING"

// ErrBroadcastAccepting is returned for an idempotency key whose broadcast is still
// being accepted.
var ErrBroadcastAccepting = errors.New("a broadcast with this idempotency key is still being accepted")

// BeginBroadcast stores a broadcast without its recipients, as accepting and owned by
// owner (the accepting instance); AddBroadcastRecipients stores them and EndAccepting
// makes it nb.Status. With an idempotency key already used within the window (after
// expiredBefore), it stores nothing and returns that broadcast's id and true.
func (s *Store) BeginBroadcast(ctx context.Context, nb NewBroadcast, owner string, expiredBefore int64) (int64, bool, error) {
	var id int64
	var dup bool
	err := s.InTx(ctx, func(tx Tx) error {
		id, dup = 0, false
		if nb.IdempotencyKey != "" {
			var status string
			err := tx.QueryRow(ctx, `SELECT id, status FROM broadcasts WHERE bot_id = $1 AND idem_key = $2 AND created_at >= $3`,
				nb.BotID, nb.IdempotencyKey, expiredBefore).Scan(&id, &status)
			if err == nil {
				if status == BroadcastAccepting {
					return ErrBroadcastAccepting
				}
				dup = true
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			// An expired claim of the key gives it up.
			if _, err := tx.Exec(ctx, `UPDATE broadcasts SET idem_key = NULL WHERE bot_id = $1 AND idem_key = $2`, nb.BotID, nb.IdempotencyKey); err != nil {
				return err
			}
		}
		channels, err := json.Marshal(nb.Channels)
		if err != nil {
			return err
		}
		var key, own *string
		if nb.IdempotencyKey != "" {
			key = &nb.IdempotencyKey
		}
		if owner != "" {
			own = &owner
		}
		b := nb.Broadcast
		err = tx.QueryRow(ctx, `INSERT INTO broadcasts (bot_id, api_version, title, summary, content, channels, status, publish_at,
			recipients, idem_key, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'ACCEPTING', $7, $8, $9, $10, $11, $11) RETURNING id`,
			b.BotID, b.APIVersion, b.Title, string(b.Summary), string(b.Content), string(channels), b.PublishAt,
			len(nb.RecipientIDs), key, own, b.CreatedAt).Scan(&id)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO broadcast_requests (broadcast_id, request) VALUES ($1, $2)`, id, string(b.Request))
		return err
	})
	if errors.Is(err, ErrBroadcastAccepting) {
		return 0, false, err
	}
	if err != nil {
		return 0, false, fmt.Errorf("create broadcast: %w", err)
	}
	return id, dup, nil
}

// AddBroadcastRecipients stores recipients of an accepting broadcast, ids being those
// from seq from on.
func (s *Store) AddBroadcastRecipients(ctx context.Context, q Querier, id int64, ids []string, from int, now int64) error {
	var sql strings.Builder
	args := make([]any, 0, recipientRowsPerInsert*2+2)
	for start := 0; start < len(ids); start += recipientRowsPerInsert {
		chunk := ids[start:min(start+recipientRowsPerInsert, len(ids))]
		sql.Reset()
		args = append(args[:0], id, now)
		sql.WriteString(`INSERT INTO broadcast_recipients (broadcast_id, seq, channel_user_id, status, updated_at) VALUES `)
		for i, cuid := range chunk {
			if i > 0 {
				sql.WriteByte(',')
			}
			args = append(args, from+start+i, cuid)
			fmt.Fprintf(&sql, "($1, $%d, $%d, 'queued', $2)", len(args)-1, len(args))
		}
		if _, err := q.Exec(ctx, sql.String(), args...); err != nil {
			return fmt.Errorf("store recipients of broadcast #%d: %w", id, err)
		}
	}
	return nil
}

// EndAccepting makes an accepting broadcast whose recipients are all stored status
// (scheduled): from now on it is seen, claimed and cancelled like any other.
func (s *Store) EndAccepting(ctx context.Context, id int64, status string) error {
	n, err := s.w.Exec(ctx, `UPDATE broadcasts SET status = $2, owner = NULL, updated_at = $3 WHERE id = $1 AND status = 'ACCEPTING'`,
		id, status, nowMS())
	if err != nil {
		return fmt.Errorf("accept broadcast #%d: %w", id, err)
	}
	if n != 1 {
		return fmt.Errorf("accept broadcast #%d: it was dropped while its recipients were stored", id)
	}
	return nil
}

// AnalyzeRecipients refreshes PostgreSQL's statistics of the broadcasts' recipients
// (a no-op on SQLite). A broadcast's recipients arrive all at once, and until the next
// autovacuum's ANALYZE, which can come after a whole fan-out has run, the planner
// still sees the table as it was: a fan-out of 20,000 recipients ran at 3,100–3,600/s
// with another bot's trigger p99 at 36–40 ms, against 6,000–6,400/s and 10 ms with
// statistics.
func (s *Store) AnalyzeRecipients(ctx context.Context) error {
	if s.dialect != Postgres {
		return nil
	}
	if _, err := s.w.Exec(ctx, `ANALYZE broadcast_recipients`); err != nil {
		return fmt.Errorf("analyze broadcast recipients: %w", err)
	}
	return nil
}

// DropAccepting deletes a broadcast whose acceptance failed, with the recipients stored
// so far.
func (s *Store) DropAccepting(ctx context.Context, id int64) error {
	return s.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM broadcast_recipients WHERE broadcast_id = $1
			AND EXISTS (SELECT 1 FROM broadcasts WHERE id = $1 AND status = 'ACCEPTING')`, id); err != nil {
			return fmt.Errorf("drop broadcast #%d: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM broadcasts WHERE id = $1 AND status = 'ACCEPTING'`, id); err != nil {
			return fmt.Errorf("drop broadcast #%d: %w", id, err)
		}
		return nil
	})
}

// DropAbandonedBroadcasts deletes broadcasts left accepting by an instance that is not
// alive (no heartbeat since liveSince) and untouched since then: the client got no
// answer, and its retry stores the broadcast again. It returns how many it dropped.
func (s *Store) DropAbandonedBroadcasts(ctx context.Context, liveSince int64) (int, error) {
	rows, err := s.w.Query(ctx, `SELECT id FROM broadcasts WHERE status = 'ACCEPTING' AND updated_at < $1
		AND (owner IS NULL OR owner NOT IN (SELECT id FROM instances WHERE heartbeat_at >= $1))`, liveSince)
	if err != nil {
		return 0, fmt.Errorf("find abandoned broadcasts: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("find abandoned broadcasts: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find abandoned broadcasts: %w", err)
	}
	for _, id := range ids {
		if err := s.DropAccepting(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// recipientRowsPerInsert bounds one multi-row insert (2 parameters a row).
const recipientRowsPerInsert = 500

// BroadcastByID returns a bot's broadcast.
func (s *Store) BroadcastByID(ctx context.Context, botID, id int64) (Broadcast, error) {
	return s.botBroadcast(ctx, broadcastCols, botID, id)
}

// BroadcastHeadByID is BroadcastByID without the stored request (Request is nil).
func (s *Store) BroadcastHeadByID(ctx context.Context, botID, id int64) (Broadcast, error) {
	return s.botBroadcast(ctx, broadcastHeadCols, botID, id)
}

func (s *Store) botBroadcast(ctx context.Context, cols string, botID, id int64) (Broadcast, error) {
	b, err := scanBroadcast(s.r.QueryRow(ctx, `SELECT `+cols+` FROM broadcasts WHERE id = $1 AND bot_id = $2
		AND status <> 'ACCEPTING'`, id, botID))
	if err != nil {
		return Broadcast{}, fmt.Errorf("broadcast #%d: %w", id, err)
	}
	return b, nil
}

// broadcastByIDAnyBot reads a broadcast for the fan-out, which knows only its id.
func (s *Store) broadcastByIDAnyBot(ctx context.Context, q Querier, id int64) (Broadcast, error) {
	b, err := scanBroadcast(q.QueryRow(ctx, `SELECT `+broadcastCols+` FROM broadcasts WHERE id = $1`, id))
	if err != nil {
		return Broadcast{}, fmt.Errorf("broadcast #%d: %w", id, err)
	}
	return b, nil
}

// BroadcastForFanOut reads a broadcast claimed for publishing.
func (s *Store) BroadcastForFanOut(ctx context.Context, id int64) (Broadcast, error) {
	return s.broadcastByIDAnyBot(ctx, s.r, id)
}

// Broadcasts lists a bot's broadcasts, newest first, before the cursor id (0: from the
// newest), without their stored requests (Request is nil).
func (s *Store) Broadcasts(ctx context.Context, botID, before int64, limit int) ([]Broadcast, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.r.Query(ctx, `SELECT `+broadcastHeadCols+` FROM broadcasts WHERE bot_id = $1 AND id < $2 AND status <> 'ACCEPTING'
		ORDER BY id DESC LIMIT $3`,
		botID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list broadcasts: %w", err)
	}
	defer rows.Close()
	out := []Broadcast{}
	for rows.Next() {
		b, err := scanBroadcast(rows)
		if err != nil {
			return nil, fmt.Errorf("list broadcasts: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// BroadcastTotals counts a broadcast's recipients by how far they got. Sent, Delivered
// and Read are cumulative (a read message was delivered and sent).
type BroadcastTotals struct {
	Recipients int `json:"recipients"`
	Queued     int `json:"queued"`
	Sent       int `json:"sent"`
	Delivered  int `json:"delivered"`
	Read       int `json:"read"`
	Failed     int `json:"failed"`
	Cancelled  int `json:"cancelled"`
}

// recipientStatusSQL is a recipient's status as shown: a sent recipient takes its last
// message's delivery status (shownWhenSent).
const recipientStatusSQL = `CASE WHEN r.status = 'sent' AND m.status IN ('delivered', 'read', 'failed') THEN m.status
	WHEN r.status = 'sending' THEN 'queued' ELSE r.status END`

// recipientMessageJoin finds a sent recipient's last message by its send key: $2 is the
// bot, $3 the key without the seq (see broadcastKeyPrefix).
const recipientMessageJoin = `LEFT JOIN messages m ON r.status = 'sent' AND m.bot_id = $2
	AND m.send_key = CAST($3 AS TEXT) || r.seq`

// BroadcastTotals counts the recipients of a broadcast by the status they show, from its
// tally: one row, however many recipients it has.
func (s *Store) BroadcastTotals(ctx context.Context, b Broadcast) (BroadcastTotals, error) {
	t := BroadcastTotals{Recipients: b.Recipients}
	err := s.r.QueryRow(ctx, `SELECT n_sent, n_delivered, n_read, n_failed, n_cancelled FROM broadcast_tallies
		WHERE broadcast_id = $1`, b.ID).Scan(&t.Sent, &t.Delivered, &t.Read, &t.Failed, &t.Cancelled)
	if err != nil && !errors.Is(err, ErrNotFound) { // no tally: every recipient is queued
		return BroadcastTotals{}, fmt.Errorf("totals of broadcast #%d: %w", b.ID, err)
	}
	// Queued includes those being sent to; sent, delivered and read are cumulative.
	t.Queued = t.Recipients - t.Sent - t.Delivered - t.Read - t.Failed - t.Cancelled
	t.Delivered += t.Read
	t.Sent += t.Delivered
	return t, nil
}

// BroadcastRecipient is one recipient as listed.
type BroadcastRecipient struct {
	Seq           int     `json:"seq"`
	ChannelUserID string  `json:"channel_user_id"`
	Status        string  `json:"status"`
	Error         string  `json:"error,omitempty"`
	MessageID     *int64  `json:"-"`
	ProviderID    *string `json:"-"`
	UpdatedAt     int64   `json:"-"`
}

// BroadcastRecipients pages through the recipients of a broadcast of messages messages
// in order, optionally with one shown status, and counts them. Without a status both the
// count and the skip to a numbered page read only the index of (broadcast_id, seq); a
// status, which a sent recipient takes from its last message, needs that message too.
func (s *Store) BroadcastRecipients(ctx context.Context, b Broadcast, messages int, status string, pq PageQuery) ([]BroadcastRecipient, Page, error) {
	id := b.ID
	from := ` FROM broadcast_recipients r WHERE r.broadcast_id = $1`
	filterArgs := []any{id}
	if status != "" {
		from = ` FROM broadcast_recipients r ` + recipientMessageJoin + ` WHERE r.broadcast_id = $1 AND ` + recipientStatusSQL + ` = $4`
		filterArgs = []any{id, b.BotID, broadcastKeyPrefix(id, messages-1), status}
	}
	l := listSQL{count: `SELECT COUNT(*)` + from, keys: `SELECT r.seq` + from, order: []string{"r.seq"}, filterArgs: filterArgs}
	out := []BroadcastRecipient{}
	var pg Page
	err := s.readList(ctx, pq, func(q Querier) error {
		total, after, past, err := s.pageStart(ctx, q, l, pq)
		pg.Total = total
		if err != nil || past {
			return err
		}
		args := []any{id, b.BotID, broadcastKeyPrefix(id, messages-1)}
		cond := ``
		if status != "" {
			args = append(args, status)
			cond += ` AND ` + recipientStatusSQL + ` = $4`
		}
		if after != nil {
			args = append(args, after.ID)
			cond += ` AND r.seq > $` + strconv.Itoa(len(args))
		}
		args = append(args, pq.Size+1)
		rows, err := q.Query(ctx, `SELECT r.seq, r.channel_user_id, `+recipientStatusSQL+`, CASE WHEN m.error <> '' THEN m.error ELSE r.error END,
			m.id, m.provider_id, r.updated_at FROM broadcast_recipients r `+recipientMessageJoin+`
			WHERE r.broadcast_id = $1`+cond+` ORDER BY r.seq LIMIT $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r BroadcastRecipient
			var errText *string
			if err := rows.Scan(&r.Seq, &r.ChannelUserID, &r.Status, &errText, &r.MessageID, &r.ProviderID, &r.UpdatedAt); err != nil {
				return err
			}
			if errText != nil {
				r.Error = *errText
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, Page{}, fmt.Errorf("list recipients of broadcast #%d: %w", id, err)
	}
	if len(out) > pq.Size {
		out = out[:pq.Size]
		pg.Next = &PageKey{ID: int64(out[len(out)-1].Seq)}
	}
	return out, pg, nil
}

// CancelBroadcast cancels a scheduled or publishing broadcast: its recipients not yet
// sent become cancelled. It returns the broadcast's status after the call (unchanged
// when it had already ended).
func (s *Store) CancelBroadcast(ctx context.Context, botID, id int64) (string, error) {
	var status string
	err := s.InTx(ctx, func(tx Tx) error {
		now := nowMS()
		err := tx.QueryRow(ctx, `UPDATE broadcasts SET status = 'CANCELLED', updated_at = $3, finished_at = $3, owner = NULL
			WHERE id = $1 AND bot_id = $2 AND status IN ('SCHEDULED', 'PUBLISHING') RETURNING status`, id, botID, now).Scan(&status)
		if errors.Is(err, ErrNotFound) {
			b, err := s.broadcastByIDAnyBot(ctx, tx, id)
			if err != nil || b.BotID != botID || b.Status == BroadcastAccepting {
				return fmt.Errorf("broadcast #%d: %w", id, ErrNotFound)
			}
			status = b.Status
			return nil
		}
		if err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `UPDATE broadcast_recipients SET status = 'cancelled', updated_at = $2
			WHERE broadcast_id = $1 AND status = 'queued'`, id, now)
		if err != nil {
			return err
		}
		return addToTally(ctx, tx, id, map[string]int{RecipientCancelled: int(n)})
	})
	if err != nil {
		return "", fmt.Errorf("cancel broadcast #%d: %w", id, err)
	}
	return status, nil
}

// ClaimBroadcasts takes up to limit broadcasts to publish: scheduled ones whose time came,
// and publishing ones whose owner is not a live instance (it died mid-way).
func (s *Store) ClaimBroadcasts(ctx context.Context, me string, now, liveSince int64, limit int) ([]int64, error) {
	rows, err := s.w.Query(ctx, `UPDATE broadcasts SET status = 'PUBLISHING', owner = $1, updated_at = $2 WHERE id IN (
		SELECT id FROM broadcasts WHERE publish_at <= $2 AND (status = 'SCHEDULED' OR (status = 'PUBLISHING'
			AND (owner IS NULL OR owner NOT IN (SELECT id FROM instances WHERE heartbeat_at >= $3))))
		ORDER BY publish_at LIMIT $4`+s.skipLocked()+`) RETURNING id`, me, now, liveSince, limit)
	if err != nil {
		return nil, fmt.Errorf("claim broadcasts: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("claim broadcasts: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ReleaseBroadcasts gives up this instance's broadcasts (at shutdown) for another
// instance, or this one after a restart, to go on with.
func (s *Store) ReleaseBroadcasts(ctx context.Context, me string) error {
	if _, err := s.w.Exec(ctx, `UPDATE broadcasts SET owner = NULL WHERE owner = $1 AND status = 'PUBLISHING'`, me); err != nil {
		return fmt.Errorf("release broadcasts: %w", err)
	}
	return nil
}

// FanOutRecipient is a recipient the fan-out works on, with its user when it has one.
type FanOutRecipient struct {
	Seq           int
	ChannelUserID string
	Status        string
	// User, when the bot has this user: nil means unknown.
	UserID      int64
	UserChannel string
	LastInbound *time.Time
	Phone       string
}

// NextRecipients returns up to limit recipients of the broadcast in the given status,
// after seq, in order, with their users. It reads from the readers: the fan-out's own
// writes, which it follows, are committed before it asks.
func (s *Store) NextRecipients(ctx context.Context, botID, id int64, status string, after, limit int) ([]FanOutRecipient, error) {
	phoneExpr := `json_extract(u.attrs, '$."user.phone_no"')`
	if s.dialect == Postgres {
		phoneExpr = `(u.attrs ->> 'user.phone_no')`
	}
	rows, err := s.r.Query(ctx, `SELECT r.seq, r.channel_user_id, r.status, u.id, u.channel, u.last_inbound_at, `+phoneExpr+`
		FROM broadcast_recipients r LEFT JOIN users u ON u.bot_id = $1 AND u.channel_user_id = r.channel_user_id
		WHERE r.broadcast_id = $2 AND r.status = $3 AND r.seq > $4 ORDER BY r.seq LIMIT $5`, botID, id, status, after, limit)
	if err != nil {
		return nil, fmt.Errorf("recipients of broadcast #%d: %w", id, err)
	}
	defer rows.Close()
	out := []FanOutRecipient{}
	for rows.Next() {
		var r FanOutRecipient
		var uid *int64
		var ch, ph *string
		var last *int64
		if err := rows.Scan(&r.Seq, &r.ChannelUserID, &r.Status, &uid, &ch, &last, &ph); err != nil {
			return nil, fmt.Errorf("recipients of broadcast #%d: %w", id, err)
		}
		if uid != nil {
			r.UserID, r.UserChannel, r.LastInbound = *uid, *ch, msTimePtr(last)
			if ph != nil {
				r.Phone = *ph
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkRecipients moves recipients (by seq) of broadcast b, whose recipients get
// messages messages each, from one status to another in one statement, setting their
// error, and returns the seqs it moved: a recipient no longer in status from (cancelled
// meanwhile, say) is left alone. The broadcast's tally moves with them; a recipient
// marked sent is counted by its last message's delivery status, which a provider may
// have reported already.
func (s *Store) MarkRecipients(ctx context.Context, q Querier, b Broadcast, messages int, seqs []int, from, to, errText string) (map[int]bool, error) {
	won := make(map[int]bool, len(seqs))
	if len(seqs) == 0 {
		return won, nil
	}
	var sql strings.Builder
	args := []any{b.ID, from, to, errText, nowMS()}
	sql.WriteString(`UPDATE broadcast_recipients SET status = $3, error = $4, updated_at = $5
		WHERE broadcast_id = $1 AND status = $2 AND seq IN (`)
	for i, seq := range seqs {
		if i > 0 {
			sql.WriteByte(',')
		}
		args = append(args, seq)
		sql.WriteString("$" + strconv.Itoa(len(args)))
	}
	sql.WriteString(`) RETURNING seq`)
	rows, err := q.Query(ctx, sql.String(), args...)
	if err == nil {
		err = collectSeqs(rows, won)
	}
	if err != nil {
		return nil, fmt.Errorf("update recipients of broadcast #%d: %w", b.ID, err)
	}
	if len(won) == 0 {
		return won, nil
	}
	delta := map[string]int{from: -len(won)}
	if to == RecipientSent {
		shown, err := s.lastMessagesShown(ctx, q, b.BotID, broadcastKeyPrefix(b.ID, messages-1), won)
		if err != nil {
			return nil, fmt.Errorf("update recipients of broadcast #%d: %w", b.ID, err)
		}
		for st, n := range shown {
			delta[st] += n
		}
	} else {
		delta[to] += len(won)
	}
	if err := addToTally(ctx, q, b.ID, delta); err != nil {
		return nil, err
	}
	return won, nil
}

// collectSeqs reads rows of seqs into a set, and closes them.
func collectSeqs(rows Rows, into map[int]bool) error {
	defer rows.Close()
	for rows.Next() {
		var seq int
		if err := rows.Scan(&seq); err != nil {
			return err
		}
		into[seq] = true
	}
	return rows.Err()
}

// lastMessagesShown counts the recipients seqs of a broadcast by the status their last
// message (key lastKey+seq) gives them once sent (see shownWhenSent).
func (s *Store) lastMessagesShown(ctx context.Context, q Querier, botID int64, lastKey string, seqs map[int]bool) (map[string]int, error) {
	var sql strings.Builder
	args := []any{botID}
	sql.WriteString(`SELECT status FROM messages WHERE bot_id = $1 AND send_key IN (`)
	for seq := range seqs {
		if len(args) > 1 {
			sql.WriteByte(',')
		}
		args = append(args, lastKey+strconv.Itoa(seq))
		sql.WriteString("$" + strconv.Itoa(len(args)))
	}
	sql.WriteByte(')')
	if s.dialect == Postgres {
		// Planned for each call, not once for the connection: a fan-out into a messages
		// table that was nearly empty when the statement was first prepared otherwise
		// keeps a sequential scan of it for good, and ran at 600-1,000 recipients/s.
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	rows, err := q.Query(ctx, sql.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("last messages: %w", err)
	}
	defer rows.Close()
	shown := map[string]int{RecipientSent: len(seqs)} // a message not found leaves "sent"
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			return nil, fmt.Errorf("last messages: %w", err)
		}
		if to := shownWhenSent(st); to != RecipientSent {
			shown[RecipientSent]--
			shown[to]++
		}
	}
	return shown, rows.Err()
}

// shownWhenSent is the status a sent recipient shows, given its last message's: the
// provider's delivery status, once it reported one.
func shownWhenSent(messageStatus string) string {
	switch messageStatus {
	case MsgDelivered, MsgRead, MsgFailed:
		return messageStatus
	}
	return RecipientSent
}

// addToTally changes broadcast id's counts by delta (status shown → change). Queued and
// sending are not counted (see broadcast_tallies), so moves between them cost nothing.
// The tally is one row, so a statement that moves recipients waits for at most one
// other's lock on it, and never deadlocks there.
func addToTally(ctx context.Context, q Querier, id int64, delta map[string]int) error {
	kept := []int{delta[RecipientSent], delta[MsgDelivered], delta[MsgRead], delta[RecipientFailed], delta[RecipientCancelled]}
	if !slices.ContainsFunc(kept, func(n int) bool { return n != 0 }) {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO broadcast_tallies (broadcast_id, n_sent, n_delivered, n_read, n_failed, n_cancelled)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (broadcast_id) DO UPDATE SET
		n_sent = broadcast_tallies.n_sent + excluded.n_sent, n_delivered = broadcast_tallies.n_delivered + excluded.n_delivered,
		n_read = broadcast_tallies.n_read + excluded.n_read, n_failed = broadcast_tallies.n_failed + excluded.n_failed,
		n_cancelled = broadcast_tallies.n_cancelled + excluded.n_cancelled`, id, kept[0], kept[1], kept[2], kept[3], kept[4])
	if err != nil {
		return fmt.Errorf("tally of broadcast #%d: %w", id, err)
	}
	return nil
}

// retallyDelivery moves a sent recipient of a broadcast in its broadcast's tally when a
// delivery status changes its last message (key) from status was to is. Messages that
// are not a broadcast's, not a recipient's last, or whose recipient is not marked sent
// yet change nothing: MarkRecipients counts the latter by the status they have then.
func (s *Store) retallyDelivery(ctx context.Context, q Querier, key, was, is string) error {
	id, i, seq, ok := parseBroadcastSendKey(key)
	if !ok || shownWhenSent(was) == shownWhenSent(is) {
		return nil
	}
	var content string
	var status string
	// On PostgreSQL the recipient's row is locked, so that a MarkRecipients running
	// beside this either counted the new status or waits and is seen here as sent.
	err := q.QueryRow(ctx, `SELECT b.content, r.status FROM broadcast_recipients r JOIN broadcasts b ON b.id = r.broadcast_id
		WHERE r.broadcast_id = $1 AND r.seq = $2`+s.forUpdateOf("r"), id, seq).Scan(&content, &status)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted by retention
	}
	if err != nil {
		return fmt.Errorf("recipient %d of broadcast #%d: %w", seq, id, err)
	}
	var contents []json.RawMessage
	if err := json.Unmarshal([]byte(content), &contents); err != nil {
		return fmt.Errorf("broadcast #%d content: %w", id, err)
	}
	if status != RecipientSent || i != len(contents)-1 {
		return nil
	}
	return addToTally(ctx, q, id, map[string]int{shownWhenSent(was): -1, shownWhenSent(is): 1})
}

// parseBroadcastSendKey takes BroadcastSendKey apart.
func parseBroadcastSendKey(key string) (id int64, i, seq int, ok bool) {
	rest, found := strings.CutPrefix(key, "broadcast:")
	parts := strings.Split(rest, ":")
	if !found || len(parts) != 3 {
		return 0, 0, 0, false
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	i, err2 := strconv.Atoi(parts[1])
	seq, err3 := strconv.Atoi(parts[2])
	return id, i, seq, err1 == nil && err2 == nil && err3 == nil
}

// FinishBroadcast marks a publishing broadcast owned by me as published when no
// recipient is left to send to.
func (s *Store) FinishBroadcast(ctx context.Context, id int64, me string) (bool, error) {
	now := nowMS()
	n, err := s.w.Exec(ctx, `UPDATE broadcasts SET status = 'PUBLISHED', owner = NULL, updated_at = $3, finished_at = $3
		WHERE id = $1 AND owner = $2 AND status = 'PUBLISHING'
		AND NOT EXISTS (SELECT 1 FROM broadcast_recipients WHERE broadcast_id = $1 AND status IN ('queued', 'sending'))`, id, me, now)
	if err != nil {
		return false, fmt.Errorf("finish broadcast #%d: %w", id, err)
	}
	return n == 1, nil
}

// BroadcastOwned reports whether me still owns a publishing broadcast (it was not
// cancelled or taken over).
func (s *Store) BroadcastOwned(ctx context.Context, id int64, me string) (bool, error) {
	var n int
	err := s.r.QueryRow(ctx, `SELECT COUNT(*) FROM broadcasts WHERE id = $1 AND owner = $2 AND status = 'PUBLISHING'`, id, me).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("broadcast #%d: %w", id, err)
	}
	return n == 1, nil
}

// ForgetBroadcastIdempotencyKeys drops keys older than before.
func (s *Store) ForgetBroadcastIdempotencyKeys(ctx context.Context, before int64) error {
	if _, err := s.w.Exec(ctx, `UPDATE broadcasts SET idem_key = NULL WHERE idem_key IS NOT NULL AND created_at < $1`, before); err != nil {
		return fmt.Errorf("expire broadcast idempotency keys: %w", err)
	}
	return nil
}
