-- +goose Up
-- A broadcast's request as accepted moves to a table of its own: for a large broadcast
-- it is megabytes of recipient list, and SQLite rewrites a whole row on any update, so
-- every change of the broadcast's status copied it (9 ms of the one writer's time for
-- 100,000 recipients, with API triggers waiting behind it).
CREATE TABLE broadcast_requests (
    broadcast_id BIGINT NOT NULL PRIMARY KEY REFERENCES broadcasts (id) ON DELETE CASCADE,
    request      TEXT NOT NULL
);
INSERT INTO broadcast_requests (broadcast_id, request) SELECT id, request FROM broadcasts;
ALTER TABLE broadcasts DROP COLUMN request;

-- +goose Down
ALTER TABLE broadcasts ADD COLUMN request TEXT NOT NULL DEFAULT '';
UPDATE broadcasts SET request = (SELECT request FROM broadcast_requests WHERE broadcast_id = broadcasts.id);
DROP TABLE broadcast_requests;
