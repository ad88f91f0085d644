-- +goose Up
-- One-off sends: messages sent outside any run (the template API; broadcasts reuse it).
-- Like a run's send, a one-off message is stored as pending before the provider call and
-- settled after it (see engine.SendBatch).
--
-- send_key names the send within its bot: the caller's idempotency key, or a fresh one.
-- The pending insert claims it, so a second send with the same key finds the first
-- message instead of sending again (a key older than the idempotency window is taken
-- over). It is also the provider idempotency key (RBM's messageId is derived from it).
ALTER TABLE messages ADD COLUMN send_key TEXT;
-- owner is the instance sending a pending one-off message. If that instance stops
-- heartbeating, another claims the message and settles the interrupted send, as it
-- claims an orphaned run. NULL once the outcome is stored.
ALTER TABLE messages ADD COLUMN owner TEXT;
CREATE UNIQUE INDEX messages_send_key ON messages (bot_id, send_key) WHERE send_key IS NOT NULL;
CREATE INDEX messages_sending ON messages (owner) WHERE status = 'pending' AND run_id IS NULL;

-- +goose Down
DROP INDEX messages_sending;
DROP INDEX messages_send_key;
ALTER TABLE messages DROP COLUMN owner;
ALTER TABLE messages DROP COLUMN send_key;
