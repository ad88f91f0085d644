-- +goose Up
-- Users by attribute (the users API, the console's filter) come from this index of every
-- user's string attributes; it replaces the GIN index on users.attrs, which cost every
-- user write more and could not serve an index-only count or an ordered page. Triggers
-- keep it in step with users.attrs, so every path that writes a user keeps it right
-- without knowing about it. value holds the first 200 characters (B-tree keys are
-- bounded); a longer value is matched here by its first 200 characters and then checked
-- against users.attrs.
CREATE TABLE user_attrs (
    bot_id  BIGINT NOT NULL,
    name    TEXT   NOT NULL,
    value   TEXT   NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (bot_id, name, value, user_id)
);
-- A user's rows, for the triggers' updates and deletes.
CREATE INDEX user_attrs_user ON user_attrs (user_id, name);

INSERT INTO user_attrs (bot_id, name, value, user_id)
SELECT u.bot_id, j.key, left(j.value #>> '{}', 200), u.id FROM users u, jsonb_each(u.attrs) j
WHERE jsonb_typeof(j.value) = 'string'
ON CONFLICT DO NOTHING;

DROP INDEX users_attrs;

-- Only the attributes that changed are rewritten: a trigger call that merges the same
-- attributes again writes nothing here.
-- +goose StatementBegin
CREATE FUNCTION user_attrs_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM user_attrs a USING jsonb_each(OLD.attrs) o
        WHERE a.user_id = OLD.id AND a.name = o.key AND jsonb_typeof(o.value) = 'string'
          AND (TG_OP = 'DELETE' OR (NEW.attrs -> o.key) IS DISTINCT FROM o.value);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO user_attrs (bot_id, name, value, user_id)
        SELECT NEW.bot_id, n.key, left(n.value #>> '{}', 200), NEW.id FROM jsonb_each(NEW.attrs) n
        WHERE jsonb_typeof(n.value) = 'string' AND (TG_OP = 'INSERT' OR (OLD.attrs -> n.key) IS DISTINCT FROM n.value)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER user_attrs_insert AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION user_attrs_sync();
CREATE TRIGGER user_attrs_update AFTER UPDATE OF attrs ON users FOR EACH ROW
    WHEN (OLD.attrs IS DISTINCT FROM NEW.attrs) EXECUTE FUNCTION user_attrs_sync();
CREATE TRIGGER user_attrs_delete AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION user_attrs_sync();

-- +goose Down
DROP TRIGGER user_attrs_delete ON users;
DROP TRIGGER user_attrs_update ON users;
DROP TRIGGER user_attrs_insert ON users;
DROP FUNCTION user_attrs_sync();
CREATE INDEX users_attrs ON users USING GIN (attrs jsonb_path_ops);
DROP TABLE user_attrs;
