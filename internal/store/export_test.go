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
