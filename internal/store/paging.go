package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Lists that answer by page number (the vendor's page_number/page_size) are served
// without OFFSET over rows: the page's first key is found by skipping entries of a
// covering index (index-only, no table rows read), and the page itself is then read by
// key, like a cursor's. The count is index-only too.

// PageKey is a position in a list ordered by (Time, ID); lists ordered by id alone leave
// Time zero.
type PageKey struct {
	Time, ID int64
}

// PageQuery asks for one page: the one after a key (a cursor), or, without one, the page
// that follows Skip items.
type PageQuery struct {
	Size  int
	After *PageKey
	Skip  int64
}

// Page is what a list returns besides its items.
type Page struct {
	// Total counts every item of the list, not only this page's.
	Total int64
	// Next is the key of this page's last item when more items follow, nil on the last page.
	Next *PageKey
}

// attrValueKeyLen is how many characters of a value user_attrs keeps (see migration 00008).
const attrValueKeyLen = 200

// attrValueKey is the part of value that user_attrs holds, and whether matching it
// alone is exact: only for a value shorter than the kept part, since a value of exactly
// that length shares its key with every longer value that starts with it.
func attrValueKey(value string) (string, bool) {
	n := 0
	for i := range value {
		if n == attrValueKeyLen {
			return value[:i], false
		}
		n++
	}
	return value, n < attrValueKeyLen
}

// attrMatch is the condition that keeps a bot's users whose attribute equals value, on
// user_attrs a joined (only when needsUser) to users u. w receives its arguments.
func (s *Store) attrMatch(w *where, botID int64, name, value string) (needsUser bool) {
	key, whole := attrValueKey(value)
	w.add("a.bot_id = ?", botID)
	w.add("a.name = ?", name)
	w.add("a.value = ?", key)
	if !whole {
		// Attribute names are validated by callers and cannot contain quotes.
		expr := `json_extract(u.attrs, %s) = %s`
		path := `$."` + name + `"`
		if s.dialect == Postgres {
			expr, path = `(u.attrs ->> %s) = %s`, name
		}
		p1, p2 := w.next(path), w.next(value)
		w.conds = append(w.conds, fmt.Sprintf(expr, p1, p2))
	}
	return !whole
}

// qualify prefixes each of a list of columns with a table's alias.
func qualify(alias, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = alias + parts[i]
	}
	return strings.Join(parts, ", ")
}

// listSQL is a paged list's statements: count and the key query (keys, its rows ordered
// by order's columns; Time and ID, or ID alone) take filterArgs, page takes pageArgs.
type listSQL struct {
	count, keys, page    string
	order                []string
	filterArgs, pageArgs []any
}

// seek is the key query in the list's order; seekBack in the reverse order.
func (l listSQL) seek() string { return l.keys + " ORDER BY " + strings.Join(l.order, ", ") }

func (l listSQL) seekBack() string {
	return l.keys + " ORDER BY " + strings.Join(l.order, " DESC, ") + " DESC"
}

// pageStart counts the list and finds the key just before the page pq asks for: nil for
// the first page or a cursor's own key. past is true when the page lies beyond the list's
// end. A numbered page is found by skipping index entries from the nearer end of the
// list, so no page skips more than half of it; q must then be a read transaction
// (readList), or rows written between the count and the skip would shift a page found
// from the back.
func (s *Store) pageStart(ctx context.Context, q Querier, l listSQL, pq PageQuery) (total int64, after *PageKey, past bool, err error) {
	if err := q.QueryRow(ctx, l.count, l.filterArgs...).Scan(&total); err != nil {
		return 0, nil, false, fmt.Errorf("count: %w", err)
	}
	if pq.After != nil || pq.Skip <= 0 {
		return total, pq.After, false, nil
	}
	if pq.Skip >= total {
		return total, nil, true, nil
	}
	// The key wanted is item skip-1 counted from the front, total-skip from the back.
	query, offset := l.seek(), pq.Skip-1
	if pq.Skip > total/2 {
		query, offset = l.seekBack(), total-pq.Skip
	}
	var k PageKey
	dest := []any{&k.ID}
	if len(l.order) == 2 {
		dest = []any{&k.Time, &k.ID}
	}
	query += fmt.Sprintf(" LIMIT 1 OFFSET $%d", len(l.filterArgs)+1)
	err = q.QueryRow(ctx, query, append(slices.Clone(l.filterArgs), offset)...).Scan(dest...)
	if errors.Is(err, ErrNotFound) {
		return total, nil, true, nil // the list shrank since it was counted
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("seek page: %w", err)
	}
	return total, &k, false, nil
}

