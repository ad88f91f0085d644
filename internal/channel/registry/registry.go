// Package registry turns a bot's channel settings into a ready sender. It reads the
// settings from the store (briefly cached), builds the adapter they name (the sandbox
// when none is configured), and wraps provider adapters with the rules that hold for
// every send: WhatsApp's 24-hour customer-service window and per-sender pacing.
//
// A Registry satisfies engine.ChannelResolver without importing the engine, so the
// dependency points from the engine's wiring to the channels and not back.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/rcs"
	"github.com/parleyhq/parley/internal/channel/sandbox"
	"github.com/parleyhq/parley/internal/channel/whatsapp"
	"github.com/parleyhq/parley/internal/store"
)

// Defaults of Options.
const (
	// DefaultCacheTTL bounds how stale settings changed by another process (the CLI,
	// another instance) may be; changes made through this Registry apply at once.
	DefaultCacheTTL = time.Second
	// DefaultMaxPacingWait is the longest a send waits for its slot. Beyond it the send
	// fails as rate limited (retryable), so a long queue for one number parks runs
	// instead of holding every engine worker and starving other bots.
	DefaultMaxPacingWait = 10 * time.Second
)

// Options tune a Registry. Zero values mean the defaults.
type Options struct {
	// HTTPClient calls the providers (default NewHTTPClient()).
	HTTPClient *http.Client
	CacheTTL   time.Duration
	Pacing     PacingMode
	// MaxPacingWait is DefaultMaxPacingWait when zero.
	MaxPacingWait time.Duration
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Registry resolves the sender serving a bot's channel.
type Registry struct {
	st      *store.Store
	hc      *http.Client
	ttl     time.Duration
	shared  bool
	maxWait time.Duration
	now     func() time.Time

	mu  sync.Mutex
	gen uint64 // bumped by Forget, so a load that raced a change is not cached
	// cache holds settings and the sender built from them, per bot and channel.
	cache map[cacheKey]*entry
	// pacers are per provider sender: bots sharing a phone number share its limit.
	pacers map[string]*localPacer
}

type cacheKey struct {
	botID   int64
	channel string
}

type entry struct {
	cfg     channel.Config
	sender  channel.Sender
	err     error // settings that cannot build a sender
	expires time.Time
}

// New returns a Registry over st.
func New(st *store.Store, opts Options) *Registry {
	r := &Registry{st: st, hc: opts.HTTPClient, ttl: opts.CacheTTL, maxWait: opts.MaxPacingWait, now: opts.Now,
		cache: map[cacheKey]*entry{}, pacers: map[string]*localPacer{}}
	if r.hc == nil {
		r.hc = NewHTTPClient()
	}
	if r.ttl <= 0 {
		r.ttl = DefaultCacheTTL
	}
	if r.maxWait <= 0 {
		r.maxWait = DefaultMaxPacingWait
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch opts.Pacing {
	case PacingShared:
		r.shared = true
	case PacingAuto:
		r.shared = st.Dialect() == store.Postgres
	}
	return r
}

// NewHTTPClient returns the client used for provider calls: bounded connect, TLS and
// response times, an overall 30 s limit per call, enough idle connections per host to
// keep hundreds of concurrent sends on warm connections, and no redirects (the Graph
// API and RBM do not redirect; following one would resend a token elsewhere).
func NewHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 25 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// HTTPClient is the client provider calls go through.
func (r *Registry) HTTPClient() *http.Client { return r.hc }

// Sender returns the sender serving the bot's channel: the sandbox when nothing is
// configured, else the configured adapter wrapped with the window and pacing rules.
// Settings that cannot build an adapter give a *channel.Error of KindNotConfigured.
func (r *Registry) Sender(ctx context.Context, botID int64, channelName string) (channel.Sender, error) {
	e, err := r.load(ctx, botID, channelName)
	if err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.sender, nil
}

// Get returns the bot's settings for the channel, secrets included (show them with
// Redact); a bot that configured nothing gets the sandbox.
func (r *Registry) Get(ctx context.Context, botID int64, channelName string) (channel.Config, error) {
	e, err := r.load(ctx, botID, channelName)
	if err != nil {
		return channel.Config{}, err
	}
	return e.cfg, nil
}

// Set normalises, validates and stores the bot's settings for the channel, replacing
// what was there; this process uses them at once, others within the cache TTL. Invalid
// settings give an error wrapping ErrInvalidConfig.
func (r *Registry) Set(ctx context.Context, botID int64, channelName string, cfg channel.Config) error {
	cfg = Normalize(cfg)
	if err := Validate(channelName, cfg); err != nil {
		return err
	}
	sealed, err := Seal(r.st.Secrets(), cfg)
	if err != nil {
		return fmt.Errorf("store the %s settings: %w", channelName, err)
	}
	b, err := json.Marshal(sealed)
	if err != nil {
		return fmt.Errorf("encode channel settings: %w", err)
	}
	if err := r.st.SaveChannelConfig(ctx, botID, channelName, b); err != nil {
		return err
	}
	r.Forget(botID, channelName)
	return nil
}

// Forget drops what is cached for the bot's channel, so the next use reads the store.
func (r *Registry) Forget(botID int64, channelName string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	delete(r.cache, cacheKey{botID, channelName})
}

// load returns the cached entry, reading the store when it is missing or stale.
func (r *Registry) load(ctx context.Context, botID int64, channelName string) (*entry, error) {
	switch channelName {
	case channel.WhatsApp, channel.RCS:
	default:
		return nil, &channel.Error{Kind: channel.KindNotConfigured,
			Message: fmt.Sprintf("unknown channel %q: want whatsapp or rcs", channelName)}
	}
	key := cacheKey{botID, channelName}
	now := r.now()
	r.mu.Lock()
	cached := r.cache[key]
	gen := r.gen
	r.mu.Unlock()
	if cached != nil && now.Before(cached.expires) {
		return cached, nil
	}

	cfg := channel.Config{Adapter: channel.AdapterSandbox}
	raw, err := r.st.ChannelConfig(ctx, botID, channelName)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("stored %s settings of bot #%d: %w", channelName, botID, err)
		}
		// A secret this server cannot decrypt (a key missing from PARLEY_SECRET_KEY) is
		// a configuration error, not a passing failure: the sends fail, saying why.
		if cfg, err = Open(r.st.Secrets(), cfg); err != nil {
			return nil, &channel.Error{Kind: channel.KindNotConfigured,
				Message: fmt.Sprintf("the bot's %s settings cannot be read: %v", channelName, err)}
		}
	}

	e := &entry{cfg: cfg, expires: now.Add(r.ttl)}
	if cached != nil && cached.cfg == cfg {
		// Unchanged: keep the built sender (and its HTTP connections).
		e.sender, e.err = cached.sender, cached.err
	} else {
		e.sender, e.err = r.build(channelName, cfg)
	}
	r.mu.Lock()
	if r.gen == gen {
		r.cache[key] = e
	}
	r.mu.Unlock()
	return e, nil
}

