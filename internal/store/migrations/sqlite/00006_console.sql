-- +goose Up
-- Console accounts: operators (customer_id NULL) and customer users, who see only their
-- customer's bots. Passwords are argon2id hashes in PHC form; emails are stored lower case.
CREATE TABLE console_users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    customer_id   INTEGER REFERENCES customers (id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Console sessions. The cookie holds a random secret; only its SHA-256 is stored, so a
-- copy of the database signs nobody in. A session opened with the admin token has no
-- user and remembers a hash of that token, so changing the token ends such sessions.
CREATE TABLE console_sessions (
    id_hash          BLOB    PRIMARY KEY,
    user_id          INTEGER REFERENCES console_users (id) ON DELETE CASCADE,
    admin_token_hash BLOB,
    csrf_token       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Who published each flow version: a console user's email, "admin token" or "cli".
ALTER TABLE flow_versions ADD COLUMN published_by TEXT NOT NULL DEFAULT '';

-- Drafts of the flow builder: one per flow key of a bot, valid or not, for the flow it
-- will become when published (a new version through the same import as ever).
CREATE TABLE flow_drafts (
    bot_id     INTEGER NOT NULL REFERENCES bots (id),
    key_lower  TEXT    NOT NULL,
    flow_key   TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    document   TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (bot_id, key_lower)
);

-- The console lists a bot's runs newest first; run ids are UUIDv7, so id order is
-- creation order.
CREATE INDEX runs_bot ON runs (bot_id, id);

-- +goose Down
DROP INDEX runs_bot;
DROP TABLE flow_drafts;
ALTER TABLE flow_versions DROP COLUMN published_by;
DROP TABLE console_sessions;
DROP TABLE console_users;
