package store

import (
	"context"
	"fmt"
	"time"
)

// ConsoleUser is an account that signs in to the console. CustomerID nil makes it an
// operator; otherwise it sees and changes only that customer.
type ConsoleUser struct {
	ID           int64
	Email        string
	PasswordHash string
	CustomerID   *int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const consoleUserCols = `id, email, password_hash, customer_id, created_at, updated_at`

func scanConsoleUser(r Row) (ConsoleUser, error) {
	var u ConsoleUser
	var created, updated int64
	if err := r.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.CustomerID, &created, &updated); err != nil {
		return ConsoleUser{}, err
	}
	u.CreatedAt, u.UpdatedAt = msTime(created), msTime(updated)
	return u, nil
}

// CreateConsoleUser adds an account; ErrConflict when the email is taken.
func (s *Store) CreateConsoleUser(ctx context.Context, email, passwordHash string, customerID *int64) (ConsoleUser, error) {
	now := nowMS()
	u := ConsoleUser{Email: email, PasswordHash: passwordHash, CustomerID: customerID, CreatedAt: msTime(now), UpdatedAt: msTime(now)}
	err := s.w.QueryRow(ctx, `INSERT INTO console_users (email, password_hash, customer_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4) RETURNING id`, email, passwordHash, customerID, now).Scan(&u.ID)
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("create console user %s: %w", email, err)
	}
	return u, nil
}

// ConsoleUserByEmail returns the account with this (lower-case) email.
func (s *Store) ConsoleUserByEmail(ctx context.Context, email string) (ConsoleUser, error) {
	u, err := scanConsoleUser(s.r.QueryRow(ctx, `SELECT `+consoleUserCols+` FROM console_users WHERE email = $1`, email))
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("console user %s: %w", email, err)
	}
	return u, nil
}

// ConsoleUserByID returns one account.
func (s *Store) ConsoleUserByID(ctx context.Context, id int64) (ConsoleUser, error) {
	u, err := scanConsoleUser(s.r.QueryRow(ctx, `SELECT `+consoleUserCols+` FROM console_users WHERE id = $1`, id))
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("console user #%d: %w", id, err)
	}
	return u, nil
}

// ConsoleUsers lists every account, oldest first.
func (s *Store) ConsoleUsers(ctx context.Context) ([]ConsoleUser, error) {
	rows, err := s.r.Query(ctx, `SELECT `+consoleUserCols+` FROM console_users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list console users: %w", err)
	}
	defer rows.Close()
	out := []ConsoleUser{}
	for rows.Next() {
		u, err := scanConsoleUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list console users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetConsolePassword replaces an account's password hash and ends its sessions, so a
// changed password locks out whoever knew the old one.
func (s *Store) SetConsolePassword(ctx context.Context, id int64, passwordHash string) error {
	return s.InTx(ctx, func(tx Tx) error {
		n, err := tx.Exec(ctx, `UPDATE console_users SET password_hash = $2, updated_at = $3 WHERE id = $1`, id, passwordHash, nowMS())
		if err != nil {
			return fmt.Errorf("set password of console user #%d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("console user #%d: %w", id, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("end sessions of console user #%d: %w", id, err)
		}
		return nil
	})
}

// DeleteConsoleUser removes an account and its sessions.
func (s *Store) DeleteConsoleUser(ctx context.Context, id int64) error {
	return s.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("end sessions of console user #%d: %w", id, err)
		}
		n, err := tx.Exec(ctx, `DELETE FROM console_users WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete console user #%d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("console user #%d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// ConsoleSession is a signed-in browser. UserID nil means it signed in with the admin
// token, whose hash it keeps in AdminTokenHash.
type ConsoleSession struct {
	IDHash         []byte
	UserID         *int64
	AdminTokenHash []byte
	CSRFToken      string
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// CreateConsoleSession stores a new session.
func (s *Store) CreateConsoleSession(ctx context.Context, cs ConsoleSession) error {
	_, err := s.w.Exec(ctx, `INSERT INTO console_sessions (id_hash, user_id, admin_token_hash, csrf_token, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, cs.IDHash, cs.UserID, cs.AdminTokenHash, cs.CSRFToken,
		cs.CreatedAt.UnixMilli(), cs.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("create console session: %w", err)
	}
	return nil
}

// ConsoleSession returns the unexpired session with this id hash.
func (s *Store) ConsoleSession(ctx context.Context, idHash []byte, now time.Time) (ConsoleSession, error) {
	cs := ConsoleSession{IDHash: idHash}
	var created, expires int64
	err := s.r.QueryRow(ctx, `SELECT user_id, admin_token_hash, csrf_token, created_at, expires_at FROM console_sessions
		WHERE id_hash = $1 AND expires_at > $2`, idHash, now.UnixMilli()).
		Scan(&cs.UserID, &cs.AdminTokenHash, &cs.CSRFToken, &created, &expires)
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("console session: %w", err)
	}
	cs.CreatedAt, cs.ExpiresAt = msTime(created), msTime(expires)
	return cs, nil
}

// ExtendConsoleSession moves a session's expiry.
func (s *Store) ExtendConsoleSession(ctx context.Context, idHash []byte, expires time.Time) error {
	if _, err := s.w.Exec(ctx, `UPDATE console_sessions SET expires_at = $2 WHERE id_hash = $1`, idHash, expires.UnixMilli()); err != nil {
		return fmt.Errorf("extend console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession ends one session.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	if _, err := s.w.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("end console session: %w", err)
	}
	return nil
}

// DeleteExpiredConsoleSessions removes sessions that expired before now.
func (s *Store) DeleteExpiredConsoleSessions(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.w.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("expire console sessions: %w", err)
	}
	return n, nil
}
