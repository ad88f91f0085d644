// Package console is the server side of Parley's web console: accounts (operators and
// customer users), sign-in with a password or the admin token, and sessions. The console
// itself is a client of the admin API; this package decides who a request is and what it
// may reach, and package api enforces that on every admin route.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/internal/store"
)

// Roles.
const (
	RoleOperator = "operator"
	RoleCustomer = "customer"
)

// Principal is who is signed in.
type Principal struct {
	// UserID is the console account; nil for the admin token.
	UserID     *int64 `json:"id"`
	Email      string `json:"email"`
	Role       string `json:"role"`
	CustomerID *int64 `json:"customer_id"`
}

// Operator is the principal of the admin token.
var Operator = Principal{Role: RoleOperator}

// IsOperator reports whether p may do everything.
func (p Principal) IsOperator() bool { return p.Role == RoleOperator }

// MayAccess reports whether p may see and change the customer's bots.
func (p Principal) MayAccess(customerID int64) bool {
	return p.IsOperator() || (p.CustomerID != nil && *p.CustomerID == customerID)
}

// Name is how p appears in records such as a flow version's publisher.
func (p Principal) Name() string {
	if p.Email != "" {
		return p.Email
	}
	return "admin token"
}

// User is an account as the API shows it.
type User struct {
	ID         int64     `json:"id"`
	Email      string    `json:"email"`
	Role       string    `json:"role"`
	CustomerID *int64    `json:"customer_id"`
	CreatedAt  time.Time `json:"created_at"`
}

func toUser(u store.ConsoleUser) User {
	role := RoleOperator
	if u.CustomerID != nil {
		role = RoleCustomer
	}
	return User{ID: u.ID, Email: u.Email, Role: role, CustomerID: u.CustomerID, CreatedAt: u.CreatedAt}
}

func (u User) principal() Principal {
	id := u.ID
	return Principal{UserID: &id, Email: u.Email, Role: u.Role, CustomerID: u.CustomerID}
}

// Session is a signed-in browser: Token goes into the cookie, CSRFToken into the
// X-CSRF-Token header of every state-changing request.
type Session struct {
	Principal Principal
	Token     string
	CSRFToken string
	ExpiresAt time.Time
}

// Errors.
var (
	ErrBadCredentials = errors.New("wrong email or password")
	ErrNoSession      = errors.New("not signed in, or the session expired")
	ErrInvalidAccount = errors.New("invalid account")
	ErrUserNotFound   = errors.New("no such console user")
	ErrEmailTaken     = errors.New("a console user with this email already exists")
)

// TooManyAttemptsError refuses a sign-in after too many failures.
type TooManyAttemptsError struct{ RetryAfter time.Duration }

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("too many failed sign-ins; try again in %s", e.RetryAfter.Round(time.Second))
}

// Session lifetimes: a session ends after SessionIdle without use, and after SessionMax
// in any case.
const (
	SessionIdle = 12 * time.Hour
	SessionMax  = 7 * 24 * time.Hour
	// extendAfter keeps a session in use from writing on every request.
	extendAfter = 10 * time.Minute
)

// Config configures a Service.
type Config struct {
	Store *store.Store
	// AdminToken signs the operator in; empty disables that way in.
	AdminToken string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Service signs people in and manages accounts.
type Service struct {
	st             *store.Store
	adminToken     string
	adminTokenHash []byte
	now            func() time.Time
	argon          argonParams
	byClient       *failureLimiter
	byEmail        *failureLimiter
	// dummyHash is checked against when the email is unknown (its password is random).
	dummyHash func() string
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{st: cfg.Store, adminToken: cfg.AdminToken, now: cfg.Now, argon: defaultArgon,
		byClient: newFailureLimiter(20, 15*time.Minute), byEmail: newFailureLimiter(10, 15*time.Minute)}
	if s.now == nil {
		s.now = time.Now
	}
	s.dummyHash = sync.OnceValue(func() string {
		h, _ := hashPassword(randomToken(), s.argon) // an error leaves "", which fails to parse: same outcome
		return h
	})
	if cfg.AdminToken != "" {
		h := sha256.Sum256([]byte(cfg.AdminToken))
		s.adminTokenHash = h[:]
	}
	return s
}

// CheckAdminToken reports whether token is the server's admin token (in constant time).
func (s *Service) CheckAdminToken(token string) bool {
	return s.adminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.adminToken)) == 1
}

