-- +goose Up
-- A broadcast's recipients counted by the status they show (see store.BroadcastTotals),
-- kept up to date by every statement that moves one, so that a look at a large
-- broadcast reads one row instead of counting every recipient and its last message.
-- Queued is not kept: it is the broadcast's recipients less all the others (those
-- being sent to show as queued). "sent" counts sent recipients whose last message has
-- no later delivery status; "failed" counts both refused recipients and sent ones whose
-- last message failed.
CREATE TABLE broadcast_tallies (
    broadcast_id INTEGER NOT NULL PRIMARY KEY REFERENCES broadcasts (id) ON DELETE CASCADE,
    n_sent       INTEGER NOT NULL DEFAULT 0,
    n_delivered  INTEGER NOT NULL DEFAULT 0,
    n_read       INTEGER NOT NULL DEFAULT 0,
    n_failed     INTEGER NOT NULL DEFAULT 0,
    n_cancelled  INTEGER NOT NULL DEFAULT 0
);
-- The broadcasts stored so far are counted once, as looks at them used to count.
INSERT INTO broadcast_tallies (broadcast_id, n_sent, n_delivered, n_read, n_failed, n_cancelled)
SELECT r.broadcast_id,
    SUM(CASE WHEN r.status = 'sent' AND (m.status IS NULL OR m.status NOT IN ('delivered', 'read', 'failed')) THEN 1 ELSE 0 END),
    SUM(CASE WHEN r.status = 'sent' AND m.status = 'delivered' THEN 1 ELSE 0 END),
    SUM(CASE WHEN r.status = 'sent' AND m.status = 'read' THEN 1 ELSE 0 END),
    SUM(CASE WHEN r.status = 'failed' OR (r.status = 'sent' AND m.status = 'failed') THEN 1 ELSE 0 END),
    SUM(CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END)
FROM broadcast_recipients r
JOIN broadcasts b ON b.id = r.broadcast_id
LEFT JOIN messages m ON r.status = 'sent' AND m.bot_id = b.bot_id
    AND m.send_key = 'broadcast:' || b.id || ':' || (json_array_length(b.content) - 1) || ':' || r.seq
WHERE r.status NOT IN ('queued', 'sending')
GROUP BY r.broadcast_id;

-- +goose Down
DROP TABLE broadcast_tallies;
