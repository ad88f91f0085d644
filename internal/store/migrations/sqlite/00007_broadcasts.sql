-- +goose Up
-- A broadcast sends the same messages to many users of a bot, once each. The row is the
-- broadcast as accepted; fan-out is claimed by one live instance at a time (owner), like
-- a run, so a crash mid-way is resumed by another instance without sending twice.
CREATE TABLE broadcasts (
    id           INTEGER PRIMARY KEY,
    bot_id       INTEGER NOT NULL REFERENCES bots (id),
    api_version  INTEGER NOT NULL,           -- 1 (direct content) or 2 (WhatsApp template)
    title        TEXT    NOT NULL DEFAULT '',
    request      TEXT    NOT NULL,           -- the request as accepted, in its own shape (JSON)
    content      TEXT    NOT NULL,           -- the messages each recipient gets, in order (JSON)
    channels     TEXT    NOT NULL,           -- the audience's channels (JSON list)
    status       TEXT    NOT NULL,           -- SCHEDULED, PUBLISHING, PUBLISHED, CANCELLED, FAILED
    publish_at   INTEGER NOT NULL,
    owner        TEXT,                       -- the instance fanning it out, while PUBLISHING
    recipients   INTEGER NOT NULL,
    idem_key     TEXT,                       -- Idempotency-Key, forgotten after 24 hours
    error        TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE UNIQUE INDEX broadcasts_idem ON broadcasts (bot_id, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX broadcasts_bot ON broadcasts (bot_id, id);
CREATE INDEX broadcasts_due ON broadcasts (publish_at) WHERE status IN ('SCHEDULED', 'PUBLISHING');

-- One row per recipient, in the order given. A recipient moves queued → sending (while
-- its messages are handed to the engine's one-off sends) → sent, or failed / cancelled.
-- Its message i is the one-off send with key "broadcast:<id>:<i>:<seq>" (at most once
-- per key), and the delivery status of its last message is the recipient's once sent.
CREATE TABLE broadcast_recipients (
    broadcast_id    INTEGER NOT NULL REFERENCES broadcasts (id),
    seq             INTEGER NOT NULL,
    channel_user_id TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    error           TEXT    NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (broadcast_id, seq)
);
CREATE INDEX broadcast_recipients_status ON broadcast_recipients (broadcast_id, status, seq);

-- +goose Down
DROP TABLE broadcast_recipients;
DROP TABLE broadcasts;
