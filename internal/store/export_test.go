package store

import "context"

// ListSQL exposes a paged list's statements to the query-plan tests.
type ListSQL = listSQL

// Count, Seek, SeekBack and PageSQL are a list's statements; FilterArgs and PageArgs
// their arguments.
func (l ListSQL) Count() string     { return l.count }
func (l ListSQL) Seek() string      { return l.seek() }
func (l ListSQL) SeekBack() string  { return l.seekBack() }
func (l ListSQL) PageSQL() string   { return l.page }
func (l ListSQL) FilterArgs() []any { return l.filterArgs }
func (l ListSQL) PageArgs() []any   { return l.pageArgs }

// UsersByAttributeSQL is the users API's statements.
func (s *Store) UsersByAttributeSQL(botID int64, name, value string, after *PageKey, size int) ListSQL {
	return s.usersByAttributeSQL(botID, name, value, after, size)
}

// ConversationSQL is the conversations API's statements.
func ConversationSQL(userID, from, to int64, after *PageKey, size int) ListSQL {
	return conversationSQL(userID, from, to, after, size)
}

// MigrateDownTo rolls the schema back to version, for tests of a migration's backfill.
func (s *Store) MigrateDownTo(ctx context.Context, version int64) error {
	p, err := s.migrator()
	if err != nil {
		return err
	}
	_, err = p.DownTo(ctx, version)
	return err
}

// ClaimOrphanSendsSQL is the sends sweep's statement.
func (s *Store) ClaimOrphanSendsSQL() string { return s.claimOrphanSendsSQL() }

// RecountBroadcast counts a broadcast's recipients as totals were counted before the
// tally: every recipient and its last message (of messages). Tests check the tally
// against it.
func (s *Store) RecountBroadcast(ctx context.Context, b Broadcast, messages int) (BroadcastTotals, error) {
	rows, err := s.r.Query(ctx, `SELECT `+recipientStatusSQL+` AS st, COUNT(*) FROM broadcast_recipients r `+recipientMessageJoin+`
		WHERE r.broadcast_id = $1 GROUP BY st`, b.ID, b.BotID, broadcastKeyPrefix(b.ID, messages-1))
	if err != nil {
		return BroadcastTotals{}, err
	}
	defer rows.Close()
	var t BroadcastTotals
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return BroadcastTotals{}, err
		}
		t.Recipients += n
		switch st {
		case RecipientQueued:
			t.Queued += n
		case MsgRead:
			t.Read += n
			t.Delivered += n
			t.Sent += n
		case MsgDelivered:
			t.Delivered += n
			t.Sent += n
		case RecipientSent:
			t.Sent += n
		case RecipientFailed:
			t.Failed += n
		case RecipientCancelled:
			t.Cancelled += n
		}
	}
	return t, rows.Err()
}
