package store

import (
	"context"
	"errors"
	"fmt"
)

// ChannelConfig returns the stored settings of a bot's channel as the JSON they were
// saved in; ErrNotFound when the bot has none for that channel.
func (s *Store) ChannelConfig(ctx context.Context, botID int64, channel string) ([]byte, error) {
	var cfg string
	err := s.r.QueryRow(ctx, `SELECT config FROM channel_configs WHERE bot_id = $1 AND channel = $2`, botID, channel).Scan(&cfg)
	if err != nil {
		return nil, fmt.Errorf("channel %s of bot #%d: %w", channel, botID, err)
	}
	return []byte(cfg), nil
}

// SaveChannelConfig creates or replaces the settings (JSON) of a bot's channel.
func (s *Store) SaveChannelConfig(ctx context.Context, botID int64, channel string, config []byte) error {
	_, err := s.w.Exec(ctx, `INSERT INTO channel_configs (bot_id, channel, config, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (bot_id, channel) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at`,
		botID, channel, string(config), nowMS())
	if err != nil {
		return fmt.Errorf("save channel %s of bot #%d: %w", channel, botID, err)
	}
	return nil
}

// BotChannelConfig is one bot's settings for a channel, with the bot they belong to.
type BotChannelConfig struct {
	BotID      int64
	CustomerID int64
	BotKey     string
	Config     []byte
}

// ChannelConfigsByPhoneNumberID finds the bots whose WhatsApp settings name this business
// phone number id. Meta posts one app's events for all of its numbers to one callback
// URL, so a webhook may carry events for a number another bot serves.
func (s *Store) ChannelConfigsByPhoneNumberID(ctx context.Context, phoneNumberID string) ([]BotChannelConfig, error) {
	match := `json_extract(c.config, '$.phone_number_id') = $1`
	if s.dialect == Postgres {
		match = `(c.config::jsonb ->> 'phone_number_id') = $1`
	}
	// The table holds a row or two per bot, so a scan is cheap; no index is needed.
	rows, err := s.r.Query(ctx, `SELECT c.bot_id, b.customer_id, b.bot_key, c.config
		FROM channel_configs c JOIN bots b ON b.id = c.bot_id
		WHERE c.channel = 'whatsapp' AND `+match+` ORDER BY c.bot_id`, phoneNumberID)
	if err != nil {
		return nil, fmt.Errorf("find channel configs of phone number id %s: %w", phoneNumberID, err)
	}
	defer rows.Close()
	var out []BotChannelConfig
	for rows.Next() {
		var c BotChannelConfig
		var cfg string
		if err := rows.Scan(&c.BotID, &c.CustomerID, &c.BotKey, &cfg); err != nil {
			return nil, fmt.Errorf("find channel configs of phone number id %s: %w", phoneNumberID, err)
		}
		c.Config = []byte(cfg)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find channel configs of phone number id %s: %w", phoneNumberID, err)
	}
	return out, nil
}

// ReservePacingSlot paces one provider sender across every process sharing the
// database, with the generic cell rate algorithm: the sender's row holds the earliest
// time (Unix µs) its next message may go. A reservation takes the later of that time and
// now as its slot and moves the row on by interval, so successive slots are at least one
// interval apart whichever instance takes them, and no burst builds up while the sender
// is idle. A slot more than maxAhead after now is not reserved: ok is false and slot is
// the earliest time one could be had, so the caller can back off instead of queueing.
//
// It is one single-row upsert; the row lock serialises the senders of one number, which
// is what pacing means anyway.
func (s *Store) ReservePacingSlot(ctx context.Context, sender string, nowUS, intervalUS, maxAheadUS int64) (slotUS int64, ok bool, err error) {
	query := `INSERT INTO channel_pacing (sender, next_at_us) VALUES ($1, $2 + $3)
		ON CONFLICT (sender) DO UPDATE SET next_at_us = MAX(channel_pacing.next_at_us, $2) + $3
		WHERE MAX(channel_pacing.next_at_us, $2) - $2 <= $4
		RETURNING next_at_us`
	if s.dialect == Postgres {
		query = `INSERT INTO channel_pacing (sender, next_at_us) VALUES ($1, $2::bigint + $3::bigint)
		ON CONFLICT (sender) DO UPDATE SET next_at_us = GREATEST(channel_pacing.next_at_us, $2::bigint) + $3::bigint
		WHERE GREATEST(channel_pacing.next_at_us, $2::bigint) - $2::bigint <= $4::bigint
		RETURNING next_at_us`
	}
	var next int64
	err = s.w.QueryRow(ctx, query, sender, nowUS, intervalUS, maxAheadUS).Scan(&next)
	if err == nil {
		return next - intervalUS, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, false, fmt.Errorf("reserve send slot of %s: %w", sender, err)
	}
	// The update's condition refused: the queue is too long. Report when it frees up.
	if err := s.w.QueryRow(ctx, `SELECT next_at_us FROM channel_pacing WHERE sender = $1`, sender).Scan(&next); err != nil {
		return 0, false, fmt.Errorf("read send slot of %s: %w", sender, err)
	}
	return max(next, nowUS), false, nil
}

// StoredChannelConfig is one bot's stored settings for a channel, as saved.
type StoredChannelConfig struct {
	BotID   int64
	Channel string
	Config  []byte
}

// AllChannelConfigs lists the stored settings of every bot's channels, for the
// start-up key check and for re-encrypting secrets under a new key. The table holds a
// row or two per bot.
func (s *Store) AllChannelConfigs(ctx context.Context) ([]StoredChannelConfig, error) {
	rows, err := s.r.Query(ctx, `SELECT bot_id, channel, config FROM channel_configs ORDER BY bot_id, channel`)
	if err != nil {
		return nil, fmt.Errorf("list channel configs: %w", err)
	}
	defer rows.Close()
	var out []StoredChannelConfig
	for rows.Next() {
		var c StoredChannelConfig
		var cfg string
		if err := rows.Scan(&c.BotID, &c.Channel, &cfg); err != nil {
			return nil, fmt.Errorf("list channel configs: %w", err)
		}
		c.Config = []byte(cfg)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list channel configs: %w", err)
	}
	return out, nil
}

// ReplaceChannelConfig replaces the settings of a bot's channel only while they are
// still old, so a rewrite (re-encryption) never undoes a change made meanwhile. ok is
// false when they had changed.
func (s *Store) ReplaceChannelConfig(ctx context.Context, botID int64, channel string, old, config []byte) (ok bool, err error) {
	n, err := s.w.Exec(ctx, `UPDATE channel_configs SET config = $4, updated_at = $5
		WHERE bot_id = $1 AND channel = $2 AND config = $3`, botID, channel, string(old), string(config), nowMS())
	if err != nil {
		return false, fmt.Errorf("rewrite channel %s of bot #%d: %w", channel, botID, err)
	}
	return n == 1, nil
}
