package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The console's lists: a bot's runs, users and flow versions, paged by key (never by
// OFFSET), so a page costs the same however deep it is.

// RunFilter selects a bot's runs, newest first.
type RunFilter struct {
	BotID int64
	// FlowID, when not zero, keeps runs of that flow.
	FlowID int64
	// UserID, when not zero, keeps runs of that user.
	UserID int64
	Status string
	// Since and Until bound the creation time (Unix ms; Until exclusive, 0 for none).
	Since, Until int64
	// Before is the paging cursor: runs with a smaller id than this one.
	Before string
	Limit  int
}

// RunSummary is one run in a list.
type RunSummary struct {
	ID            string
	FlowKey       string
	FlowVersion   int
	Status        string
	Channel       string
	ChannelUserID string
	Node          string
	Error         string
	CreatedAt     int64
	UpdatedAt     int64
}

// where collects the conditions of a dynamically filtered query with numbered
// placeholders, so only the filters given reach the planner.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(w.args))))
}

func (w *where) sql() string { return strings.Join(w.conds, " AND ") }

// next is the placeholder of the next argument.
func (w *where) next(arg any) string {
	w.args = append(w.args, arg)
	return "$" + strconv.Itoa(len(w.args))
}

// RunSummaries lists runs matching f, newest first (run ids are time-ordered UUIDv7).
func (s *Store) RunSummaries(ctx context.Context, f RunFilter) ([]RunSummary, error) {
	var w where
	w.add("r.bot_id = ?", f.BotID)
	if f.FlowID != 0 {
		w.add("r.flow_id = ?", f.FlowID)
	}
	if f.UserID != 0 {
		w.add("r.user_id = ?", f.UserID)
	}
	if f.Status != "" {
		w.add("r.status = ?", f.Status)
	}
	if f.Since > 0 {
		w.add("r.created_at >= ?", f.Since)
	}
	if f.Until > 0 {
		w.add("r.created_at < ?", f.Until)
	}
	if f.Before != "" {
		w.add("r.id < ?", f.Before)
	}
	q := `SELECT r.id, f.flow_key, r.flow_version, r.status, r.channel, u.channel_user_id, r.node, r.error, r.created_at, r.updated_at
		FROM runs r JOIN flows f ON f.id = r.flow_id JOIN users u ON u.id = r.user_id
		WHERE ` + w.sql() + ` ORDER BY r.id DESC LIMIT ` + w.next(f.Limit)
	rows, err := s.r.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	out := []RunSummary{}
	for rows.Next() {
		var r RunSummary
		if err := rows.Scan(&r.ID, &r.FlowKey, &r.FlowVersion, &r.Status, &r.Channel, &r.ChannelUserID, &r.Node, &r.Error,
			&r.CreatedAt, &r.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RunMessages lists the messages a run sent, in step order.
func (s *Store) RunMessages(ctx context.Context, runID string) ([]Message, error) {
	rows, err := s.r.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE run_id = $1 ORDER BY step`, runID)
	if err != nil {
		return nil, fmt.Errorf("messages of run %s: %w", runID, err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("messages of run %s: %w", runID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RunHTTPLogs lists the kept logs of the calls a run's http nodes made, oldest first, as
// node id and log id (the call's number).
func (s *Store) RunHTTPLogs(ctx context.Context, botID int64, runID string) ([]HTTPStepLogRef, error) {
	rows, err := s.r.Query(ctx, `SELECT node_id, seq FROM http_step_logs
		WHERE run_id = $1 AND flow_id IN (SELECT id FROM flows WHERE bot_id = $2) ORDER BY seq`, runID, botID)
	if err != nil {
		return nil, fmt.Errorf("http logs of run %s: %w", runID, err)
	}
	defer rows.Close()
	out := []HTTPStepLogRef{}
	for rows.Next() {
		var l HTTPStepLogRef
		if err := rows.Scan(&l.NodeID, &l.Seq); err != nil {
			return nil, fmt.Errorf("http logs of run %s: %w", runID, err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// HTTPStepLogRef names one kept call log of an http node.
type HTTPStepLogRef struct {
	NodeID string
	Seq    int64
}

// UserFilter selects a bot's users, oldest first.
type UserFilter struct {
	BotID int64
	// AttrName and AttrValue, when AttrName is set, keep users whose attribute equals
	// the value.
	AttrName, AttrValue string
	// Search keeps users whose channel user id or name starts with it (any case).
	Search string
	// After is the paging cursor: users with a larger internal id.
	After int64
	Limit int
}

// Users lists users matching f, in the order they were first seen.
func (s *Store) Users(ctx context.Context, f UserFilter) ([]User, error) {
	var w where
	if f.AttrName != "" && f.Search == "" {
		// By attribute alone: the page's keys from user_attrs, then their users (see
		// usersByAttributeSQL).
		l := s.usersByAttributeSQL(f.BotID, f.AttrName, f.AttrValue, &PageKey{ID: f.After}, f.Limit-1)
		return s.scanUsers(ctx, l.page, l.pageArgs)
	}
	// A filter by attribute reads the index user_attrs, in id order, and joins the users.
	from, order := `users u`, `u.id`
	if f.AttrName != "" {
		s.attrMatch(&w, f.BotID, f.AttrName, f.AttrValue)
		from, order = `user_attrs a JOIN users u ON u.id = a.user_id`, `a.user_id`
	} else {
		w.add("u.bot_id = ?", f.BotID)
	}
	if f.Search != "" {
		name := `json_extract(u.attrs, '$."user.user_name"')`
		if s.dialect == Postgres {
			name = `(u.attrs ->> 'user.user_name')`
		}
		p1, p2 := w.next(likePrefix(f.Search)), w.next(likePrefix(strings.ToLower(f.Search)))
		w.conds = append(w.conds, `(u.channel_user_id LIKE `+p1+` ESCAPE '\' OR LOWER(`+name+`) LIKE `+p2+` ESCAPE '\')`)
	}
	if f.After > 0 {
		w.add(order+" > ?", f.After)
	}
	q := `SELECT ` + qualify("u.", s.userCols()) + ` FROM ` + from + ` WHERE ` + w.sql() + ` ORDER BY ` + order + ` LIMIT ` + w.next(f.Limit)
	return s.scanUsers(ctx, q, w.args)
}

// scanUsers runs a query of users' columns.
func (s *Store) scanUsers(ctx context.Context, q string, args []any) ([]User, error) {
	rows, err := s.r.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// likePrefix makes a LIKE pattern matching values that start with s literally.
func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s) + "%"
}

// FlowVersionInfo describes one stored version of a flow.
type FlowVersionInfo struct {
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	PublishedBy string    `json:"published_by"`
}

// FlowVersions lists a flow's versions, newest first.
func (s *Store) FlowVersions(ctx context.Context, flowID int64) ([]FlowVersionInfo, error) {
	rows, err := s.r.Query(ctx, `SELECT version, created_at, published_by FROM flow_versions WHERE flow_id = $1 ORDER BY version DESC`, flowID)
	if err != nil {
		return nil, fmt.Errorf("versions of flow #%d: %w", flowID, err)
	}
	defer rows.Close()
	out := []FlowVersionInfo{}
	for rows.Next() {
		var v FlowVersionInfo
		var created int64
		if err := rows.Scan(&v.Version, &created, &v.PublishedBy); err != nil {
			return nil, fmt.Errorf("versions of flow #%d: %w", flowID, err)
		}
		v.CreatedAt = msTime(created)
		out = append(out, v)
	}
	return out, rows.Err()
}
