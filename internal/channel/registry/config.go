package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/rcs"
)

// DefaultWhatsAppRate is Meta's default throughput per business phone number, in
// messages per second; numbers Meta has upgraded set rate_per_second higher.
const DefaultWhatsAppRate = 80

// Unlimited, as a Config.RatePerSecond, lifts pacing (benchmarks, numbers whose limit is
// enforced elsewhere). Any negative value means the same.
const Unlimited = -1

// maxRate bounds a configured rate; Meta's highest tier is 1,000 messages/s.
const maxRate = 100_000

// ErrInvalidConfig wraps every reason Set refuses a configuration.
var ErrInvalidConfig = errors.New("invalid channel settings")

// Channels lists the channels a bot can configure.
func Channels() []string { return []string{channel.WhatsApp, channel.RCS} }

var apiVersionPattern = regexp.MustCompile(`^v[0-9]{1,3}(\.[0-9]{1,3})?$`)

// field is one setting of channel.Config, for the per-adapter rules below.
type field struct {
	name   string
	value  func(*channel.Config) *string
	secret bool
	// document marks a setting that is a whole document (a JSON key file), which may
	// hold spaces and line breaks, and is shown redacted by its own hint.
	document bool
}

var fields = []field{
	{"base_url", func(c *channel.Config) *string { return &c.BaseURL }, false, false},
	{"phone_number_id", func(c *channel.Config) *string { return &c.PhoneNumberID }, false, false},
	{"token", func(c *channel.Config) *string { return &c.Token }, true, false},
	{"app_secret", func(c *channel.Config) *string { return &c.AppSecret }, true, false},
	{"verify_token", func(c *channel.Config) *string { return &c.VerifyToken }, true, false},
	{"agent_id", func(c *channel.Config) *string { return &c.AgentID }, false, false},
	{"client_token", func(c *channel.Config) *string { return &c.ClientToken }, true, false},
	{"api_version", func(c *channel.Config) *string { return &c.APIVersion }, false, false},
	{"service_account_json", func(c *channel.Config) *string { return &c.ServiceAccountJSON }, true, true},
}

// adapterFields says which settings each adapter takes and which of them it needs.
// RCS needs one of token and service_account_json besides (see validate).
var adapterFields = map[string]struct{ allowed, required []string }{
	channel.AdapterSandbox: {},
	channel.AdapterWhatsApp: {
		allowed:  []string{"base_url", "phone_number_id", "token", "app_secret", "verify_token", "api_version"},
		required: []string{"phone_number_id", "token"},
	},
	channel.AdapterRCS: {
		allowed:  []string{"base_url", "agent_id", "token", "client_token", "service_account_json"},
		required: []string{"agent_id"},
	},
}

// Normalize trims white space around every setting and lower-cases the adapter name. A
// service-account key that is valid JSON is stored compacted.
func Normalize(cfg channel.Config) channel.Config {
	cfg.Adapter = strings.ToLower(strings.TrimSpace(cfg.Adapter))
	for _, f := range fields {
		p := f.value(&cfg)
		*p = strings.TrimSpace(*p)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	var b bytes.Buffer
	if cfg.ServiceAccountJSON != "" && json.Compact(&b, []byte(cfg.ServiceAccountJSON)) == nil {
		cfg.ServiceAccountJSON = b.String()
	}
	return cfg
}

// Validate checks settings for a channel: the adapter must serve that channel (sandbox
// serves both), the adapter's required settings must be present and no setting of
// another adapter may be given, base_url must be an http(s) URL, and rate_per_second a
// finite number. cfg should be Normalized first. Errors wrap ErrInvalidConfig.
func Validate(channelName string, cfg channel.Config) error {
	if err := validate(channelName, cfg); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, err.Error())
	}
	return nil
}

