package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// User is a person a bot talks to on a channel.
type User struct {
	ID            int64             `json:"-"`
	BotID         int64             `json:"-"`
	ChannelUserID string            `json:"channel_user_id"`
	Channel       string            `json:"channel"`
	Attrs         map[string]string `json:"attributes"`
	LastInboundAt *time.Time        `json:"last_inbound_at,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// UserUpsert is a user to create or update.
type UserUpsert struct {
	BotID         int64
	ChannelUserID string
	Channel       string
	// Attrs are merged over the stored ones.
	Attrs map[string]string
	// Defaults apply only where the user has no value yet (user.user_name).
	Defaults map[string]string
	// Inbound marks a message from the user, which opens WhatsApp's 24-hour window.
	Inbound bool
	// Unchanged says the caller read the user as already holding these values: the
	// user is then only created if it is missing, and an existing row is neither written
	// nor locked (a user every trigger names stays off the commits' lock path).
	Unchanged bool
}

func marshalAttrs(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil { // a map of strings always marshals
		panic(err)
	}
	return string(b)
}

func unmarshalAttrs(s []byte) (map[string]string, error) {
	m := map[string]string{}
	if len(s) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(s, &m); err != nil {
		return nil, fmt.Errorf("stored attributes: %w", err)
	}
	return m, nil
}

// upsertUserSQL merges defaults under the stored attributes and the new ones over them.
func (s *Store) upsertUserSQL(returning string) string {
	if s.dialect == Postgres {
		return `INSERT INTO users (bot_id, channel_user_id, channel, attrs, last_inbound_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4::jsonb || $5::jsonb, $6, $7, $7)
		ON CONFLICT (bot_id, channel_user_id) DO UPDATE SET
			channel = excluded.channel,
			attrs = $4::jsonb || users.attrs || $5::jsonb,
			last_inbound_at = COALESCE(excluded.last_inbound_at, users.last_inbound_at),
			updated_at = excluded.updated_at
		RETURNING ` + strings.Replace(returning, "attrs", "attrs::text", 1)
	}
	return `INSERT INTO users (bot_id, channel_user_id, channel, attrs, last_inbound_at, created_at, updated_at)
		VALUES ($1, $2, $3, json_patch($4, $5), $6, $7, $7)
		ON CONFLICT (bot_id, channel_user_id) DO UPDATE SET
			channel = excluded.channel,
			attrs = json_patch(json_patch($4, users.attrs), $5),
			last_inbound_at = COALESCE(excluded.last_inbound_at, users.last_inbound_at),
			updated_at = excluded.updated_at
		RETURNING ` + returning
}

func (u UserUpsert) args(now int64) []any {
	var inbound *int64
	if u.Inbound {
		inbound = &now
	}
	return []any{u.BotID, u.ChannelUserID, u.Channel, marshalAttrs(u.Defaults), marshalAttrs(u.Attrs), inbound, now}
}

// UpsertUser creates the user or merges attributes into it, returning the stored user.
func (s *Store) UpsertUser(ctx context.Context, q Querier, u UserUpsert) (User, error) {
	now := nowMS()
	out := User{BotID: u.BotID, ChannelUserID: u.ChannelUserID, Channel: u.Channel, UpdatedAt: msTime(now)}
	var attrs []byte
	var last *int64
	var created int64
	err := q.QueryRow(ctx, s.upsertUserSQL("id, attrs, last_inbound_at, created_at"), u.args(now)...).
		Scan(&out.ID, &attrs, &last, &created)
	if err != nil {
		return User{}, fmt.Errorf("upsert user %s: %w", u.ChannelUserID, err)
	}
	if out.Attrs, err = unmarshalAttrs(attrs); err != nil {
		return User{}, err
	}
	out.LastInboundAt, out.CreatedAt = msTimePtr(last), msTime(created)
	return out, nil
}

// UpsertUserID is UpsertUser for callers that need only the id (the trigger hot path,
// which read the attributes before).
func (s *Store) UpsertUserID(ctx context.Context, q Querier, u UserUpsert) (int64, error) {
	var id int64
	if err := q.QueryRow(ctx, s.upsertUserSQL("id"), u.args(nowMS())...).Scan(&id); err != nil {
		return 0, fmt.Errorf("upsert user %s: %w", u.ChannelUserID, err)
	}
	return id, nil
}

// QueueUpsertUser queues UpsertUser in tx (Tx.QueueRow); statements queued after it
// find the user by its channel user id (InsertRunOfUser). With u.Unchanged, an
// existing user is left as it is.
func (s *Store) QueueUpsertUser(tx Tx, u UserUpsert) error {
	query := s.upsertUserSQL("id")
	if u.Unchanged {
		query = `INSERT INTO users (bot_id, channel_user_id, channel, attrs, last_inbound_at, created_at, updated_at)
		VALUES ($1, $2, $3, ` + s.mergeAttrs("$4", "$5") + `, $6, $7, $7)
		ON CONFLICT (bot_id, channel_user_id) DO NOTHING`
	}
	if err := tx.QueueExec(query, u.args(nowMS()), nil); err != nil {
		return fmt.Errorf("upsert user %s: %w", u.ChannelUserID, err)
	}
	return nil
}

func (s *Store) mergeAttrs(a, b string) string {
	if s.dialect == Postgres {
		return a + "::jsonb || " + b + "::jsonb"
	}
	return "json_patch(" + a + ", " + b + ")"
}

// PatchUserAttrs sets and clears attributes of a user, leaving the others as they are
// (so runs of the same user that touch different attributes do not undo each other).
func (s *Store) PatchUserAttrs(ctx context.Context, q Querier, userID int64, set map[string]string, clear []string) error {
	if len(set) == 0 && len(clear) == 0 {
		return nil
	}
	var err error
	if s.dialect == Postgres {
		_, err = q.Exec(ctx, `UPDATE users SET attrs = (attrs || $2::jsonb) - $3::text[], updated_at = $4 WHERE id = $1`,
			userID, marshalAttrs(set), clearList(clear), nowMS())
	} else {
		_, err = q.Exec(ctx, `UPDATE users SET attrs = json_patch(attrs, $2), updated_at = $3 WHERE id = $1`, userID, attrPatch(set, clear), nowMS())
	}
	if err != nil {
		return fmt.Errorf("update attributes of user #%d: %w", userID, err)
	}
	return nil
}

// PatchRunUserAttrs is PatchUserAttrs for the user of a run, looked up by the
// statement, which may be queued in a transaction (Tx.QueueExec). A patch that changes
// nothing (a flow that saves the same value every run) writes nothing, so it neither
// locks the user's row until the commit nor makes a new version of it.
func (s *Store) PatchRunUserAttrs(ctx context.Context, q Querier, runID string, set map[string]string, clear []string) error {
	if len(set) == 0 && len(clear) == 0 {
		return nil
	}
	var err error
	if s.dialect == Postgres {
		err = queueExec(ctx, q, `UPDATE users SET attrs = (attrs || $2::jsonb) - $3::text[], updated_at = $4
			WHERE id = (SELECT user_id FROM runs WHERE id = $1) AND `+changesAttrs,
			[]any{runID, marshalAttrs(set), clearList(clear), nowMS()}, nil)
	} else {
		err = queueExec(ctx, q, `UPDATE users SET attrs = json_patch(attrs, $2), updated_at = $3
			WHERE id = (SELECT user_id FROM runs WHERE id = $1) AND json_patch(attrs, $2) IS NOT attrs`,
			[]any{runID, attrPatch(set, clear), nowMS()}, nil)
	}
	if err != nil {
		return fmt.Errorf("update attributes of the user of run %s: %w", runID, err)
	}
	return nil
}

// attrPatch is a JSON merge patch that sets set and removes clear (members set to null).
func attrPatch(set map[string]string, clear []string) string {
	patch := make(map[string]any, len(set)+len(clear))
	for _, k := range clear {
		patch[k] = nil
	}
	for k, v := range set {
		patch[k] = v
	}
	b, _ := json.Marshal(patch)
	return string(b)
}

// changesAttrs is true when "(attrs || $2) - $3" would differ from attrs: a value to
// set is not there yet, or a key to clear is.
const changesAttrs = `(NOT attrs @> $2::jsonb OR attrs ?| $3::text[])`

func clearList(clear []string) []string {
	if clear == nil {
		return []string{}
	}
	return clear
}

const userCols = `id, bot_id, channel_user_id, channel, attrs, last_inbound_at, created_at, updated_at`

func (s *Store) userCols() string {
	if s.dialect == Postgres {
		return strings.Replace(userCols, "attrs", "attrs::text", 1)
	}
	return userCols
}

func scanUser(r Row) (User, error) {
	var u User
	var attrs []byte
	var last *int64
	var created, updated int64
	if err := r.Scan(&u.ID, &u.BotID, &u.ChannelUserID, &u.Channel, &attrs, &last, &created, &updated); err != nil {
		return User{}, err
	}
	var err error
	if u.Attrs, err = unmarshalAttrs(attrs); err != nil {
		return User{}, err
	}
	u.LastInboundAt, u.CreatedAt, u.UpdatedAt = msTimePtr(last), msTime(created), msTime(updated)
	return u, nil
}

// UserByChannelID returns a bot's user by channel user id.
func (s *Store) UserByChannelID(ctx context.Context, botID int64, channelUserID string) (User, error) {
	if s.lookups != nil {
		return s.lookups.get(ctx, botID, channelUserID)
	}
	u, err := scanUser(s.r.QueryRow(ctx, `SELECT `+s.userCols()+` FROM users WHERE bot_id = $1 AND channel_user_id = $2`, botID, channelUserID))
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", channelUserID, err)
	}
	return u, nil
}

// UserByID returns a user by internal id.
func (s *Store) UserByID(ctx context.Context, q Querier, id int64) (User, error) {
	if q == nil {
		q = s.r
	}
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+s.userCols()+` FROM users WHERE id = $1`, id))
	if err != nil {
		return User{}, fmt.Errorf("user #%d: %w", id, err)
	}
	return u, nil
}
