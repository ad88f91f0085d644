-- +goose Up
-- A customer's cap on its runs executing at once on each instance (the engine's fair
-- scheduler); NULL = the server's default (--max-running).
ALTER TABLE customers ADD COLUMN max_running INTEGER;

-- +goose Down
ALTER TABLE customers DROP COLUMN max_running;
