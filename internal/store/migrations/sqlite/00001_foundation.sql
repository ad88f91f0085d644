-- +goose Up
-- Every time column holds Unix milliseconds (UTC).
CREATE TABLE customers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    http_rate  INTEGER,              -- HTTP-step calls per minute; NULL = server default
    created_at INTEGER NOT NULL
);
-- Customer ids look like the vendor's (five digits and up).
INSERT INTO sqlite_sequence (name, seq) VALUES ('customers', 10000);

CREATE TABLE bots (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    bot_key     TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX bots_customer ON bots (customer_id);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    bot_id     INTEGER NOT NULL REFERENCES bots (id),
    hash       BLOB    NOT NULL UNIQUE, -- SHA-256 of the key; the key itself is never stored
    hint       TEXT    NOT NULL,        -- last characters, to tell keys apart in lists
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_bot ON api_keys (bot_id);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    bot_id          INTEGER NOT NULL REFERENCES bots (id),
    channel_user_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    attrs           TEXT    NOT NULL DEFAULT '{}', -- JSON object of string values
    last_inbound_at INTEGER,                       -- opens WhatsApp's 24-hour window
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (bot_id, channel_user_id)
);

CREATE TABLE flows (
    id              INTEGER PRIMARY KEY,
    bot_id          INTEGER NOT NULL REFERENCES bots (id),
    flow_key        TEXT    NOT NULL,
    key_lower       TEXT    NOT NULL, -- flow keys match case-insensitively
    name            TEXT    NOT NULL DEFAULT '',
    current_version INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (bot_id, key_lower)
);

CREATE TABLE flow_versions (
    flow_id    INTEGER NOT NULL REFERENCES flows (id),
    version    INTEGER NOT NULL,
    document   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, version)
);

-- The runs table is also the run queue: a run belongs to the live instance named in
-- owner while queued or running; a waiting run wakes at wake_at (input timeouts, retries).
CREATE TABLE runs (
    id           TEXT    PRIMARY KEY,
    bot_id       INTEGER NOT NULL REFERENCES bots (id),
    flow_id      INTEGER NOT NULL REFERENCES flows (id),
    flow_version INTEGER NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    channel      TEXT    NOT NULL,
    status       TEXT    NOT NULL, -- queued, running, waiting, completed, failed
    node         TEXT    NOT NULL DEFAULT '',
    state        TEXT    NOT NULL DEFAULT '{}',
    wait_seq     INTEGER NOT NULL DEFAULT 0,
    wake_at      INTEGER,
    owner        TEXT,
    error        TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX runs_active ON runs (owner) WHERE status IN ('queued', 'running');
CREATE INDEX runs_wake ON runs (wake_at) WHERE status = 'waiting' AND wake_at IS NOT NULL;
CREATE INDEX runs_user_waiting ON runs (user_id) WHERE status = 'waiting';

CREATE TABLE idempotency_keys (
    bot_id     INTEGER NOT NULL,
    idem_key   TEXT    NOT NULL,
    run_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bot_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    bot_id      INTEGER NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    run_id      TEXT,
    step        INTEGER,
    channel     TEXT    NOT NULL,
    sender      TEXT    NOT NULL, -- bot or user
    type        TEXT    NOT NULL,
    text        TEXT    NOT NULL DEFAULT '',
    payload     TEXT,             -- JSON: buttons, media, template, or the provider's raw message
    status      TEXT    NOT NULL, -- pending, sent, delivered, read, failed, received
    provider_id TEXT,
    error       TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX messages_user_time ON messages (user_id, created_at, id);
-- A provider's message id is stored once, so a redelivered webhook is not a new message.
CREATE UNIQUE INDEX messages_provider ON messages (bot_id, channel, provider_id) WHERE provider_id IS NOT NULL;
-- One outbound message per run step: a replayed step cannot send twice.
CREATE UNIQUE INDEX messages_run_step ON messages (run_id, step) WHERE run_id IS NOT NULL;

CREATE TABLE instances (
    id           TEXT    PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

CREATE TABLE channel_configs (
    bot_id     INTEGER NOT NULL REFERENCES bots (id),
    channel    TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (bot_id, channel)
);

-- +goose Down
DROP TABLE channel_configs;
DROP TABLE instances;
DROP TABLE messages;
DROP TABLE idempotency_keys;
DROP TABLE runs;
DROP TABLE flow_versions;
DROP TABLE flows;
DROP TABLE users;
DROP TABLE api_keys;
DROP TABLE bots;
DROP TABLE customers;
