// Package storetest gives tests a fresh, migrated database of each engine: a SQLite file
// in the test's temporary directory always, and a PostgreSQL schema of its own when
// PARLEY_TEST_POSTGRES names a server. Nothing is left behind.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// EnvPostgres names the variable holding the PostgreSQL DSN for tests.
const EnvPostgres = "PARLEY_TEST_POSTGRES"

// Engine is one database a test runs against.
type Engine struct {
	Name string
	// DSN opens a fresh database of this engine for t (each call a new one).
	DSN func(t testing.TB) string
}

// Engines lists SQLite and, when configured, PostgreSQL. Without PARLEY_TEST_POSTGRES
// the PostgreSQL run is skipped, saying so.
func Engines(t testing.TB) []Engine {
	out := []Engine{{Name: "sqlite", DSN: SQLiteDSN}}
	if PostgresURL() != "" {
		out = append(out, Engine{Name: "postgres", DSN: PostgresDSN})
	} else {
		t.Logf("%s is not set: PostgreSQL variants are skipped", EnvPostgres)
	}
	return out
}

// PostgresURL is the configured server, or "".
func PostgresURL() string {
	return os.Getenv(EnvPostgres)
}

// SQLiteDSN returns a path for a new SQLite database in t's temporary directory.
func SQLiteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "parley.db")
}

// PostgresDSN creates a schema for t, dropped when t ends, and returns a DSN whose
// connections use it.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	if base == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL variant", EnvPostgres)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvPostgres, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens and migrates a database at dsn, closed when t ends. It gets a fresh secret
// key, so channel and flow secrets are encrypted in tests as they are in production.
func Open(t testing.TB, dsn string) *store.Store {
	t.Helper()
	return OpenWithKeys(t, dsn, secret.Generate())
}

// OpenWithKeys is Open with the given secret keys (nil for none), for tests of key
// rotation and of a missing key.
func OpenWithKeys(t testing.TB, dsn string, keys *secret.Keyring) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{MaxConns: 8, Secrets: keys})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

// Each runs fn as a parallel subtest against a fresh database of every engine.
func Each(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	for _, e := range Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, Open(t, e.DSN(t)))
		})
	}
}
