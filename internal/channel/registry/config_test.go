package registry_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
)

func TestValidate(t *testing.T) {
	wa := channel.Config{Adapter: "whatsapp", PhoneNumberID: "104242", Token: "EAAG-token"}
	rc := channel.Config{Adapter: "rcs", AgentID: "agent", Token: "ya29.token"}
	sa := serviceAccount(t, "https://oauth2.example.com/token")
	with := func(c channel.Config, f func(*channel.Config)) channel.Config { f(&c); return c }
	tests := []struct {
		name    string
		channel string
		cfg     channel.Config
		wantErr string // "" = valid
	}{
		{"sandbox on whatsapp", "whatsapp", channel.Config{Adapter: "sandbox"}, ""},
		{"sandbox on rcs", "rcs", channel.Config{Adapter: "sandbox"}, ""},
		{"whatsapp minimal", "whatsapp", wa, ""},
		{"whatsapp full", "whatsapp", with(wa, func(c *channel.Config) {
			c.BaseURL, c.AppSecret, c.VerifyToken, c.APIVersion, c.RatePerSecond = "http://127.0.0.1:9/graph", "s", "v", "v22.0", 200
		}), ""},
		{"rcs full", "rcs", with(rc, func(c *channel.Config) { c.BaseURL, c.ClientToken, c.RatePerSecond = "https://x.example", "ct", -1 }), ""},
		{"unknown channel", "sms", channel.Config{Adapter: "sandbox"}, "channel"},
		{"no adapter", "whatsapp", channel.Config{}, "adapter is required"},
		{"unknown adapter", "whatsapp", channel.Config{Adapter: "telegram"}, "cannot serve"},
		{"rcs adapter on whatsapp", "whatsapp", rc, "cannot serve"},
		{"whatsapp adapter on rcs", "rcs", wa, "cannot serve"},
		{"whatsapp without token", "whatsapp", with(wa, func(c *channel.Config) { c.Token = "" }), "token is required"},
		{"whatsapp without phone id", "whatsapp", with(wa, func(c *channel.Config) { c.PhoneNumberID = "" }), "phone_number_id is required"},
		{"rcs without agent", "rcs", with(rc, func(c *channel.Config) { c.AgentID = "" }), "agent_id is required"},
		{"foreign field", "whatsapp", with(wa, func(c *channel.Config) { c.AgentID = "a" }), "agent_id does not apply"},
		{"sandbox with a token", "whatsapp", channel.Config{Adapter: "sandbox", Token: "t"}, "token does not apply"},
		{"sandbox with a rate", "whatsapp", channel.Config{Adapter: "sandbox", RatePerSecond: 5}, "rate_per_second does not apply"},
		{"ftp base url", "whatsapp", with(wa, func(c *channel.Config) { c.BaseURL = "ftp://x" }), "base_url"},
		{"base url without host", "whatsapp", with(wa, func(c *channel.Config) { c.BaseURL = "http://" }), "base_url"},
		{"base url with credentials", "whatsapp", with(wa, func(c *channel.Config) { c.BaseURL = "https://u:p@x.example" }), "base_url"},
		{"token with a newline", "whatsapp", with(wa, func(c *channel.Config) { c.Token = "a\nb" }), "control"},
		{"phone id with a slash", "whatsapp", with(wa, func(c *channel.Config) { c.PhoneNumberID = "1/../2" }), "phone_number_id"},
		{"bad api version", "whatsapp", with(wa, func(c *channel.Config) { c.APIVersion = "latest" }), "api_version"},
		{"NaN rate", "whatsapp", with(wa, func(c *channel.Config) { c.RatePerSecond = math.NaN() }), "rate_per_second"},
		{"huge rate", "whatsapp", with(wa, func(c *channel.Config) { c.RatePerSecond = 1e9 }), "rate_per_second"},
		{"rcs with a service account", "rcs", with(rc, func(c *channel.Config) { c.Token, c.ServiceAccountJSON = "", sa }), ""},
		{"rcs with both", "rcs", with(rc, func(c *channel.Config) { c.ServiceAccountJSON = sa }), ""},
		{"rcs without credentials", "rcs", with(rc, func(c *channel.Config) { c.Token = "" }), "service_account_json (the agent's service-account key) or token"},
		{"rcs with a bad service account", "rcs", with(rc, func(c *channel.Config) { c.ServiceAccountJSON = `{"type":"user"}` }), `service_account_json: type is "user"`},
		{"rcs with a token for a service account", "rcs", with(rc, func(c *channel.Config) { c.ServiceAccountJSON = "ya29.token" }), "service_account_json: not a JSON object"},
		{"service account on whatsapp", "whatsapp", with(wa, func(c *channel.Config) { c.ServiceAccountJSON = sa }), "service_account_json does not apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := registry.Validate(tt.channel, registry.Normalize(tt.cfg))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, registry.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	got := registry.Normalize(channel.Config{Adapter: " WhatsApp ", BaseURL: " http://x.example/ ", Token: " t "})
	want := channel.Config{Adapter: "whatsapp", BaseURL: "http://x.example", Token: "t"}
	if got != want {
		t.Fatalf("Normalize = %+v, want %+v", got, want)
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		cfg  channel.Config
		want float64
	}{
		{channel.Config{Adapter: "whatsapp"}, registry.DefaultWhatsAppRate},
		{channel.Config{Adapter: "whatsapp", RatePerSecond: 250}, 250},
		{channel.Config{Adapter: "whatsapp", RatePerSecond: -1}, 0},
		{channel.Config{Adapter: "rcs"}, 0},
		{channel.Config{Adapter: "rcs", RatePerSecond: 12.5}, 12.5},
		{channel.Config{Adapter: "sandbox"}, 0},
	}
	for _, tt := range tests {
		if got := registry.Rate(tt.cfg); got != tt.want {
			t.Errorf("Rate(%+v) = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"", 0, false},
		{"default", 0, false},
		{"80", 80, false},
		{" 12.5 ", 12.5, false},
		{"unlimited", registry.Unlimited, false},
		{"UNLIMITED", registry.Unlimited, false},
		{"-5", registry.Unlimited, false},
		{"fast", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
	}
	for _, tt := range tests {
		got, err := registry.ParseRate(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseRate(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRedact(t *testing.T) {
	cfg := channel.Config{Adapter: "whatsapp", PhoneNumberID: "104242", BaseURL: "http://x.example",
		Token: "EAAGm0PX4ZCpsBAKZCZCtoken1234", AppSecret: "short", VerifyToken: "verify-token-9876", ClientToken: ""}
	got := registry.Redact(cfg)
	want := channel.Config{Adapter: "whatsapp", PhoneNumberID: "104242", BaseURL: "http://x.example",
		Token: "****1234", AppSecret: "****", VerifyToken: "****9876"}
	if got != want {
		t.Fatalf("Redact = %+v, want %+v", got, want)
	}
	if cfg.Token != "EAAGm0PX4ZCpsBAKZCZCtoken1234" {
		t.Fatal("Redact changed its argument")
	}
}

func TestKeepSecrets(t *testing.T) {
	prev := channel.Config{Adapter: "whatsapp", PhoneNumberID: "1", Token: "token-abcdefgh-1234", AppSecret: "app-secret-xyz-5678", VerifyToken: "v"}
	tests := []struct {
		name string
		next channel.Config
		want channel.Config
	}{
		{"omitted secrets are kept",
			channel.Config{Adapter: "whatsapp", PhoneNumberID: "2"},
			channel.Config{Adapter: "whatsapp", PhoneNumberID: "2", Token: prev.Token, AppSecret: prev.AppSecret, VerifyToken: "v"}},
		{"redacted secrets sent back are kept",
			channel.Config{Adapter: "whatsapp", PhoneNumberID: "1", Token: "****1234", AppSecret: "new-secret"},
			channel.Config{Adapter: "whatsapp", PhoneNumberID: "1", Token: prev.Token, AppSecret: "new-secret", VerifyToken: "v"}},
		{"another adapter starts afresh",
			channel.Config{Adapter: "sandbox"},
			channel.Config{Adapter: "sandbox"}},
	}
	for _, tt := range tests {
		if got := registry.KeepSecrets(prev, tt.next); got != tt.want {
			t.Errorf("%s: KeepSecrets = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
