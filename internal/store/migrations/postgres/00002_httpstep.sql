-- +goose Up
-- One row per http node of a flow (a "step"), shared by every version of the flow, made
-- at the step's first call. Times are Unix milliseconds.
CREATE TABLE http_steps (
    flow_id       BIGINT  NOT NULL REFERENCES flows (id),
    node_id       TEXT    NOT NULL,
    -- The response structure (httpstep.Shape) recorded at the first successful JSON call.
    shape         TEXT    NOT NULL DEFAULT '',
    -- The latest structure that differed from shape. Not empty means "JSON Structure
    -- Change Detected" until a remap makes it the recorded one.
    changed_shape TEXT    NOT NULL DEFAULT '',
    -- Calls logged so far. Call n is kept in slot n % 20 of http_step_logs, so the last
    -- 20 are kept without ever deleting a row.
    calls         BIGINT  NOT NULL DEFAULT 0,
    last_call_at  BIGINT,
    -- When the last alert mail was claimed (one an hour at most); NULL after a reset.
    alert_sent_at BIGINT,
    PRIMARY KEY (flow_id, node_id)
);

CREATE TABLE http_step_logs (
    flow_id     BIGINT  NOT NULL,
    node_id     TEXT    NOT NULL,
    slot        INTEGER NOT NULL,            -- seq % 20
    seq         BIGINT  NOT NULL,            -- the call's number: the log's id
    run_id      TEXT    NOT NULL DEFAULT '', -- '' for a call made by the Test action
    at          BIGINT  NOT NULL,
    duration_us BIGINT  NOT NULL,
    method      TEXT    NOT NULL,
    url         TEXT    NOT NULL,            -- redacted
    status      INTEGER NOT NULL,            -- 0 when no response came
    error       TEXT    NOT NULL DEFAULT '', -- not empty when the call failed
    message     TEXT    NOT NULL DEFAULT '', -- the mapping error or the structure change
    detail      TEXT    NOT NULL,            -- JSON: the redacted request and response
    PRIMARY KEY (flow_id, node_id, slot),
    FOREIGN KEY (flow_id, node_id) REFERENCES http_steps (flow_id, node_id)
);

-- Each customer's HTTP-step calls in the current minute, shared by every instance: a
-- call is allowed when one upsert can count it (see store.ClaimHTTPCalls). One row per
-- customer, moved on to the next minute by its first call there: nothing to clean up.
CREATE TABLE http_rate_windows (
    customer_id  BIGINT  PRIMARY KEY REFERENCES customers (id),
    window_start BIGINT  NOT NULL,
    n            BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE http_rate_windows;
DROP TABLE http_step_logs;
DROP TABLE http_steps;
