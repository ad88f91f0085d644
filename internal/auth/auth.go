// Package auth mints, stores and verifies API keys, and provisions the customers and bots
// they belong to. Keys are shown once; only their SHA-256 digest is stored.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// ErrUnauthorized means the key is missing, unknown or revoked.
var ErrUnauthorized = errors.New("unknown or revoked API key")

// DefaultCacheTTL is how long a verified key is trusted without asking the database. A
// revocation made by another process (the CLI, another instance) takes effect within it.
const DefaultCacheTTL = 900 * time.Millisecond

// Principal is the bot a request authenticated as.
type Principal struct {
	KeyID      int64
	BotID      int64
	BotKey     string
	CustomerID int64
}

// Service provisions bots and keys and authenticates requests.
type Service struct {
	st  *store.Store
	ttl time.Duration
	now func() time.Time

	mu    sync.RWMutex
	cache map[[sha256.Size]byte]cached
}

type cached struct {
	p       Principal
	expires time.Time
}

// New returns a Service; ttl <= 0 means DefaultCacheTTL.
func New(st *store.Store, ttl time.Duration) *Service {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Service{st: st, ttl: ttl, now: time.Now, cache: map[[sha256.Size]byte]cached{}}
}

// NewBotKey returns a random bot key: 16 lowercase hex characters.
func NewBotKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewAPIKey returns a key in the vendor's shape: a UUID, a dash and 7 lowercase letters
// (2082e8f4-0011-479b-9edb-74293c62d91b-gkouziq).
func NewAPIKey() string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	suffix := make([]byte, len(b))
	for i, v := range b {
		suffix[i] = 'a' + v%26
	}
	return uuid.NewString() + "-" + string(suffix)
}

func digest(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

func hint(key string) string {
	if len(key) < 4 {
		return key
	}
	return key[len(key)-4:]
}

// Authenticate returns the bot a key belongs to. Keys are looked up by their SHA-256
// digest, so neither the map nor the database index compares secret bytes directly.
func (s *Service) Authenticate(ctx context.Context, key string) (Principal, error) {
	if key == "" || len(key) > 200 {
		return Principal{}, ErrUnauthorized
	}
	d := digest(key)
	now := s.now()
	s.mu.RLock()
	c, ok := s.cache[d]
	s.mu.RUnlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	o, err := s.st.KeyOwnerByHash(ctx, d[:])
	if errors.Is(err, store.ErrNotFound) {
		s.mu.Lock()
		delete(s.cache, d)
		s.mu.Unlock()
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	p := Principal{KeyID: o.KeyID, BotID: o.BotID, BotKey: o.BotKey, CustomerID: o.CustomerID}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		s.evictExpiredLocked(now)
	}
	s.cache[d] = cached{p: p, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return p, nil
}

func (s *Service) evictExpiredLocked(now time.Time) {
	for k, c := range s.cache {
		if !now.Before(c.expires) {
			delete(s.cache, k)
		}
	}
}

// forget drops cached verifications of a key id so this process sees a revocation at once.
func (s *Service) forget(keyID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.cache {
		if c.p.KeyID == keyID {
			delete(s.cache, k)
		}
	}
}

// NewBot is what creating a bot returns; APIKey is shown only this once.
type NewBot struct {
	CustomerID int64  `json:"customer_id"`
	BotKey     string `json:"bot_key"`
	KeyID      int64  `json:"key_id"`
	APIKey     string `json:"api_key"`
}

// CreateBot creates a bot with a first API key for the named customer, creating the
// customer when new.
func (s *Service) CreateBot(ctx context.Context, customerName, botName string) (NewBot, error) {
	customerName, botName = strings.TrimSpace(customerName), strings.TrimSpace(botName)
	if customerName == "" || botName == "" {
		return NewBot{}, errors.New("create bot: customer and bot names are required")
	}
	if err := sanitize.CheckName(customerName); err != nil {
		return NewBot{}, fmt.Errorf("create bot: the customer name %w", err)
	}
	c, _, err := s.st.EnsureCustomer(ctx, customerName)
	if err != nil {
		return NewBot{}, err
	}
	return s.CreateBotFor(ctx, c.ID, botName)
}

// CreateBotFor creates a bot with a first API key for an existing customer.
func (s *Service) CreateBotFor(ctx context.Context, customerID int64, botName string) (NewBot, error) {
	botName = strings.TrimSpace(botName)
	if botName == "" {
		return NewBot{}, errors.New("create bot: the bot name is required")
	}
	if err := sanitize.CheckName(botName); err != nil {
		return NewBot{}, fmt.Errorf("create bot: the bot name %w", err)
	}
	var b store.Bot
	var err error
	for range 3 { // a clash of random 64-bit keys is next to impossible; retry anyway
		b, err = s.st.CreateBot(ctx, customerID, NewBotKey(), botName)
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err != nil {
		return NewBot{}, err
	}
	k, err := s.createKey(ctx, b.ID)
	if err != nil {
		return NewBot{}, err
	}
	return NewBot{CustomerID: customerID, BotKey: b.Key, KeyID: k.ID, APIKey: k.APIKey}, nil
}

// NewKey is a freshly minted key; APIKey is shown only this once.
type NewKey struct {
	ID     int64  `json:"id"`
	APIKey string `json:"api_key"`
	Hint   string `json:"hint"`
}

func (s *Service) createKey(ctx context.Context, botID int64) (NewKey, error) {
	key := NewAPIKey()
	d := digest(key)
	k, err := s.st.CreateAPIKey(ctx, botID, d[:], hint(key))
	if err != nil {
		return NewKey{}, err
	}
	return NewKey{ID: k.ID, APIKey: key, Hint: k.Hint}, nil
}

// CreateKey adds an API key to a bot.
func (s *Service) CreateKey(ctx context.Context, customerID int64, botKey string) (NewKey, error) {
	b, err := s.st.Bot(ctx, customerID, botKey)
	if err != nil {
		return NewKey{}, err
	}
	return s.createKey(ctx, b.ID)
}

// ListKeys lists a bot's keys (hints only).
func (s *Service) ListKeys(ctx context.Context, customerID int64, botKey string) ([]store.APIKey, error) {
	b, err := s.st.Bot(ctx, customerID, botKey)
	if err != nil {
		return nil, err
	}
	return s.st.APIKeys(ctx, b.ID)
}

// RevokeKey revokes a key; it fails with 401 from then on.
func (s *Service) RevokeKey(ctx context.Context, customerID int64, botKey string, keyID int64) error {
	b, err := s.st.Bot(ctx, customerID, botKey)
	if err != nil {
		return err
	}
	if err := s.st.RevokeAPIKey(ctx, b.ID, keyID); err != nil {
		return err
	}
	s.forget(keyID)
	return nil
}

// RegenerateKey replaces a key's secret, keeping its id; the old secret fails at once.
func (s *Service) RegenerateKey(ctx context.Context, customerID int64, botKey string, keyID int64) (NewKey, error) {
	b, err := s.st.Bot(ctx, customerID, botKey)
	if err != nil {
		return NewKey{}, err
	}
	key := NewAPIKey()
	d := digest(key)
	k, err := s.st.ReplaceAPIKey(ctx, b.ID, keyID, d[:], hint(key))
	if err != nil {
		return NewKey{}, err
	}
	s.forget(keyID)
	return NewKey{ID: k.ID, APIKey: key, Hint: k.Hint}, nil
}
