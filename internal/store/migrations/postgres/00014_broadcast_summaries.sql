-- +goose Up
-- A broadcast's request without its recipient lists (users, audience.rule.channelUserIds),
-- made once when it is accepted: what a summary or a list of broadcasts shows. Before,
-- the first look at a 100,000-recipient broadcast read and took apart its 1.5 MB request
-- (47-71 ms), and every server kept the result in memory.
ALTER TABLE broadcasts ADD COLUMN summary TEXT NOT NULL DEFAULT '';
UPDATE broadcasts SET summary = COALESCE((SELECT ((r.request::jsonb - 'users') #- '{audience,rule,channelUserIds}')::text
    FROM broadcast_requests r WHERE r.broadcast_id = broadcasts.id), '');

-- +goose Down
ALTER TABLE broadcasts DROP COLUMN summary;
