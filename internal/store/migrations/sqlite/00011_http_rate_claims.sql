-- +goose Up
-- The HTTP-step rate limit as a sliding window: each claim of calls is a row, counted
-- against the limit while its calls are less than 60 s old (see store.ClaimHTTPCalls).
-- ends_at is the last moment (Unix ms) the claim's calls may be made; claims of the same
-- customer and moment add up in one row. The clean-up job deletes rows past the window.
CREATE TABLE http_rate_claims (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    ends_at     INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (customer_id, ends_at)
);
-- Calendar minutes let twice the limit through across a minute's edge.
DROP TABLE http_rate_windows;

-- +goose Down
CREATE TABLE http_rate_windows (
    customer_id  INTEGER PRIMARY KEY REFERENCES customers (id),
    window_start INTEGER NOT NULL,
    n            INTEGER NOT NULL
);
DROP TABLE http_rate_claims;