// AdminTokenEnabled reports whether the server has an admin token.
func (s *Service) AdminTokenEnabled() bool { return s.adminToken != "" }

// checkLimits refuses an attempt from a client or for an email that failed too often.
func (s *Service) checkLimits(client, email string, now time.Time) error {
	for _, c := range []struct {
		l   *failureLimiter
		key string
	}{{s.byClient, client}, {s.byEmail, email}} {
		if c.key == "" {
			continue
		}
		if blocked, wait := c.l.blocked(c.key, now); blocked {
			return &TooManyAttemptsError{RetryAfter: wait}
		}
	}
	return nil
}

func (s *Service) failed(client, email string, now time.Time) {
	s.byClient.fail(client, now)
	if email != "" {
		s.byEmail.fail(email, now)
	}
}

// SignInWithToken opens an operator session for the admin token. client identifies the
// caller (its address) for the failure limit.
func (s *Service) SignInWithToken(ctx context.Context, token, client string) (Session, error) {
	now := s.now()
	if err := s.checkLimits(client, "", now); err != nil {
		return Session{}, err
	}
	if !s.CheckAdminToken(token) {
		s.failed(client, "", now)
		return Session{}, ErrBadCredentials
	}
	return s.open(ctx, Operator, nil, s.adminTokenHash, now)
}

// SignInWithPassword opens a session for a console account.
func (s *Service) SignInWithPassword(ctx context.Context, email, password, client string) (Session, error) {
	now := s.now()
	email = normalizeEmail(email)
	if err := s.checkLimits(client, email, now); err != nil {
		return Session{}, err
	}
	u, err := s.st.ConsoleUserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the time a real check would, so timing does not tell which emails exist.
		_, _ = checkPassword(password, s.dummyHash())
		s.failed(client, email, now)
		return Session{}, ErrBadCredentials
	}
	if err != nil {
		return Session{}, err
	}
	ok, err := checkPassword(password, u.PasswordHash)
	if err != nil {
		return Session{}, fmt.Errorf("console user %s: %w", u.Email, err)
	}
	if !ok {
		s.failed(client, email, now)
		return Session{}, ErrBadCredentials
	}
	user := toUser(u)
	return s.open(ctx, user.principal(), &user.ID, nil, now)
}

func (s *Service) open(ctx context.Context, p Principal, userID *int64, tokenHash []byte, now time.Time) (Session, error) {
	token, csrf := randomToken(), randomToken()
	sess := Session{Principal: p, Token: token, CSRFToken: csrf, ExpiresAt: now.Add(SessionIdle)}
	err := s.st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: hashToken(token), UserID: userID,
		AdminTokenHash: tokenHash, CSRFToken: csrf, CreatedAt: now, ExpiresAt: sess.ExpiresAt})
	if err != nil {
		return Session{}, err
	}
	return sess, nil
}

// Authenticate returns the session a cookie value belongs to, extending its idle
// expiry. ErrNoSession when it is unknown, expired, or opened with an admin token the
// server no longer has.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > 100 {
		return Session{}, ErrNoSession
	}
	now := s.now()
	idHash := hashToken(token)
	cs, err := s.st.ConsoleSession(ctx, idHash, now)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	sess := Session{Token: token, CSRFToken: cs.CSRFToken, ExpiresAt: cs.ExpiresAt}
	if cs.UserID == nil {
		if s.adminTokenHash == nil || subtle.ConstantTimeCompare(cs.AdminTokenHash, s.adminTokenHash) != 1 {
			return Session{}, ErrNoSession
		}
		sess.Principal = Operator
	} else {
		u, err := s.st.ConsoleUserByID(ctx, *cs.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return Session{}, ErrNoSession
		}
		if err != nil {
			return Session{}, err
		}
		sess.Principal = toUser(u).principal()
	}
	next := now.Add(SessionIdle)
	if limit := cs.CreatedAt.Add(SessionMax); next.After(limit) {
		next = limit
	}
	if next.Sub(cs.ExpiresAt) > extendAfter {
		if err := s.st.ExtendConsoleSession(ctx, idHash, next); err != nil {
			return Session{}, err
		}
		sess.ExpiresAt = next
	}
	return sess, nil
}

