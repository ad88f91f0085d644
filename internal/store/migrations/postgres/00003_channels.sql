-- +goose Up
-- Send pacing shared by every instance: one row per provider sender (a WhatsApp phone
-- number id, an RBM agent) holding the earliest moment, in Unix microseconds, at which
-- its next message may go out. Each send moves it on by one interval (1/rate), so sends
-- are spaced evenly across instances (see store.ReservePacingSlot). One row per sender:
-- nothing to clean up.
CREATE TABLE channel_pacing (
    sender     TEXT   PRIMARY KEY,
    next_at_us BIGINT NOT NULL
);

-- +goose Down
DROP TABLE channel_pacing;
