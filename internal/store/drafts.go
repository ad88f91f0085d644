package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// FlowDraft is the flow builder's unpublished document of a flow (which may not exist
// yet, or not be valid yet).
type FlowDraft struct {
	Key       string    `json:"flow_key"`
	Name      string    `json:"name"`
	Document  []byte    `json:"-"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// SaveFlowDraft creates or replaces the bot's draft for a flow key.
func (s *Store) SaveFlowDraft(ctx context.Context, botID int64, d FlowDraft) error {
	_, err := s.w.Exec(ctx, `INSERT INTO flow_drafts (bot_id, key_lower, flow_key, name, document, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (bot_id, key_lower) DO UPDATE SET flow_key = excluded.flow_key, name = excluded.name,
			document = excluded.document, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		botID, strings.ToLower(d.Key), d.Key, d.Name, string(d.Document), d.UpdatedAt.UnixMilli(), d.UpdatedBy)
	if err != nil {
		return fmt.Errorf("save draft of flow %s: %w", d.Key, err)
	}
	return nil
}

const draftCols = `flow_key, name, document, updated_at, updated_by`

func scanDraft(r Row) (FlowDraft, error) {
	var d FlowDraft
	var doc string
	var updated int64
	if err := r.Scan(&d.Key, &d.Name, &doc, &updated, &d.UpdatedBy); err != nil {
		return FlowDraft{}, err
	}
	d.Document, d.UpdatedAt = []byte(doc), msTime(updated)
	return d, nil
}

// FlowDraft returns the bot's draft for a flow key (any case).
func (s *Store) FlowDraft(ctx context.Context, botID int64, key string) (FlowDraft, error) {
	d, err := scanDraft(s.r.QueryRow(ctx, `SELECT `+draftCols+` FROM flow_drafts WHERE bot_id = $1 AND key_lower = $2`,
		botID, strings.ToLower(key)))
	if err != nil {
		return FlowDraft{}, fmt.Errorf("draft of flow %s: %w", key, err)
	}
	return d, nil
}

// FlowDrafts lists the bot's drafts, most recently changed first.
func (s *Store) FlowDrafts(ctx context.Context, botID int64) ([]FlowDraft, error) {
	rows, err := s.r.Query(ctx, `SELECT `+draftCols+` FROM flow_drafts WHERE bot_id = $1 ORDER BY updated_at DESC, key_lower`, botID)
	if err != nil {
		return nil, fmt.Errorf("list drafts: %w", err)
	}
	defer rows.Close()
	out := []FlowDraft{}
	for rows.Next() {
		d, err := scanDraft(rows)
		if err != nil {
			return nil, fmt.Errorf("list drafts: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteFlowDraft drops the bot's draft for a flow key; ErrNotFound when it has none.
// With a non-zero savedAt it drops the draft only if it was not saved again since then,
// so publishing a draft never throws away an edit made meanwhile.
func (s *Store) DeleteFlowDraft(ctx context.Context, botID int64, key string, savedAt time.Time) error {
	var n int64
	var err error
	if savedAt.IsZero() {
		n, err = s.w.Exec(ctx, `DELETE FROM flow_drafts WHERE bot_id = $1 AND key_lower = $2`, botID, strings.ToLower(key))
	} else {
		n, err = s.w.Exec(ctx, `DELETE FROM flow_drafts WHERE bot_id = $1 AND key_lower = $2 AND updated_at = $3`,
			botID, strings.ToLower(key), savedAt.UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("delete draft of flow %s: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("draft of flow %s: %w", key, ErrNotFound)
	}
	return nil
}

// DraftDoc is a stored draft's document and where it belongs, for re-encryption.
type DraftDoc struct {
	BotID    int64
	Key      string
	Document []byte
}

// FlowDraftsContaining pages through every bot's drafts whose document contains text, in
// (bot id, key) order after the draft given (0, "" to start), at most limit at a time.
func (s *Store) FlowDraftsContaining(ctx context.Context, text string, afterBot int64, afterKey string, limit int) ([]DraftDoc, error) {
	rows, err := s.r.Query(ctx, `SELECT bot_id, key_lower, document FROM flow_drafts
		WHERE (bot_id > $1 OR (bot_id = $1 AND key_lower > $2)) AND document LIKE $3 ESCAPE '\'
		ORDER BY bot_id, key_lower LIMIT $4`, afterBot, strings.ToLower(afterKey), likeContains(text), limit)
	if err != nil {
		return nil, fmt.Errorf("list drafts: %w", err)
	}
	defer rows.Close()
	var out []DraftDoc
	for rows.Next() {
		var d DraftDoc
		var doc string
		if err := rows.Scan(&d.BotID, &d.Key, &doc); err != nil {
			return nil, fmt.Errorf("list drafts: %w", err)
		}
		d.Document = []byte(doc)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list drafts: %w", err)
	}
	return out, nil
}

// ReplaceDraftDocument rewrites a draft's document only while it is still old, leaving
// its save time alone (publishing drops a draft only if it was not saved since).
func (s *Store) ReplaceDraftDocument(ctx context.Context, botID int64, key string, old, doc []byte) (ok bool, err error) {
	n, err := s.w.Exec(ctx, `UPDATE flow_drafts SET document = $4 WHERE bot_id = $1 AND key_lower = $2 AND document = $3`,
		botID, strings.ToLower(key), string(old), string(doc))
	if err != nil {
		return false, fmt.Errorf("rewrite draft of flow %s: %w", key, err)
	}
	return n == 1, nil
}
