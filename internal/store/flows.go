package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FlowRecord is a stored flow at one version.
type FlowRecord struct {
	ID        int64     `json:"-"`
	BotID     int64     `json:"-"`
	Key       string    `json:"flow_key"`
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Document  []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SaveFlow stores doc as the next version of the bot's flow with this key, creating the
// flow when new, and records who published it. Runs already under way keep the version
// they started on.
func (s *Store) SaveFlow(ctx context.Context, botID int64, key, name string, doc []byte, publishedBy string) (FlowRecord, error) {
	now := nowMS()
	rec := FlowRecord{BotID: botID, Key: key, Name: name, Document: doc, UpdatedAt: msTime(now)}
	err := s.InTx(ctx, func(tx Tx) error {
		var created int64
		err := tx.QueryRow(ctx, `UPDATE flows SET current_version = current_version + 1, name = $3, flow_key = $4, updated_at = $5
			WHERE bot_id = $1 AND key_lower = $2 RETURNING id, current_version, created_at`,
			botID, strings.ToLower(key), name, key, now).Scan(&rec.ID, &rec.Version, &created)
		if errors.Is(err, ErrNotFound) {
			rec.Version, created = 1, now
			err = tx.QueryRow(ctx, `INSERT INTO flows (bot_id, flow_key, key_lower, name, current_version, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING id`, botID, key, strings.ToLower(key), name, now).Scan(&rec.ID)
		}
		if err != nil {
			return err
		}
		rec.CreatedAt = msTime(created)
		_, err = tx.Exec(ctx, `INSERT INTO flow_versions (flow_id, version, document, created_at, published_by) VALUES ($1, $2, $3, $4, $5)`,
			rec.ID, rec.Version, string(doc), now, publishedBy)
		return err
	})
	if err != nil {
		return FlowRecord{}, fmt.Errorf("save flow %s: %w", key, err)
	}
	return rec, nil
}

const flowCols = `f.id, f.bot_id, f.flow_key, f.name, v.version, v.document, f.created_at, f.updated_at`

func scanFlow(r Row) (FlowRecord, error) {
	var f FlowRecord
	var doc string
	var created, updated int64
	if err := r.Scan(&f.ID, &f.BotID, &f.Key, &f.Name, &f.Version, &doc, &created, &updated); err != nil {
		return FlowRecord{}, err
	}
	f.Document, f.CreatedAt, f.UpdatedAt = []byte(doc), msTime(created), msTime(updated)
	return f, nil
}

// FlowByKey returns the current version of a bot's flow; keys match case-insensitively.
func (s *Store) FlowByKey(ctx context.Context, botID int64, key string) (FlowRecord, error) {
	f, err := scanFlow(s.r.QueryRow(ctx, `SELECT `+flowCols+` FROM flows f
		JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
		WHERE f.bot_id = $1 AND f.key_lower = $2`, botID, strings.ToLower(key)))
	if err != nil {
		return FlowRecord{}, fmt.Errorf("flow %s: %w", key, err)
	}
	return f, nil
}

// FlowVersion returns one version of a flow.
func (s *Store) FlowVersion(ctx context.Context, flowID int64, version int) (FlowRecord, error) {
	f, err := scanFlow(s.r.QueryRow(ctx, `SELECT `+flowCols+` FROM flows f
		JOIN flow_versions v ON v.flow_id = f.id AND v.version = $2
		WHERE f.id = $1`, flowID, version))
	if err != nil {
		return FlowRecord{}, fmt.Errorf("flow #%d v%d: %w", flowID, version, err)
	}
	return f, nil
}

// Flows lists a bot's flows at their current versions.
func (s *Store) Flows(ctx context.Context, botID int64) ([]FlowRecord, error) {
	rows, err := s.r.Query(ctx, `SELECT `+flowCols+` FROM flows f
		JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
		WHERE f.bot_id = $1 ORDER BY f.id`, botID)
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	defer rows.Close()
	out := []FlowRecord{}
	for rows.Next() {
		f, err := scanFlow(rows)
		if err != nil {
			return nil, fmt.Errorf("list flows: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// FlowVersionDoc is one stored version of a flow document.
type FlowVersionDoc struct {
	FlowID   int64
	Version  int
	Key      string
	Document []byte
}

// FlowVersionsContaining pages through the stored versions of every flow whose document
// contains text, in (flow id, version) order after the version given (0, 0 to start),
// at most limit at a time. Re-encryption finds the documents with secrets this way.
func (s *Store) FlowVersionsContaining(ctx context.Context, text string, afterFlow int64, afterVersion, limit int) ([]FlowVersionDoc, error) {
	rows, err := s.r.Query(ctx, `SELECT v.flow_id, v.version, f.flow_key, v.document FROM flow_versions v
		JOIN flows f ON f.id = v.flow_id
		WHERE (v.flow_id > $1 OR (v.flow_id = $1 AND v.version > $2)) AND v.document LIKE $3 ESCAPE '\'
		ORDER BY v.flow_id, v.version LIMIT $4`, afterFlow, afterVersion, likeContains(text), limit)
	if err != nil {
		return nil, fmt.Errorf("list flow versions: %w", err)
	}
	defer rows.Close()
	var out []FlowVersionDoc
	for rows.Next() {
		var d FlowVersionDoc
		var doc string
		if err := rows.Scan(&d.FlowID, &d.Version, &d.Key, &doc); err != nil {
			return nil, fmt.Errorf("list flow versions: %w", err)
		}
		d.Document = []byte(doc)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list flow versions: %w", err)
	}
	return out, nil
}

// ReplaceFlowDocument rewrites one stored version of a flow, only while it is still old.
// Versions are otherwise immutable: only re-encryption of their secrets, which leaves
// what the document means unchanged, rewrites one. ok is false when it had changed.
func (s *Store) ReplaceFlowDocument(ctx context.Context, flowID int64, version int, old, doc []byte) (ok bool, err error) {
	n, err := s.w.Exec(ctx, `UPDATE flow_versions SET document = $4 WHERE flow_id = $1 AND version = $2 AND document = $3`,
		flowID, version, string(old), string(doc))
	if err != nil {
		return false, fmt.Errorf("rewrite flow #%d v%d: %w", flowID, version, err)
	}
	return n == 1, nil
}

// likeContains is a LIKE pattern matching text anywhere, its wildcards escaped.
func likeContains(text string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(text) + "%"
}