func validate(channelName string, cfg channel.Config) error {
	switch channelName {
	case channel.WhatsApp, channel.RCS:
	default:
		return fmt.Errorf("channel %q is not one of %s", channelName, strings.Join(Channels(), ", "))
	}
	switch cfg.Adapter {
	case "":
		return fmt.Errorf("adapter is required: %s or %s", channel.AdapterSandbox, channelName)
	case channel.AdapterSandbox, channelName:
	default:
		return fmt.Errorf("adapter %q cannot serve the %s channel: use %s or %s", cfg.Adapter, channelName, channel.AdapterSandbox, channelName)
	}
	rules := adapterFields[cfg.Adapter]
	for _, f := range fields {
		v := *f.value(&cfg)
		if v == "" {
			continue
		}
		if !contains(rules.allowed, f.name) {
			return fmt.Errorf("%s does not apply to the %s adapter", f.name, cfg.Adapter)
		}
		if !f.document && strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			return fmt.Errorf("%s must not contain spaces or control characters", f.name)
		}
	}
	for _, name := range rules.required {
		for _, f := range fields {
			if f.name == name && *f.value(&cfg) == "" {
				return fmt.Errorf("%s is required for the %s adapter", name, cfg.Adapter)
			}
		}
	}
	if cfg.Adapter == channel.AdapterRCS && cfg.Token == "" && cfg.ServiceAccountJSON == "" {
		return errors.New("service_account_json (the agent's service-account key) or token (an OAuth2 access token) is required for the rcs adapter")
	}
	if cfg.ServiceAccountJSON != "" {
		if _, err := rcs.ParseServiceAccount(cfg.ServiceAccountJSON); err != nil {
			return fmt.Errorf("service_account_json: %v", err)
		}
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("base_url %q must be an http:// or https:// URL with a host (and no credentials, query or fragment)", cfg.BaseURL)
		}
	}
	if cfg.PhoneNumberID != "" && strings.ContainsAny(cfg.PhoneNumberID, "/?#%") {
		return fmt.Errorf("phone_number_id %q must not contain / ? # or %%", cfg.PhoneNumberID)
	}
	if cfg.APIVersion != "" && !apiVersionPattern.MatchString(cfg.APIVersion) {
		return fmt.Errorf("api_version %q should look like v21.0", cfg.APIVersion)
	}
	if math.IsNaN(cfg.RatePerSecond) || math.IsInf(cfg.RatePerSecond, 0) || cfg.RatePerSecond > maxRate {
		return fmt.Errorf("rate_per_second must be a number up to %d (0 for the default, negative for no pacing)", maxRate)
	}
	if cfg.Adapter == channel.AdapterSandbox && cfg.RatePerSecond != 0 {
		return errors.New("rate_per_second does not apply to the sandbox adapter")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Rate is the pacing of a configuration in messages per second; 0 means unpaced. WhatsApp
// defaults to DefaultWhatsAppRate. RCS is unpaced unless configured: RBM enforces its
// quotas per Google Cloud project and answers 429 beyond them, which the engine retries.
func Rate(cfg channel.Config) float64 {
	switch {
	case cfg.RatePerSecond < 0:
		return 0
	case cfg.RatePerSecond > 0:
		return cfg.RatePerSecond
	case cfg.Adapter == channel.AdapterWhatsApp:
		return DefaultWhatsAppRate
	}
	return 0
}

// ParseRate reads a rate as given on a command line or in JSON: a number of messages per
// second, "default" (0) or "unlimited" (Unlimited).
func ParseRate(s string) (float64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "default":
		return 0, nil
	case "unlimited", "none", "off":
		return Unlimited, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("rate %q: want messages per second, \"default\" or \"unlimited\"", s)
	}
	if f < 0 {
		f = Unlimited
	}
	return f, nil
}

// Redact returns cfg with every secret (token, app_secret, verify_token, client_token,
// service_account_json) masked: "****" and the last 4 characters when the secret is at
// least 12 characters long (enough to tell two secrets apart, too little to guess one),
// "****" otherwise. A service-account key shows as "****" and its account's email.
func Redact(cfg channel.Config) channel.Config {
	for _, f := range fields {
		if f.secret {
			p := f.value(&cfg)
			*p = f.mask(*p)
		}
	}
	return cfg
}

func (f field) mask(s string) string {
	switch {
	case s == "":
		return ""
	case f.document:
		var sa struct {
			ClientEmail string `json:"client_email"`
		}
		if json.Unmarshal([]byte(s), &sa) == nil && sa.ClientEmail != "" {
			return "**** service account " + sa.ClientEmail
		}
		return "****"
	case len(s) >= 12:
		return "****" + s[len(s)-4:]
	}
	return "****"
}

// KeepSecrets completes an update: when next keeps prev's adapter, each secret next
// leaves empty, or gives in the redacted form Redact shows, is taken from prev. So
// settings read back (redacted) and sent again, or a change of one field, do not wipe
// the stored credentials. Switching adapters starts afresh.
func KeepSecrets(prev, next channel.Config) channel.Config {
	if prev.Adapter != next.Adapter {
		return next
	}
	for _, f := range fields {
		if !f.secret {
			continue
		}
		p, n := f.value(&prev), f.value(&next)
		if *n == "" || (*p != "" && *n == f.mask(*p)) {
			*n = *p
		}
	}
	return next
}

// Warnings lists what a configuration cannot do as it stands, for the admin API and CLI.
func Warnings(cfg channel.Config) []string {
	var out []string
	switch cfg.Adapter {
	case channel.AdapterWhatsApp:
		if cfg.AppSecret == "" {
			out = append(out, "app_secret is not set: inbound WhatsApp webhooks will be refused (401)")
		}
		if cfg.VerifyToken == "" {
			out = append(out, "verify_token is not set: Meta's webhook verification handshake will be refused (403)")
		}
	case channel.AdapterRCS:
		if cfg.ClientToken == "" {
			out = append(out, "client_token is not set: RBM webhooks cannot be verified and will be refused (401)")
		}
		switch {
		case cfg.ServiceAccountJSON == "" && cfg.Token != "":
			out = append(out, "token is a fixed access token, which Google lets expire after about an hour: set service_account_json so that Parley mints and renews tokens")
		case cfg.ServiceAccountJSON != "" && cfg.Token != "":
			out = append(out, "token is not used: service_account_json mints the access tokens")
		}
	}
	if cfg.Adapter != channel.AdapterSandbox && cfg.RatePerSecond < 0 {
		out = append(out, "pacing is off (rate_per_second is negative): the provider's own limit applies")
	}
	return out
}

// View is a channel's settings as the admin API and the CLI show them: secrets
// redacted, with the pacing in force and what the settings cannot do yet.
type View struct {
	Channel string         `json:"channel"`
	Config  channel.Config `json:"config"`
	// RateEffective is the pacing in force, in messages per second; 0 means unpaced.
	RateEffective float64 `json:"rate_per_second_effective"`
	// WebhookPath is where the provider should post, for provider adapters.
	WebhookPath string   `json:"webhook_path,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

// NewView describes cfg, the settings of a bot's channel.
func NewView(botKey, channelName string, cfg channel.Config) View {
	v := View{Channel: channelName, Config: Redact(cfg), RateEffective: Rate(cfg), Warnings: Warnings(cfg)}
	if cfg.Adapter != channel.AdapterSandbox {
		v.WebhookPath = "/webhooks/" + channelName + "/" + botKey
	}
	return v
}
