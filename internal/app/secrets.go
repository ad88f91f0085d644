package app

import (
	"errors"
	"strings"

	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// ErrPostgresNeedsKey is why a server on PostgreSQL without a secret key does not start:
// there is no file beside the database to keep a generated key in, and a key kept in
// the database would protect nothing.
var ErrPostgresNeedsKey = errors.New("PostgreSQL needs a secret key to encrypt channel credentials and secret headers: " +
	"set PARLEY_SECRET_KEY (or --secret-key) to a 32-byte key in base64, e.g. from `openssl rand -base64 32`, " +
	"and give every instance and CLI the same value")

// SecretKeys is the keyring of a database's secrets: the keys given (a comma-separated
// list, the first of which encrypts), or, on SQLite without any, the key kept in the
// file KeyFile(dsn) beside the database, which is generated at first use (created says
// so). On PostgreSQL without keys it returns nil and no error: the caller decides
// whether it can do without (the CLI's commands that touch no secret) or not (serve).
func SecretKeys(dsn, keys string) (kr *secret.Keyring, created bool, err error) {
	if strings.TrimSpace(keys) != "" {
		kr, err = secret.Parse(keys)
		return kr, false, err
	}
	if store.IsPostgres(dsn) {
		return nil, false, nil
	}
	return secret.LoadFile(KeyFile(dsn))
}

// KeyFile is where the secret key of a SQLite database is kept: beside it, with ".key"
// added to its name.
func KeyFile(dsn string) string {
	if dsn == "" {
		dsn = "parley.db"
	}
	return dsn + ".key"
}
