// Package broadcast sends the same messages to many users of a bot: the platform API's
// broadcasts (v1: an audience rule and direct content; v2: users to upsert and a
// WhatsApp template). A broadcast is stored with its recipients in one transaction
// before it is acknowledged, published at its time by whichever instance claims it
// first, and fanned out durably: a recipient is sent to at most once, across crashes and
// instances, and a broadcast left half-way by a dead instance is taken over by another.
//
// Messages go out through the engine's one-off sends, which follow the rule for external
// effects that runs follow: a message is committed as pending before the provider is
// called, and a send interrupted by a crash is sent again only to providers that drop
// duplicates (RCS); otherwise it is reported as failed rather than risked twice. Each
// recipient's message has a key of its own, so a batch cut short is sent again safely.
package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/lowprio"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
)

// DefaultMax is the most recipients one broadcast may have unless configured otherwise.
const DefaultMax = 100_000

// IdempotencyWindow is how long an Idempotency-Key returns the first broadcast.
const IdempotencyWindow = 24 * time.Hour

// ChannelResolver finds the sender serving a bot's channel (the channel registry).
type ChannelResolver interface {
	Sender(ctx context.Context, botID int64, channelName string) (channel.Sender, error)
}

// Sender sends one-off messages durably and at most once per key, as bulk work that
// yields to runs and triggers (the engine).
type Sender interface {
	SendBulk(ctx context.Context, sends []engine.OneOff) ([]engine.SendResult, error)
	// Bulk runs fn in a transaction shared with other work, yielding to runs and
	// triggers.
	Bulk(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error
	// Background is Bulk for work no one waits for (the fan-out's), which also rests
	// while runs and triggers come.
	Background(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error
}

// Config configures a Service. Zero values mean the defaults.
type Config struct {
	Store    *store.Store
	Channels ChannelResolver
	// Sends sends the messages; without it, broadcasts are accepted and read but not
	// published (the CLI).
	Sends Sender
	// InstanceID is this server's name among the instances (the engine's), whose
	// heartbeats say which instances are alive.
	InstanceID string
	// Liveness is how long after its last heartbeat an instance's broadcasts are taken
	// over (default 10 s, the engine's).
	Liveness time.Duration
	// Sweep is how often due and orphaned broadcasts are looked for (default 500 ms).
	Sweep time.Duration
	// Max bounds the recipients of one broadcast (default DefaultMax).
	Max int
	// BatchSize is how many recipients of a local channel (the sandbox) are sent to per
	// transaction (default 200: a few milliseconds of the writer, so API triggers
	// interleave with a fan-out).
	BatchSize int
	// ExternalBatch is how many messages through a provider one batch holds (default 32,
	// what the engine sends at once): a cancellation stops the broadcast within one.
	ExternalBatch int
	// Concurrent is how many broadcasts this instance fans out at once (default 4).
	Concurrent int
	Log        *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Service accepts, publishes and reports broadcasts.
type Service struct {
	st  *store.Store
	cfg Config
	log *slog.Logger

	kick   chan struct{} // wakes the sweeper when a broadcast is due now
	cancel context.CancelFunc
	done   sync.WaitGroup
	slots  chan struct{} // one per broadcast being fanned out
	// lastDrop is when the sweeper last looked for abandoned acceptances.
	lastDrop time.Time

	stopped chan struct{}
}

// New returns a Service; Start begins publishing.
func New(cfg Config) *Service {
	if cfg.Liveness <= 0 {
		cfg.Liveness = 10 * time.Second
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = 500 * time.Millisecond
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 200
	}
	if cfg.ExternalBatch <= 0 {
		cfg.ExternalBatch = 32
	}
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = 4
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{st: cfg.Store, cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1),
		slots: make(chan struct{}, cfg.Concurrent), stopped: make(chan struct{})}
}

// Max is the most recipients a broadcast may have.
func (s *Service) Max() int { return s.cfg.Max }

// View is a broadcast as the API answers it: the request in its own shape, with
// broadcastId, status and totals filled in.
type View map[string]any

// ErrNotFound is returned for a broadcast the bot does not have.
var ErrNotFound = errors.New("broadcast not found")

// Create stores a planned broadcast with its recipients (and v2's users) before it is
// acknowledged. A retry with the same idempotency key within IdempotencyWindow returns
// the first broadcast and duplicate=true.
//
// The recipients are stored a few at a time through the engine's bulk lane, which runs
// and triggers overtake (one transaction for 100,000 of them would hold the database's
// writer for seconds); until the last is stored the broadcast is accepting, which no one
// sees. If this fails, or the server dies meanwhile, the broadcast is dropped.
func (s *Service) Create(ctx context.Context, botID int64, p *Plan, idempotencyKey string) (View, bool, error) {
	now := s.cfg.Now()
	content, err := json.Marshal(p.Content)
	if err != nil {
		return nil, false, fmt.Errorf("encode broadcast content: %w", err)
	}
	summary, err := withoutRecipientLists(p.Request)
	if err != nil {
		return nil, false, fmt.Errorf("summarize broadcast request: %w", err)
	}
	nb := store.NewBroadcast{
		Broadcast: store.Broadcast{BotID: botID, APIVersion: p.APIVersion, Title: p.Title, Request: p.Request, Summary: summary, Content: content,
			Channels: p.Channels, PublishAt: p.PublishAt.UnixMilli(), CreatedAt: now.UnixMilli()},
		RecipientIDs: p.Recipients, IdempotencyKey: idempotencyKey,
	}
	id, dup, err := s.st.BeginBroadcast(ctx, nb, s.cfg.InstanceID, now.Add(-IdempotencyWindow).UnixMilli())
	if errors.Is(err, store.ErrBroadcastAccepting) {
		return nil, false, ErrAccepting
	}
	if err != nil {
		return nil, false, err
	}
	if !dup {
		if err := s.storeAudience(ctx, botID, id, p, now.UnixMilli()); err != nil {
			if derr := s.st.DropAccepting(context.WithoutCancel(ctx), id); derr != nil {
				s.log.Error("broadcasts: drop a broadcast not accepted", "broadcast", id, "err", derr)
			}
			return nil, false, err
		}
		if err := s.st.EndAccepting(ctx, id, store.BroadcastScheduled); err != nil {
			return nil, false, err
		}
		if !p.PublishAt.After(now) {
			s.wake()
		}
	}
	v, err := s.Get(ctx, botID, id, false)
	return v, dup, err
}

// ErrAccepting is returned by Create for an idempotency key whose broadcast is still
// being accepted (by another request, or by an instance that died: then it is dropped
// within the liveness window, and a retry succeeds).
var ErrAccepting = errors.New("a broadcast with this Idempotency-Key is still being accepted; retry later")

// Rows per bulk operation while a broadcast is accepted: a transaction carries a few
// such operations besides the runs' and triggers' own, so these keep it short. At most
// bulkInFlight operations wait for the bulk lane at once.
const (
	acceptRecipientRows = 16
	acceptUserRows      = 4
	bulkInFlight        = 64
)

// storeAudience stores an accepting broadcast's users (v2) and recipients.
func (s *Service) storeAudience(ctx context.Context, botID, id int64, p *Plan, now int64) error {
	var ops []func(ctx context.Context, tx store.Tx) error
	for start := 0; start < len(p.Users); start += acceptUserRows {
		users := p.Users[start:min(start+acceptUserRows, len(p.Users))]
		ops = append(ops, func(ctx context.Context, tx store.Tx) error {
			for _, u := range users {
				if _, err := s.st.UpsertUserID(ctx, tx, store.UserUpsert{BotID: botID, ChannelUserID: u.Digits, Channel: channel.WhatsApp,
					Attrs: u.Attrs, Defaults: map[string]string{"user.user_name": u.Digits}}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for start := 0; start < len(p.Recipients); start += acceptRecipientRows {
		ids := p.Recipients[start:min(start+acceptRecipientRows, len(p.Recipients))]
		ops = append(ops, func(ctx context.Context, tx store.Tx) error {
			return s.st.AddBroadcastRecipients(ctx, tx, id, ids, start, now)
		})
	}
	if err := s.inBulk(ctx, false, ops); err != nil {
		return fmt.Errorf("store the recipients of broadcast #%d: %w", id, err)
	}
	return nil
}

// inBulk runs ops through the engine's bulk lane, each in a transaction shared with
// other work that runs and triggers overtake, many at once so that a transaction can
// carry several (without the engine, as in the CLI, each in a transaction of its own);
// as background work (Sender.Background) when no one waits for it. It stops at the
// first error, or when ctx ends, and returns that.
func (s *Service) inBulk(ctx context.Context, background bool, ops []func(ctx context.Context, tx store.Tx) error) error {
	write := func(fn func(ctx context.Context, tx store.Tx) error) error {
		switch {
		case s.cfg.Sends == nil:
			return s.st.InTx(ctx, func(tx store.Tx) error { return fn(ctx, tx) })
		case background:
			return s.cfg.Sends.Background(ctx, fn)
		}
		return s.cfg.Sends.Bulk(ctx, fn)
	}
	sem := make(chan struct{}, bulkInFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, op := range ops {
		sem <- struct{}{}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := write(op); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Get returns a bot's broadcast, live; summary leaves out the recipient lists.
func (s *Service) Get(ctx context.Context, botID, id int64, summary bool) (View, error) {
	read := s.st.BroadcastByID
	if summary {
		read = s.st.BroadcastHeadByID // the summary is all it shows
	}
	b, err := read(ctx, botID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return s.view(ctx, b, summary)
}

// view answers a broadcast. A summary leaves out the recipient lists
// (audience.rule.channelUserIds, users), which make a large broadcast's view megabytes;
// totals.recipients counts them.
func (s *Service) view(ctx context.Context, b store.Broadcast, summary bool) (View, error) {
	request := b.Request
	if summary {
		request = b.Summary
	}
	v := View{}
	if err := json.Unmarshal(request, &v); err != nil {
		return nil, fmt.Errorf("broadcast #%d request: %w", b.ID, err)
	}
	totals, err := s.st.BroadcastTotals(ctx, b)
	if err != nil {
		return nil, err
	}
	v["broadcastId"] = b.ID
	v["status"] = b.Status
	v["totals"] = totals
	v["publishedOn"] = time.UnixMilli(b.PublishAt).UTC().Format("2006-01-02T15:04:05.000Z")
	v["createdOn"] = time.UnixMilli(b.CreatedAt).UTC().Format("2006-01-02T15:04:05.000Z")
	if b.FinishedAt != nil {
		v["finishedOn"] = time.UnixMilli(*b.FinishedAt).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if b.Error != "" {
		v["error"] = b.Error
	}
	return v, nil
}

// withoutRecipientLists is a request without users and audience.rule.channelUserIds
// (Broadcast.Summary), taken out before the rest is decoded: decoding a list of 100,000
// recipients into values, only to drop it, is most of the work.
func withoutRecipientLists(request []byte) ([]byte, error) {
	top, err := withoutField(request, "users")
	if err != nil {
		return nil, err
	}
	if audience, ok := top["audience"]; ok {
		fields, err := withoutField(audience, "")
		if err != nil {
			return nil, err
		}
		if rule, ok := fields["rule"]; ok {
			ruleFields, err := withoutField(rule, "channelUserIds")
			if err != nil {
				return nil, err
			}
			if fields["rule"], err = json.Marshal(ruleFields); err != nil {
				return nil, err
			}
		}
		if top["audience"], err = json.Marshal(fields); err != nil {
			return nil, err
		}
	}
	return json.Marshal(top)
}

// withoutField splits a JSON object into its fields, left undecoded, dropping one.
func withoutField(object []byte, name string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(object, &fields); err != nil {
		return nil, err
	}
	delete(fields, name)
	return fields, nil
}

// List returns a bot's broadcasts in summary (without their recipient lists), newest
// first, before the cursor id (0: the newest).
func (s *Service) List(ctx context.Context, botID, before int64, limit int) ([]View, error) {
	bs, err := s.st.Broadcasts(ctx, botID, before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]View, len(bs))
	for i, b := range bs {
		if out[i], err = s.view(ctx, b, true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RecipientView is one recipient as the API lists it.
type RecipientView struct {
	ChannelUserID     string    `json:"channelUserId"`
	Status            string    `json:"status"`
	Reason            string    `json:"reason,omitempty"`
	MessageID         string    `json:"messageId,omitempty"`
	ProviderMessageID string    `json:"providerMessageId,omitempty"`
	UpdatedOn         time.Time `json:"updatedOn"`
}

// Recipients pages through a broadcast's recipients (status "" for all).
func (s *Service) Recipients(ctx context.Context, botID, id int64, status string, pq store.PageQuery) ([]RecipientView, store.Page, error) {
	b, err := s.st.BroadcastHeadByID(ctx, botID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.Page{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	} else if err != nil {
		return nil, store.Page{}, err
	}
	cs, err := storedContents(b)
	if err != nil {
		return nil, store.Page{}, err
	}
	rs, pg, err := s.st.BroadcastRecipients(ctx, b, len(cs), status, pq)
	if err != nil {
		return nil, store.Page{}, err
	}
	out := make([]RecipientView, len(rs))
	for i, r := range rs {
		out[i] = RecipientView{ChannelUserID: r.ChannelUserID, Status: r.Status, Reason: r.Error, UpdatedOn: time.UnixMilli(r.UpdatedAt).UTC()}
		if r.MessageID != nil {
			out[i].MessageID = fmt.Sprint(*r.MessageID)
		}
		if r.ProviderID != nil {
			out[i].ProviderMessageID = *r.ProviderID
		}
	}
	return out, pg, nil
}

// Cancel stops a broadcast: before publishing nothing is sent; while publishing, the
// recipients not yet sent are cancelled. Cancelling an ended broadcast changes nothing.
func (s *Service) Cancel(ctx context.Context, botID, id int64) (View, error) {
	if _, err := s.st.CancelBroadcast(ctx, botID, id); errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	} else if err != nil {
		return nil, err
	}
	return s.Get(ctx, botID, id, false)
}

// Start begins publishing due broadcasts, and taking over those of dead instances.
func (s *Service) Start(context.Context) error {
	if s.cfg.Sends == nil || s.cfg.Channels == nil || s.cfg.InstanceID == "" {
		return errors.New("broadcasts: publishing needs the engine's sends, the channels and the instance id")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(1)
	go s.sweepLoop(ctx)
	return nil
}

// Stop ends the fan-outs at their next batch and releases this instance's broadcasts, so
// the next instance (or this one restarted) goes on where they stopped.
func (s *Service) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.done.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop broadcasts: %w", ctx.Err())
	}
	return s.st.ReleaseBroadcasts(context.Background(), s.cfg.InstanceID)
}

func (s *Service) sweepLoop(ctx context.Context) {
	defer s.done.Done()
	t := time.NewTicker(s.cfg.Sweep)
	defer t.Stop()
	for {
		if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("broadcasts: sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// sweep drops broadcasts whose acceptance a dead instance left half-way (once per
// liveness window), and claims as many due broadcasts as there are free fan-out slots.
func (s *Service) sweep(ctx context.Context) error {
	now := s.cfg.Now()
	if now.Sub(s.lastDrop) >= s.cfg.Liveness {
		s.lastDrop = now
		n, err := s.st.DropAbandonedBroadcasts(ctx, now.Add(-s.cfg.Liveness).UnixMilli())
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Warn("broadcasts: dropped broadcasts left accepting by an instance that died", "count", n)
		}
	}
	free := cap(s.slots) - len(s.slots)
	if free == 0 {
		return nil
	}
	ids, err := s.st.ClaimBroadcasts(ctx, s.cfg.InstanceID, now.UnixMilli(), now.Add(-s.cfg.Liveness).UnixMilli(), free)
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.slots <- struct{}{}
		s.done.Add(1)
		go func() {
			defer func() { <-s.slots; s.done.Done() }()
			// The fan-out is background work: runs and triggers come first on a busy
			// machine (its writes, too, run so: store.Batcher). Best effort.
			_ = lowprio.Pin()
			if err := s.publish(ctx, id); err != nil && ctx.Err() == nil {
				s.log.Error("broadcasts: publish", "broadcast", id, "err", err)
			}
		}()
	}
	return nil
}

// storedContents decodes a stored broadcast's messages.
func storedContents(b store.Broadcast) ([]msg.Content, error) {
	var cs []msg.Content
	if err := json.Unmarshal(b.Content, &cs); err != nil {
		return nil, fmt.Errorf("broadcast #%d content: %w", b.ID, err)
	}
	return cs, nil
}