// SignOut ends the session of a cookie value.
func (s *Service) SignOut(ctx context.Context, token string) error {
	return s.st.DeleteConsoleSession(ctx, hashToken(token))
}

// CreateUser adds an account: an operator when customerID is nil, else a user of that
// customer.
func (s *Service) CreateUser(ctx context.Context, email, password string, customerID *int64) (User, error) {
	email = normalizeEmail(email)
	if err := validEmail(email); err != nil {
		return User{}, err
	}
	if err := validPassword(password); err != nil {
		return User{}, err
	}
	if customerID != nil {
		if _, err := s.st.Customer(ctx, *customerID); errors.Is(err, store.ErrNotFound) {
			return User{}, fmt.Errorf("%w: customer %d does not exist", ErrInvalidAccount, *customerID)
		} else if err != nil {
			return User{}, err
		}
	}
	hash, err := hashPassword(password, s.argon)
	if err != nil {
		return User{}, err
	}
	u, err := s.st.CreateConsoleUser(ctx, email, hash, customerID)
	if errors.Is(err, store.ErrConflict) {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, err
	}
	return toUser(u), nil
}

// Users lists every account.
func (s *Service) Users(ctx context.Context) ([]User, error) {
	us, err := s.st.ConsoleUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]User, len(us))
	for i, u := range us {
		out[i] = toUser(u)
	}
	return out, nil
}

// UserByEmail finds an account.
func (s *Service) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := s.st.ConsoleUserByEmail(ctx, normalizeEmail(email))
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	if err != nil {
		return User{}, err
	}
	return toUser(u), nil
}

// UserByID finds an account.
func (s *Service) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := s.st.ConsoleUserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	if err != nil {
		return User{}, err
	}
	return toUser(u), nil
}

// DeleteUser removes an account and ends its sessions.
func (s *Service) DeleteUser(ctx context.Context, id int64) error {
	err := s.st.DeleteConsoleUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ErrUserNotFound
	}
	return err
}

// SetPassword changes an account's password and ends its sessions.
func (s *Service) SetPassword(ctx context.Context, id int64, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password, s.argon)
	if err != nil {
		return err
	}
	err = s.st.SetConsolePassword(ctx, id, hash)
	if errors.Is(err, store.ErrNotFound) {
		return ErrUserNotFound
	}
	return err
}

// RandomPassword returns a password for an account whose creator gave none.
func RandomPassword() string { return randomToken()[:20] }

func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func validEmail(e string) error {
	if e == "" || len(e) > 254 || !utf8.ValidString(e) || strings.ContainsRune(e, 0) {
		return fmt.Errorf("%w: email must be an address of at most 254 characters", ErrInvalidAccount)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return fmt.Errorf("%w: %q is not an email address", ErrInvalidAccount, e)
	}
	return nil
}

func validPassword(p string) error {
	n := utf8.RuneCountInString(p)
	if n < MinPasswordLength || len(p) > 1024 || !utf8.ValidString(p) {
		return fmt.Errorf("%w: a password has %d to 1024 characters", ErrInvalidAccount, MinPasswordLength)
	}
	return nil
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// SameToken compares a CSRF token sent by a client with the session's, in constant time.
func SameToken(sent, want string) bool {
	return sent != "" && subtle.ConstantTimeCompare([]byte(sent), []byte(want)) == 1
}
