package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
)

// Channel secrets at rest: every secret setting (token, app_secret, verify_token,
// client_token, service_account_json) is stored encrypted with the store's keyring, each
// value on its own, so the settings stay JSON whose other members the store can query
// (phone_number_id). Values stored in plain text before encryption existed are read as
// they are and encrypted at the next write or by Reencrypt.

// Seal returns cfg with its secrets encrypted by kr's first key.
func Seal(kr *secret.Keyring, cfg channel.Config) (channel.Config, error) {
	for _, f := range fields {
		if !f.secret {
			continue
		}
		p := f.value(&cfg)
		enc, err := kr.Encrypt(*p)
		if err != nil {
			return channel.Config{}, fmt.Errorf("encrypt %s: %w", f.name, err)
		}
		*p = enc
	}
	return cfg, nil
}

// Open returns cfg with its secrets decrypted; plain-text secrets are kept as they are.
func Open(kr *secret.Keyring, cfg channel.Config) (channel.Config, error) {
	for _, f := range fields {
		if !f.secret {
			continue
		}
		p := f.value(&cfg)
		plain, err := kr.Decrypt(*p)
		if err != nil {
			return channel.Config{}, fmt.Errorf("decrypt %s: %w", f.name, err)
		}
		*p = plain
	}
	return cfg, nil
}

// Decode reads stored settings (as the store returns them) with their secrets decrypted.
func Decode(kr *secret.Keyring, raw []byte) (channel.Config, error) {
	var cfg channel.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return channel.Config{}, err
	}
	return Open(kr, cfg)
}

// Decode reads stored settings with this registry's keys (see the function Decode).
func (r *Registry) Decode(raw []byte) (channel.Config, error) {
	return Decode(r.st.Secrets(), raw)
}

// MissingKeys lists the keys that encrypted some stored channel secret but are not in
// the store's keyring, so a server started with the wrong PARLEY_SECRET_KEY says so at
// once instead of failing each bot's sends.
func MissingKeys(ctx context.Context, st *store.Store) ([]string, error) {
	rows, err := st.AllChannelConfigs(ctx)
	if err != nil {
		return nil, err
	}
	kr := st.Secrets()
	var missing []string
	for _, row := range rows {
		var cfg channel.Config
		if err := json.Unmarshal(row.Config, &cfg); err != nil {
			continue // reported when the bot's channel is used
		}
		for _, f := range fields {
			if id := secret.KeyOf(*f.value(&cfg)); f.secret && id != "" && !kr.Has(id) && !slices.Contains(missing, id) {
				missing = append(missing, id)
			}
		}
	}
	return missing, nil
}

// Reencrypt rewrites every bot's channel settings whose secrets are in plain text or
// encrypted with another key than the store keyring's first, so that they are all under
// the first key. It returns how many settings it rewrote. A row changed meanwhile (by a
// server or the CLI) is read again, never overwritten with older settings.
func Reencrypt(ctx context.Context, st *store.Store) (int, error) {
	kr := st.Secrets()
	if !kr.Configured() {
		return 0, secret.ErrNoKey
	}
	rows, err := st.AllChannelConfigs(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, row := range rows {
		for attempt := 0; ; attempt++ {
			next, changed, err := reencrypt(kr, row.Config)
			if err != nil {
				return n, fmt.Errorf("%s settings of bot #%d: %w", row.Channel, row.BotID, err)
			}
			if !changed {
				break
			}
			ok, err := st.ReplaceChannelConfig(ctx, row.BotID, row.Channel, row.Config, next)
			if err != nil {
				return n, err
			}
			if ok {
				n++
				break
			}
			if attempt == 10 {
				return n, fmt.Errorf("%s settings of bot #%d keep changing: run the rotation again", row.Channel, row.BotID)
			}
			if row.Config, err = st.ChannelConfig(ctx, row.BotID, row.Channel); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					break
				}
				return n, err
			}
		}
	}
	return n, nil
}

// reencrypt brings one stored configuration's secrets under kr's first key.
func reencrypt(kr *secret.Keyring, raw []byte) ([]byte, bool, error) {
	var cfg channel.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, false, err
	}
	changed := false
	var problems []string
	for _, f := range fields {
		if !f.secret {
			continue
		}
		p := f.value(&cfg)
		v, c, err := kr.Reencrypt(*p)
		if err != nil {
			problems = append(problems, f.name+": "+err.Error())
			continue
		}
		*p, changed = v, changed || c
	}
	if len(problems) > 0 {
		return nil, false, errors.New(strings.Join(problems, "; "))
	}
	if !changed {
		return raw, false, nil
	}
	out, err := json.Marshal(cfg)
	return out, true, err
}
