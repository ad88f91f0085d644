package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Customer is an account that owns bots.
type Customer struct {
	ID       int64  `json:"customer_id"`
	Name     string `json:"name"`
	HTTPRate *int   `json:"http_rate,omitempty"` // HTTP-step calls per minute; nil = server default
	// MaxRunning caps the customer's runs executing at once on each instance; nil = the
	// server's default (--max-running).
	MaxRunning *int      `json:"max_running,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Bot belongs to a customer and is addressed by its key.
type Bot struct {
	ID         int64     `json:"-"`
	CustomerID int64     `json:"customer_id"`
	Key        string    `json:"bot_key"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
}

// APIKey describes a stored key (never the key itself).
type APIKey struct {
	ID        int64      `json:"id"`
	BotID     int64      `json:"-"`
	Hint      string     `json:"hint"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// KeyOwner is who a valid key belongs to.
type KeyOwner struct {
	KeyID      int64
	BotID      int64
	BotKey     string
	CustomerID int64
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func msTimePtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := msTime(*ms)
	return &t
}

// EnsureCustomer returns the customer with this name, creating it when new.
func (s *Store) EnsureCustomer(ctx context.Context, name string) (Customer, bool, error) {
	c, err := s.customerByName(ctx, s.w, name)
	if err == nil {
		return c, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Customer{}, false, err
	}
	c, err = s.CreateCustomer(ctx, name)
	if errors.Is(err, ErrConflict) { // created meanwhile by another process
		c, err = s.customerByName(ctx, s.w, name)
		return c, false, err
	}
	return c, err == nil, err
}

// CreateCustomer adds a customer; ErrConflict when the name is taken.
func (s *Store) CreateCustomer(ctx context.Context, name string) (Customer, error) {
	now := nowMS()
	var id int64
	err := s.w.QueryRow(ctx, `INSERT INTO customers (name, created_at) VALUES ($1, $2) RETURNING id`, name, now).Scan(&id)
	if err != nil {
		return Customer{}, fmt.Errorf("create customer %q: %w", name, err)
	}
	return Customer{ID: id, Name: name, CreatedAt: msTime(now)}, nil
}

const customerCols = `id, name, http_rate, max_running, created_at`

func scanCustomer(r Row) (Customer, error) {
	var c Customer
	var rate, maxRunning *int64
	var created int64
	if err := r.Scan(&c.ID, &c.Name, &rate, &maxRunning, &created); err != nil {
		return Customer{}, err
	}
	if rate != nil {
		v := int(*rate)
		c.HTTPRate = &v
	}
	if maxRunning != nil {
		v := int(*maxRunning)
		c.MaxRunning = &v
	}
	c.CreatedAt = msTime(created)
	return c, nil
}

func (s *Store) customerByName(ctx context.Context, q Querier, name string) (Customer, error) {
	c, err := scanCustomer(q.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE name = $1`, name))
	if err != nil {
		return Customer{}, fmt.Errorf("customer %q: %w", name, err)
	}
	return c, nil
}