// build makes the sender for settings.
func (r *Registry) build(channelName string, cfg channel.Config) (channel.Sender, error) {
	notConfigured := func(err error) error {
		return &channel.Error{Kind: channel.KindNotConfigured,
			Message: fmt.Sprintf("the bot's %s settings cannot be used: %v", channelName, err)}
	}
	if err := Validate(channelName, Normalize(cfg)); err != nil {
		return nil, notConfigured(err)
	}
	switch cfg.Adapter {
	case channel.AdapterWhatsApp:
		c, err := whatsapp.New(cfg, r.hc)
		if err != nil {
			return nil, notConfigured(err)
		}
		return r.wrap(c, channelName, "whatsapp:"+cfg.PhoneNumberID, cfg, true), nil
	case channel.AdapterRCS:
		c, err := rcs.New(cfg, r.hc)
		if err != nil {
			return nil, notConfigured(err)
		}
		return probing{wrapped: r.wrap(c, channelName, "rcs:"+cfg.AgentID, cfg, false), prober: c}, nil
	}
	return sandbox.Sender{}, nil
}

func (r *Registry) wrap(inner channel.Sender, channelName, sender string, cfg channel.Config, window bool) *wrapped {
	w := &wrapped{inner: inner, channel: channelName, window: window, sender: sender, rate: Rate(cfg),
		maxWait: r.maxWait, now: r.now}
	if r.shared {
		w.pacer = sharedPacer{st: r.st, sender: sender}
	} else {
		r.mu.Lock()
		p := r.pacers[sender]
		if p == nil {
			p = &localPacer{}
			r.pacers[sender] = p
		}
		r.mu.Unlock()
		w.pacer = p
	}
	return w
}
