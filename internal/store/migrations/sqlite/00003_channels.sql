-- +goose Up
-- Send pacing shared by every process using the database: one row per provider sender
-- (a WhatsApp phone number id, an RBM agent) holding the earliest moment, in Unix
-- microseconds, at which its next message may go out. Each send moves it on by one
-- interval (1/rate), so sends are spaced evenly whoever makes them (see
-- store.ReservePacingSlot). One row per sender: nothing to clean up.
CREATE TABLE channel_pacing (
    sender     TEXT    PRIMARY KEY,
    next_at_us INTEGER NOT NULL
);

-- +goose Down
DROP TABLE channel_pacing;
