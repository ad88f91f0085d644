-- +goose Up
-- Users by attribute (the users API, the console's filter) come from this index of every
-- user's string attributes instead of a scan of the users' JSON. Triggers keep it in step
-- with users.attrs, so every path that writes a user (triggers, flows, webhooks, the CLI,
-- broadcasts) keeps it right without knowing about it. value holds the first 200
-- characters (PostgreSQL's B-tree keys are bounded); a longer value is matched here by its
-- first 200 characters and then checked against users.attrs.
CREATE TABLE user_attrs (
    bot_id  INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (bot_id, name, value, user_id)
) WITHOUT ROWID;
-- A user's rows, for the triggers' updates and deletes.
CREATE INDEX user_attrs_user ON user_attrs (user_id, name);

INSERT OR IGNORE INTO user_attrs (bot_id, name, value, user_id)
SELECT u.bot_id, j.key, substr(j.value, 1, 200), u.id FROM users u, json_each(u.attrs) j WHERE j.type = 'text';

-- +goose StatementBegin
CREATE TRIGGER user_attrs_insert AFTER INSERT ON users BEGIN
    INSERT OR IGNORE INTO user_attrs (bot_id, name, value, user_id)
    SELECT NEW.bot_id, j.key, substr(j.value, 1, 200), NEW.id FROM json_each(NEW.attrs) j WHERE j.type = 'text';
END;
-- +goose StatementEnd

-- Only the attributes that changed are rewritten: a trigger call that merges the same
-- attributes again writes nothing here.
-- +goose StatementBegin
CREATE TRIGGER user_attrs_update AFTER UPDATE OF attrs ON users WHEN OLD.attrs IS NOT NEW.attrs BEGIN
    DELETE FROM user_attrs WHERE user_id = OLD.id AND name IN (
        SELECT o.key FROM json_each(OLD.attrs) o WHERE o.type = 'text' AND NOT EXISTS (
            SELECT 1 FROM json_each(NEW.attrs) n WHERE n.key = o.key AND n.type = 'text' AND n.value = o.value));
    INSERT OR IGNORE INTO user_attrs (bot_id, name, value, user_id)
    SELECT NEW.bot_id, n.key, substr(n.value, 1, 200), NEW.id FROM json_each(NEW.attrs) n WHERE n.type = 'text' AND NOT EXISTS (
        SELECT 1 FROM json_each(OLD.attrs) o WHERE o.key = n.key AND o.type = 'text' AND o.value = n.value);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER user_attrs_delete AFTER DELETE ON users BEGIN
    DELETE FROM user_attrs WHERE user_id = OLD.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER user_attrs_delete;
DROP TRIGGER user_attrs_update;
DROP TRIGGER user_attrs_insert;
DROP TABLE user_attrs;
