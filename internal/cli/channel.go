package cli

import (
	"context"
	"errors"
	"flag"
	"os"
	"strings"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/channel/whatsapp"
)

// channelCmd is `parley channel set|show`: a bot's channel settings. Secrets are
// printed redacted. `set` with the adapter a channel already has changes only the
// settings given, so credentials need not be repeated to change, say, the rate; pass a
// flag with an empty value to clear a setting.
func channelCmd(ctx context.Context, env Env, args []string) error {
	sub, rest, err := subcommand(args, "channel", "set", "show")
	if err != nil {
		return err
	}
	fs := flags(env, "channel "+sub)
	bf := addBotFlags(fs, dbFlag(fs, env))
	chUsage := "whatsapp or rcs"
	if sub == "show" {
		chUsage += " (default: both)"
	}
	chName := fs.String("channel", "", chUsage)
	var adapter, rate *string
	settings := map[string]*string{}
	if sub == "set" {
		adapter = fs.String("adapter", "", "whatsapp, rcs or sandbox (sandbox serves either channel)")
		for _, f := range []struct{ name, usage string }{
			{"base-url", "provider base URL (default: the provider's; point it at a fake in tests)"},
			{"phone-number-id", "WhatsApp business phone number id"},
			{"token", "provider access token (WhatsApp: Graph API token; RCS: a fixed OAuth2 access token, which expires: prefer --service-account-file)"},
			{"app-secret", "WhatsApp app secret, to verify X-Hub-Signature-256 on webhooks"},
			{"verify-token", "WhatsApp webhook verification token (hub.verify_token)"},
			{"agent-id", "RBM agent id"},
			{"client-token", "RBM webhook client token, to verify X-Goog-Signature"},
			{"api-version", "Graph API version (default " + whatsapp.DefaultAPIVersion + ")"},
		} {
			settings[f.name] = fs.String(f.name, "", f.usage)
		}
		settings["service-account-file"] = fs.String("service-account-file", "",
			"RBM agent's Google service-account key (a JSON file): Parley mints and renews access tokens from it")
		rate = fs.String("rate", "", `messages per second per sender: a number, "default" (WhatsApp 80, RCS unpaced) or "unlimited"`)
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	channels := registry.Channels()
	if *chName != "" || sub == "set" {
		name := strings.ToLower(strings.TrimSpace(*chName))
		if name != channel.WhatsApp && name != channel.RCS {
			return usageError{"--channel must be whatsapp or rcs"}
		}
		channels = []string{name}
	}
	if sub == "set" && strings.TrimSpace(*adapter) == "" {
		return usageError{"--adapter is required: whatsapp, rcs or sandbox"}
	}

	st, b, err := bf.lookupBot(ctx, env)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := registry.New(st, registry.Options{})

	if sub == "set" {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if err := setChannel(ctx, reg, b.ID, channels[0], *adapter, settings, given, *rate); err != nil {
			return err
		}
	}
	var views []registry.View
	for _, ch := range channels {
		cfg, err := reg.Get(ctx, b.ID, ch)
		if err != nil {
			return err
		}
		views = append(views, registry.NewView(b.Key, ch, cfg))
	}
	if sub == "set" {
		return printJSON(env.Stdout, views[0])
	}
	return printJSON(env.Stdout, map[string]any{"customer_id": b.CustomerID, "bot_key": b.Key, "channels": views})
}

// setChannel applies the given flags over the stored settings (when the adapter stays)
// and saves the result.
func setChannel(ctx context.Context, reg *registry.Registry, botID int64, ch, adapter string, settings map[string]*string, given map[string]bool, rate string) error {
	prev, err := reg.Get(ctx, botID, ch)
	if err != nil {
		return err
	}
	cfg := channel.Config{Adapter: strings.ToLower(strings.TrimSpace(adapter))}
	if cfg.Adapter == prev.Adapter {
		cfg = prev
	}
	for name, dst := range map[string]*string{
		"base-url": &cfg.BaseURL, "phone-number-id": &cfg.PhoneNumberID, "token": &cfg.Token,
		"app-secret": &cfg.AppSecret, "verify-token": &cfg.VerifyToken, "agent-id": &cfg.AgentID,
		"client-token": &cfg.ClientToken, "api-version": &cfg.APIVersion,
	} {
		if given[name] {
			*dst = *settings[name]
		}
	}
	if given["service-account-file"] {
		cfg.ServiceAccountJSON = ""
		if path := strings.TrimSpace(*settings["service-account-file"]); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return usageError{"--service-account-file: " + err.Error()}
			}
			cfg.ServiceAccountJSON = string(b)
		}
	}
	if given["rate"] {
		r, err := registry.ParseRate(rate)
		if err != nil {
			return usageError{"--rate: " + err.Error()}
		}
		cfg.RatePerSecond = r
	}
	if err := reg.Set(ctx, botID, ch, cfg); err != nil {
		if errors.Is(err, registry.ErrInvalidConfig) {
			return usageError{err.Error()}
		}
		return err
	}
	return nil
}