// Customer returns one customer.
func (s *Store) Customer(ctx context.Context, id int64) (Customer, error) {
	c, err := scanCustomer(s.r.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1`, id))
	if err != nil {
		return Customer{}, fmt.Errorf("customer %d: %w", id, err)
	}
	return c, nil
}

// Customers lists every customer.
func (s *Store) Customers(ctx context.Context) ([]Customer, error) {
	rows, err := s.r.Query(ctx, `SELECT `+customerCols+` FROM customers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	defer rows.Close()
	var out []Customer
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, fmt.Errorf("list customers: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetCustomerHTTPRate sets the customer's HTTP-step rate limit (nil: server default).
func (s *Store) SetCustomerHTTPRate(ctx context.Context, id int64, rate *int) error {
	n, err := s.w.Exec(ctx, `UPDATE customers SET http_rate = $2 WHERE id = $1`, id, rate)
	if err != nil {
		return fmt.Errorf("set http rate of customer %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("customer %d: %w", id, ErrNotFound)
	}
	return nil
}

// MaxMaxRunning bounds an account's max_running; a value above the server's workers
// means no cap beyond them.
const MaxMaxRunning = 100_000

// SetCustomerMaxRunning sets the customer's cap on runs executing at once (nil: the
// server default).
func (s *Store) SetCustomerMaxRunning(ctx context.Context, id int64, n *int) error {
	c, err := s.w.Exec(ctx, `UPDATE customers SET max_running = $2 WHERE id = $1`, id, n)
	if err != nil {
		return fmt.Errorf("set max running of customer %d: %w", id, err)
	}
	if c == 0 {
		return fmt.Errorf("customer %d: %w", id, ErrNotFound)
	}
	return nil
}

// CreateBot adds a bot with the given key; ErrConflict when the key is taken.
func (s *Store) CreateBot(ctx context.Context, customerID int64, key, name string) (Bot, error) {
	now := nowMS()
	var id int64
	err := s.w.QueryRow(ctx, `INSERT INTO bots (customer_id, bot_key, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		customerID, key, name, now).Scan(&id)
	if err != nil {
		return Bot{}, fmt.Errorf("create bot: %w", err)
	}
	return Bot{ID: id, CustomerID: customerID, Key: key, Name: name, CreatedAt: msTime(now)}, nil
}

const botCols = `id, customer_id, bot_key, name, created_at`

func scanBot(r Row) (Bot, error) {
	var b Bot
	var created int64
	if err := r.Scan(&b.ID, &b.CustomerID, &b.Key, &b.Name, &created); err != nil {
		return Bot{}, err
	}
	b.CreatedAt = msTime(created)
	return b, nil
}

// Bot returns the customer's bot with this key; ErrNotFound when the pair is unknown.
func (s *Store) Bot(ctx context.Context, customerID int64, key string) (Bot, error) {
	b, err := scanBot(s.r.QueryRow(ctx, `SELECT `+botCols+` FROM bots WHERE bot_key = $1 AND customer_id = $2`, key, customerID))
	if err != nil {
		return Bot{}, fmt.Errorf("bot %s of customer %d: %w", key, customerID, err)
	}
	return b, nil
}

// BotByKey returns the bot with this key, whoever owns it (webhooks address bots by key).
func (s *Store) BotByKey(ctx context.Context, key string) (Bot, error) {
	b, err := scanBot(s.r.QueryRow(ctx, `SELECT `+botCols+` FROM bots WHERE bot_key = $1`, key))
	if err != nil {
		return Bot{}, fmt.Errorf("bot %s: %w", key, err)
	}
	return b, nil
}

// BotByID returns a bot by its internal id.
func (s *Store) BotByID(ctx context.Context, id int64) (Bot, error) {
	b, err := scanBot(s.r.QueryRow(ctx, `SELECT `+botCols+` FROM bots WHERE id = $1`, id))
	if err != nil {
		return Bot{}, fmt.Errorf("bot #%d: %w", id, err)
	}
	return b, nil
}

// Bots lists a customer's bots.
func (s *Store) Bots(ctx context.Context, customerID int64) ([]Bot, error) {
	rows, err := s.r.Query(ctx, `SELECT `+botCols+` FROM bots WHERE customer_id = $1 ORDER BY id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	defer rows.Close()
	var out []Bot
	for rows.Next() {
		b, err := scanBot(rows)
		if err != nil {
			return nil, fmt.Errorf("list bots: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// CreateAPIKey stores a new key's hash.
func (s *Store) CreateAPIKey(ctx context.Context, botID int64, hash []byte, hint string) (APIKey, error) {
	now := nowMS()
	var id int64
	err := s.w.QueryRow(ctx, `INSERT INTO api_keys (bot_id, hash, hint, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		botID, hash, hint, now).Scan(&id)
	if err != nil {
		return APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return APIKey{ID: id, BotID: botID, Hint: hint, CreatedAt: msTime(now)}, nil
}

// APIKeys lists a bot's keys, revoked ones included.
func (s *Store) APIKeys(ctx context.Context, botID int64) ([]APIKey, error) {
	rows, err := s.r.Query(ctx, `SELECT id, hint, created_at, revoked_at FROM api_keys WHERE bot_id = $1 ORDER BY id`, botID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	out := []APIKey{}
	for rows.Next() {
		k := APIKey{BotID: botID}
		var created int64
		var revoked *int64
		if err := rows.Scan(&k.ID, &k.Hint, &created, &revoked); err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		k.CreatedAt, k.RevokedAt = msTime(created), msTimePtr(revoked)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a bot's key; revoking twice is not an error.
func (s *Store) RevokeAPIKey(ctx context.Context, botID, id int64) error {
	n, err := s.w.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND bot_id = $2`, id, botID, nowMS())
	if err != nil {
		return fmt.Errorf("revoke api key %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("api key %d: %w", id, ErrNotFound)
	}
	return nil
}

// ReplaceAPIKey gives key id a new secret: the old one stops working, the id stays, and
// a revoked key becomes active again.
func (s *Store) ReplaceAPIKey(ctx context.Context, botID, id int64, hash []byte, hint string) (APIKey, error) {
	now := nowMS()
	n, err := s.w.Exec(ctx, `UPDATE api_keys SET hash = $3, hint = $4, created_at = $5, revoked_at = NULL WHERE id = $1 AND bot_id = $2`,
		id, botID, hash, hint, now)
	if err != nil {
		return APIKey{}, fmt.Errorf("regenerate api key %d: %w", id, err)
	}
	if n == 0 {
		return APIKey{}, fmt.Errorf("api key %d: %w", id, ErrNotFound)
	}
	return APIKey{ID: id, BotID: botID, Hint: hint, CreatedAt: msTime(now)}, nil
}

// KeyOwnerByHash finds the active key with this hash.
func (s *Store) KeyOwnerByHash(ctx context.Context, hash []byte) (KeyOwner, error) {
	var o KeyOwner
	err := s.r.QueryRow(ctx, `SELECT k.id, k.bot_id, b.bot_key, b.customer_id
		FROM api_keys k JOIN bots b ON b.id = k.bot_id
		WHERE k.hash = $1 AND k.revoked_at IS NULL`, hash).Scan(&o.KeyID, &o.BotID, &o.BotKey, &o.CustomerID)
	if err != nil {
		return KeyOwner{}, fmt.Errorf("api key: %w", err)
	}
	return o, nil
}