// readList runs a list's statements: in one read transaction when pq skips to a numbered
// page (see pageStart), so its count, its skip and its page see the same rows.
func (s *Store) readList(ctx context.Context, pq PageQuery, fn func(q Querier) error) error {
	if pq.After != nil || pq.Skip <= 0 {
		return fn(s.r)
	}
	return s.inReadTx(ctx, fn)
}

func (s *Store) usersByAttributeSQL(botID int64, name, value string, after *PageKey, size int) listSQL {
	var w where
	needsUser := s.attrMatch(&w, botID, name, value)
	from := ` FROM user_attrs a`
	if needsUser {
		from += ` JOIN users u ON u.id = a.user_id`
	}
	from += ` WHERE ` + w.sql()
	l := listSQL{count: `SELECT COUNT(*)` + from, keys: `SELECT a.user_id` + from, order: []string{"a.user_id"}, filterArgs: slices.Clone(w.args)}
	if after != nil {
		w.add("a.user_id > ?", after.ID)
	}
	// The page's keys first, then their users: joined before the LIMIT, PostgreSQL may
	// merge-join with a walk of users from its first id, which grows with the page's depth.
	l.page = `SELECT ` + qualify("u.", s.userCols()) + ` FROM (SELECT a.user_id` + from + ` AND ` + w.conds[len(w.conds)-1]
	if after == nil {
		l.page = `SELECT ` + qualify("u.", s.userCols()) + ` FROM (SELECT a.user_id` + from
	}
	l.page += ` ORDER BY a.user_id LIMIT ` + w.next(size+1) + `) k JOIN users u ON u.id = k.user_id ORDER BY k.user_id`
	l.pageArgs = w.args
	return l
}

// UsersByAttribute pages through a bot's users whose attribute equals value, oldest
// first, and counts them all.
func (s *Store) UsersByAttribute(ctx context.Context, botID int64, name, value string, pq PageQuery) ([]User, Page, error) {
	out := []User{}
	var pg Page
	err := s.readList(ctx, pq, func(q Querier) error {
		total, after, past, err := s.pageStart(ctx, q, s.usersByAttributeSQL(botID, name, value, nil, pq.Size), pq)
		pg.Total = total
		if err != nil || past {
			return err
		}
		l := s.usersByAttributeSQL(botID, name, value, after, pq.Size)
		rows, err := q.Query(ctx, l.page, l.pageArgs...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, Page{}, fmt.Errorf("list users: %w", err)
	}
	if len(out) > pq.Size {
		out = out[:pq.Size]
		pg.Next = &PageKey{ID: out[len(out)-1].ID}
	}
	return out, pg, nil
}

func conversationSQL(userID, from, to int64, after *PageKey, size int) listSQL {
	const filter = ` FROM messages WHERE user_id = $1 AND created_at >= $2 AND created_at <= $3`
	l := listSQL{count: `SELECT COUNT(*)` + filter, keys: `SELECT created_at, id` + filter, order: []string{"created_at", "id"},
		filterArgs: []any{userID, from, to}}
	var w where
	w.add("user_id = ?", userID)
	w.add("created_at <= ?", to)
	if after != nil {
		// created_at >= the key's time bounds the index range; the OR settles ties by id.
		w.add("created_at >= ?", max(from, after.Time))
		t, id := w.next(after.Time), w.next(after.ID)
		w.conds = append(w.conds, "(created_at > "+t+" OR id > "+id+")")
	} else {
		w.add("created_at >= ?", from)
	}
	l.page = `SELECT ` + messageCols + ` FROM messages WHERE ` + w.sql() + ` ORDER BY created_at, id LIMIT ` + w.next(size+1)
	l.pageArgs = w.args
	return l
}

// Conversation pages through a user's messages between two times (Unix ms, inclusive),
// oldest first, and counts them all. Both the count and the skip to a numbered page read
// only the index messages_user_time.
func (s *Store) Conversation(ctx context.Context, userID, from, to int64, pq PageQuery) ([]Message, Page, error) {
	out := []Message{}
	var pg Page
	err := s.readList(ctx, pq, func(q Querier) error {
		total, after, past, err := s.pageStart(ctx, q, conversationSQL(userID, from, to, nil, pq.Size), pq)
		pg.Total = total
		if err != nil || past {
			return err
		}
		l := conversationSQL(userID, from, to, after, pq.Size)
		rows, err := q.Query(ctx, l.page, l.pageArgs...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, Page{}, fmt.Errorf("list messages: %w", err)
	}
	if len(out) > pq.Size {
		out = out[:pq.Size]
		last := out[len(out)-1]
		pg.Next = &PageKey{Time: last.CreatedAt, ID: last.ID}
	}
	return out, pg, nil
}
