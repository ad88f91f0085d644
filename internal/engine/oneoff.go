package engine

// One-off sends.
//
// A one-off message is sent outside any run: the template API's, and each recipient's
// message of a broadcast. It follows the rule a run's provider send follows (see
// sendExternal), with a stored message in place of the run's pending effect:
//
//  1. The pending commit: the recipient is created or updated and the message is stored
//     as pending, owned by this instance, under the send's key. Nothing has left Parley.
//  2. The provider call.
//  3. The outcome commit: sent (with the provider's id) or failed (with the reason); the
//     ownership ends.
//
// A crash between 1 and 3 leaves the message pending, owned by an instance that stops
// heartbeating. Another instance (or this one after a restart) claims it in its sweep,
// exactly as it claims an orphaned run, and settles it as a run's interrupted send is
// settled: a provider that drops duplicates (RBM, whose messageId is derived from the
// send's key) is sent the message again; any other (WhatsApp) gets nothing, and the
// message is recorded as failed, "interrupted", because it may have gone out.
//
// The key names the send within its bot: the caller's (an Idempotency-Key, a broadcast
// recipient) or a fresh one. The pending insert claims it, so a second send with a key
// used within IdempotencyWindow sends nothing and reports the first send instead
// (Duplicate). A refusal for a passing reason (rate limited, provider unavailable)
// deletes the pending message and frees its key, so sending again with the same key
// tries again; any other refusal is stored, and a retry reports it.
//
// Cost: a local channel (the sandbox) has no effect outside Parley, so its message is
// stored settled, in the pending commit alone. A provider send costs two commits, both
// made through the group-commit batcher, and SendBatch makes them once per batch: one
// transaction stores a whole batch as pending (an upsert and an insert per message),
// the provider calls run in parallel, and one transaction stores every outcome.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
)

// OneOff is one message to send outside any flow.
type OneOff struct {
	BotID   int64
	Channel string
	// Phone is the recipient's number in E.164 and Digits its digits, the channel user
	// id. The user is created or updated in the pending commit, with Attrs merged into
	// their attributes (user.channel and user.phone_no are set from the send).
	Phone  string
	Digits string
	Attrs  map[string]string
	// UserID, when not zero, is the recipient's stored user, which a caller that loaded
	// it already (a broadcast to existing users) passes with LastInbound, when the user
	// last wrote: the user is then neither created nor updated, saving a statement.
	UserID      int64
	LastInbound *time.Time
	// Content is sent as it is: templates in it are not rendered.
	Content msg.Content
	// Key makes the send idempotent within its bot for IdempotencyWindow; empty means a
	// fresh key (the send is still recovered after a crash, but a retry sends again).
	// Callers keep their keys apart with a prefix (the template API uses "template:").
	Key string
}

// SendResult is what became of a one-off send.
type SendResult struct {
	// MessageID is the stored message, the conversations API's message_id; 0 when
	// nothing is stored (the channel could not be used, or a passing refusal).
	MessageID int64
	// ProviderMessageID is the provider's id (a wamid, an RBM message id).
	ProviderMessageID string
	// Status is sent or delivered; failed; or, for a duplicate, whatever the first send
	// has come to (pending while it is in flight, then sent, delivered, read, failed).
	Status string
	// Error says why a failed send failed.
	Error string
	// Failure is the classified refusal when this call made the attempt (nil for a
	// duplicate): Retryable ones stored nothing and left the key free.
	Failure *channel.Error
	// Duplicate is true when the key had been used: nothing was sent, and the fields
	// above describe the first send.
	Duplicate bool
}

// ErrSendNotFound is returned by AwaitSend for a message the bot does not have (or no
// longer has: a send refused for a passing reason is deleted and its key freed).
var ErrSendNotFound = errors.New("send not found")

// interruptedSend is the reason recorded for a send a crash interrupted and that is not
// made again for fear of a duplicate.
const interruptedSend = "interrupted by a restart before the provider answered; not sent again to avoid a duplicate"

// sendParallel bounds the provider calls one batch makes at once. The channel's pacing
// spaces them further.
const sendParallel = 32

// oneOff is a send in progress.
type oneOff struct {
	idx     int // in the caller's slice
	sender  channel.Sender
	local   bool
	to      channel.Recipient
	content msg.Content
	key     string
	user    store.UserUpsert
	userID  int64 // the stored user, when the caller gave it (no upsert)
	m       store.Message
	// Set by the pending commit.
	id  int64
	dup *store.Send
	// Set by the provider call.
	sent      channel.Sent
	err       *channel.Error
	abandoned bool // a simulated crash stopped it
	fenced    bool // another instance took it over before the outcome was stored
	// bulk sends commit through the group commit's bulk lane (SendBulk).
	bulk bool
	// notStored is why the pending commit of this send failed (SendBulk only).
	notStored error
}

// Send sends one message outside any flow; see SendBatch.
func (e *Engine) Send(ctx context.Context, s OneOff) (SendResult, error) {
	res, err := e.SendBatch(ctx, []OneOff{s})
	if err != nil {
		return SendResult{}, err
	}
	return res[0], nil
}

// SendBatch sends one-off messages, durably and at most once per key, and returns a
// result for each, in order. A send the channel refuses (or cannot make: an unknown
// channel, settings missing) is a failed result, not an error; an error means the
// database could not store the batch, and then none of it was sent. Messages to the same
// recipient are sent one after another in the order given; the others in parallel.
//
// The caller's ctx bounds the pending commit only: once a message is stored as pending,
// it is sent and its outcome stored even if ctx ends, so the record never lags the
// provider. Keep batches to a few hundred messages, so that one commit does not hold
// the database's writer long while triggers wait for it.
func (e *Engine) SendBatch(ctx context.Context, sends []OneOff) ([]SendResult, error) {
	return e.sendBatch(ctx, sends, false)
}

// bulkChunk is how many sends one bulk operation of the group commit stores.
const bulkChunk = 32

// SendBulk is SendBatch for bulk work (a broadcast's fan-out), which must not hold up
// runs and triggers: its commits go through the group commit's bulk lane in small
// chunks, as background work (store.Batcher.DoBackground), which interactive operations
// overtake. A chunk that cannot be stored does not fail the others: its sends get
// failed, retryable results (their keys stay free).
func (e *Engine) SendBulk(ctx context.Context, sends []OneOff) ([]SendResult, error) {
	return e.sendBatch(ctx, sends, true)
}

func (e *Engine) sendBatch(ctx context.Context, sends []OneOff, bulk bool) ([]SendResult, error) {
	if !e.beginSend() {
		return nil, ErrStopping
	}
	defer e.sending.Done()
	out := make([]SendResult, len(sends))
	items, err := e.prepareSends(ctx, sends, out)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return out, nil
	}
	if bulk {
		e.storeBulk(ctx, items)
	} else {
		err = e.batch.Do(ctx, func(ctx context.Context, tx store.Tx) error { return e.storeAll(ctx, tx, items) })
		if errors.Is(err, store.ErrClosed) {
			return nil, ErrStopping
		}
		if err != nil {
			return nil, fmt.Errorf("store sends: %w", err)
		}
	}
	var calls []*oneOff
	for _, it := range items {
		if !it.local && it.dup == nil && it.notStored == nil {
			calls = append(calls, it)
		}
	}
	if err := e.deliver(calls); err != nil {
		return nil, err
	}
	for _, it := range items {
		out[it.idx] = it.result()
	}
	return out, nil
}

// storeAll is the pending commit of items: each one's user and message (see
// prepareStored), the messages inserted together, and any whose key was taken then
// sorted out one by one (a duplicate, or an expired key's reuse).
func (e *Engine) storeAll(ctx context.Context, tx store.Tx, items []*oneOff) error {
	rows := make([]store.NewSend, len(items))
	for i, it := range items {
		row, err := e.prepareStored(ctx, tx, it)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	ids, err := e.st.InsertSends(ctx, tx, rows)
	if err != nil {
		return err
	}
	expiredBefore := time.Now().Add(-IdempotencyWindow).UnixMilli()
	for i, it := range items {
		if ids[i] != 0 {
			it.id = ids[i]
			continue
		}
		rec, inserted, err := e.st.InsertSend(ctx, tx, rows[i].Message, it.key, rows[i].Owner, expiredBefore)
		if err != nil {
			return err
		}
		if !inserted {
			it.dup = &rec
			continue
		}
		it.id = rec.ID
	}
	return nil
}

// storeBulk commits the pending sends in chunks through the bulk lane, all at once so
// that several chunks can share a transaction; the items of a chunk that failed are
// marked with why.
func (e *Engine) storeBulk(ctx context.Context, items []*oneOff) {
	var wg sync.WaitGroup
	for start := 0; start < len(items); start += bulkChunk {
		chunk := items[start:min(start+bulkChunk, len(items))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.batch.DoBackground(ctx, func(ctx context.Context, tx store.Tx) error { return e.storeAll(ctx, tx, chunk) })
			for _, it := range chunk {
				it.bulk, it.notStored = true, err
			}
		}()
	}
	wg.Wait()
}

// Bulk runs fn through the group commit's bulk lane (see store.Batcher.DoBulk), for
// other bulk writes that must not hold up runs and triggers and that a caller waits for
// (a broadcast's recipients as it is accepted). Keep fn to a few rows.
func (e *Engine) Bulk(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	return e.bulk(ctx, e.batch.DoBulk, fn)
}

// Background is Bulk for work no one waits for (a broadcast's fan-out marking its
// recipients; see store.Batcher.DoBackground).
func (e *Engine) Background(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	return e.bulk(ctx, e.batch.DoBackground, fn)
}

func (e *Engine) bulk(ctx context.Context, do func(context.Context, func(context.Context, store.Tx) error) error, fn func(ctx context.Context, tx store.Tx) error) error {
	if !e.beginSend() {
		return ErrStopping
	}
	defer e.sending.Done()
	err := do(ctx, fn)
	if errors.Is(err, store.ErrClosed) {
		return ErrStopping
	}
	return err
}

// beginSend counts a send in progress unless the engine is stopping; Stop waits for
// those counted.
func (e *Engine) beginSend() bool {
	e.workMu.RLock()
	defer e.workMu.RUnlock()
	if e.stopping || e.batch == nil {
		return false
	}
	e.sending.Add(1)
	return true
}

type senderKey struct {
	botID   int64
	channel string
}

type resolved struct {
	sender channel.Sender
	err    *channel.Error
}

// prepareSends resolves each send's channel and builds what the commits store. A send
// whose channel cannot be used gets its failed result in out at once.
func (e *Engine) prepareSends(ctx context.Context, sends []OneOff, out []SendResult) ([]*oneOff, error) {
	senders := map[senderKey]resolved{}
	items := make([]*oneOff, 0, len(sends))
	now := time.Now().UnixMilli()
	for i, s := range sends {
		k := senderKey{s.BotID, s.Channel}
		rs, ok := senders[k]
		if !ok {
			snd, err := e.cfg.Channels.Sender(ctx, s.BotID, s.Channel)
			var ce *channel.Error
			switch {
			case errors.As(err, &ce):
				rs = resolved{err: ce}
			case err != nil:
				return nil, fmt.Errorf("channel %s: %w", s.Channel, err)
			default:
				rs = resolved{sender: snd}
			}
			senders[k] = rs
		}
		if rs.err == nil && s.Digits == "" {
			rs.err = &channel.Error{Kind: channel.KindInvalid, Message: "no recipient: the channel user id is empty"}
		}
		if rs.err != nil {
			out[i] = SendResult{Status: store.MsgFailed, Error: rs.err.Error(), Failure: rs.err}
			continue
		}
		payload, err := json.Marshal(s.Content)
		if err != nil {
			return nil, fmt.Errorf("encode message: %w", err)
		}
		key := s.Key
		if key == "" {
			key = "send:" + uuid.NewString()
		}
		to := channel.Recipient{Phone: s.Phone, ChannelUserID: s.Digits, LastInbound: s.LastInbound}
		if s.Phone == "" {
			to.Phone = "+" + s.Digits
		}
		it := &oneOff{idx: i, sender: rs.sender, local: !rs.sender.External(), to: to, content: s.Content, key: key,
			userID: s.UserID,
			m: store.Message{BotID: s.BotID, Channel: s.Channel, Sender: store.SenderBot, Type: s.Content.Kind(),
				Text: s.Content.Summary(), Payload: payload, CreatedAt: now}}
		if s.UserID == 0 {
			// The user is created or updated with the send (prepareStored). A broadcast's
			// sends name stored users: building this for each was about half of what this
			// function allocated in a fan-out (heap profile of bench/broadcast).
			attrs := make(map[string]string, len(s.Attrs)+2)
			maps.Copy(attrs, s.Attrs)
			attrs["user.channel"] = s.Channel
			if s.Phone != "" {
				attrs["user.phone_no"] = s.Phone
			}
			it.user = store.UserUpsert{BotID: s.BotID, ChannelUserID: s.Digits, Channel: s.Channel, Attrs: attrs,
				Defaults: map[string]string{"user.user_name": s.Digits}}
		}
		items = append(items, it)
	}
	return items, nil
}

// prepareStored is one send's part of the pending commit before its message is
// inserted: the user (unless the caller gave it), and the message to store, pending and
// owned by this instance, or, for a local channel, already sent (a local send has no
// effect outside Parley, so it may run inside the transaction, and again if the batcher
// runs the transaction again).
func (e *Engine) prepareStored(ctx context.Context, tx store.Tx, it *oneOff) (store.NewSend, error) {
	it.id, it.dup, it.sent, it.err = 0, nil, channel.Sent{}, nil
	uid := it.userID
	if uid == 0 {
		var last *time.Time
		var err error
		if uid, last, err = e.st.UpsertUserForSend(ctx, tx, it.user); err != nil {
			return store.NewSend{}, err
		}
		it.to.LastInbound = last
	}
	m := it.m
	m.UserID = uid
	owner := ""
	if it.local {
		sent, err := it.sender.Send(ctx, it.to, it.content, it.key)
		if err != nil {
			it.err = channel.AsError(err)
			m.Status, m.Error = store.MsgFailed, it.err.Error()
		} else {
			it.sent = sent
			m.Status = sentStatus(sent)
			if sent.ProviderMessageID != "" {
				m.ProviderID = &sent.ProviderMessageID
			}
		}
	} else {
		m.Status, owner = store.MsgPending, e.cfg.InstanceID
	}
	return store.NewSend{Message: m, Key: it.key, Owner: owner}, nil
}

func sentStatus(s channel.Sent) string {
	if s.Status == "" {
		return store.MsgSent
	}
	return s.Status
}

// deliver makes the provider calls of sends stored as pending and stores each outcome
// as soon as its call returns, through the group commit (so concurrent outcomes share
// transactions): a send answered before a crash is recorded as sent even while others of
// its batch are still waiting for the provider. Calls to one recipient go one after
// another, in order.
func (e *Engine) deliver(calls []*oneOff) error {
	if len(calls) == 0 {
		return nil
	}
	// Detached from the caller: a message stored as pending is sent and settled even if
	// the caller goes away. The adapters bound each call themselves.
	ctx := context.Background()
	type recipientKey struct {
		botID int64
		user  string
	}
	var order []recipientKey
	byRecipient := map[recipientKey][]*oneOff{}
	for _, it := range calls {
		k := recipientKey{it.m.BotID, it.to.ChannelUserID}
		if _, ok := byRecipient[k]; !ok {
			order = append(order, k)
		}
		byRecipient[k] = append(byRecipient[k], it)
	}
	sem := make(chan struct{}, sendParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, k := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(its []*oneOff) {
			defer wg.Done()
			defer func() { <-sem }()
			for _, it := range its {
				e.call(ctx, it)
				if it.abandoned || e.isCrashed() {
					return // a crashed engine writes nothing more
				}
				if err := e.settleOutcome(ctx, it); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}(byRecipient[k])
	}
	wg.Wait()
	if e.isCrashed() {
		return errAborted
	}
	return errors.Join(errs...)
}

// settleOutcome stores one send's outcome. When that fails, the providers' answer is not
// stored: the send is given up, and a sweep settles it as an interrupted send (never
// sending WhatsApp twice).
func (e *Engine) settleOutcome(ctx context.Context, it *oneOff) error {
	do := e.batch.Do
	if it.bulk {
		do = e.batch.DoBackground
	}
	err := do(ctx, func(ctx context.Context, tx store.Tx) error { return e.settleSend(ctx, tx, it) })
	if err != nil {
		if rerr := e.st.ReleaseSends(ctx, e.cfg.InstanceID, it.id); rerr != nil {
			e.log.Error("release sends", "err", rerr)
		}
		return fmt.Errorf("store send outcome: %w", err)
	}
	if it.fenced {
		e.log.Warn("send taken over by another instance before its outcome was stored", "message", it.id)
	}
	return nil
}

// call makes one provider call (unless a simulated crash comes first or after).
func (e *Engine) call(ctx context.Context, it *oneOff) {
	if e.sendCrash("before", it.key) {
		it.abandoned = true
		return
	}
	sent, err := it.sender.Send(ctx, it.to, it.content, it.key)
	if err != nil {
		it.err = channel.AsError(err)
	} else {
		it.sent = sent
	}
	if e.sendCrash("after", it.key) {
		it.abandoned = true
	}
}

// settleSend is one send's part of the outcome commit.
func (e *Engine) settleSend(ctx context.Context, tx store.Tx, it *oneOff) error {
	me := e.cfg.InstanceID
	var ok bool
	var err error
	switch {
	case it.err != nil && it.err.Retryable:
		ok, err = e.st.DeleteSend(ctx, tx, it.id, me)
	case it.err != nil:
		ok, err = e.st.SettleSend(ctx, tx, it.id, me, store.MsgFailed, nil, it.err.Error())
	default:
		var pid *string
		if it.sent.ProviderMessageID != "" {
			pid = &it.sent.ProviderMessageID
		}
		ok, err = e.st.SettleSend(ctx, tx, it.id, me, sentStatus(it.sent), pid, "")
	}
	it.fenced = !ok
	return err
}

func (it *oneOff) result() SendResult {
	if it.notStored != nil {
		ce := &channel.Error{Kind: channel.KindUnavailable, Retryable: true, Message: "not stored: " + it.notStored.Error()}
		return SendResult{Status: store.MsgFailed, Error: ce.Error(), Failure: ce}
	}
	if d := it.dup; d != nil {
		return storedResult(*d)
	}
	r := SendResult{MessageID: it.id, ProviderMessageID: it.sent.ProviderMessageID, Status: sentStatus(it.sent)}
	if it.err != nil {
		r = SendResult{MessageID: it.id, Status: store.MsgFailed, Error: it.err.Error(), Failure: it.err}
		if it.err.Retryable && !it.local {
			r.MessageID = 0 // deleted: nothing was sent, and the key is free
		}
	}
	return r
}

func storedResult(s store.Send) SendResult {
	r := SendResult{MessageID: s.ID, Status: s.Status, Error: s.Error, Duplicate: true}
	if s.ProviderID != nil {
		r.ProviderMessageID = *s.ProviderID
	}
	return r
}

// AwaitSend waits up to timeout for a bot's one-off message to leave pending (a
// duplicate's first send still in flight) and returns it as it then is.
func (e *Engine) AwaitSend(ctx context.Context, botID, messageID int64, timeout time.Duration) (SendResult, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := e.st.SendByID(ctx, nil, messageID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && s.BotID != botID) {
			return SendResult{}, fmt.Errorf("%w: #%d", ErrSendNotFound, messageID)
		}
		if err != nil {
			return SendResult{}, err
		}
		if s.Status != store.MsgPending || !time.Now().Before(deadline) {
			return storedResult(s), nil
		}
		select {
		case <-ctx.Done():
			return SendResult{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sweepSends claims pending one-off sends whose owner died and settles them in the
// background, as the sweeper resumes an orphaned run.
func (e *Engine) sweepSends(ctx context.Context, now time.Time) (int, error) {
	ids, err := e.st.ClaimOrphanSends(ctx, e.cfg.InstanceID, now.UnixMilli(), now.Add(-e.cfg.Liveness).UnixMilli(), 256)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	e.sending.Add(1) // Stop cancels the sweeper before it waits for sends
	go func() {
		defer e.sending.Done()
		e.recoverSends(ids)
	}()
	return len(ids), nil
}

// recoverSends settles claimed sends whose first owner died while they were pending:
// sent again where the provider drops duplicates, recorded as interrupted elsewhere.
func (e *Engine) recoverSends(ids []int64) {
	ctx := context.Background()
	me := e.cfg.InstanceID
	var resend []*oneOff
	failed := map[int64]string{}
	for _, id := range ids {
		it, err := e.loadSend(ctx, id)
		var ce *channel.Error
		switch {
		case err == nil && dropsDuplicates(it.sender):
			resend = append(resend, it)
		case err == nil:
			failed[id] = interruptedSend
		case errors.As(err, &ce):
			failed[id] = interruptedSend + "; the channel cannot send it again: " + ce.Error()
		case errors.Is(err, errUnrunnable):
			failed[id] = "the stored message cannot be sent: " + err.Error()
		default:
			e.log.Error("load claimed send", "message", id, "err", err)
			if rerr := e.st.ReleaseSends(ctx, me, id); rerr != nil {
				e.log.Error("release send", "message", id, "err", rerr)
			}
		}
	}
	if len(failed) > 0 {
		err := e.batch.Do(ctx, func(ctx context.Context, tx store.Tx) error {
			for id, reason := range failed {
				if _, err := e.st.SettleSend(ctx, tx, id, me, store.MsgFailed, nil, reason); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			e.log.Error("settle interrupted sends", "err", err)
			ids := make([]int64, 0, len(failed))
			for id := range failed {
				ids = append(ids, id)
			}
			_ = e.st.ReleaseSends(ctx, me, ids...)
		}
	}
	if err := e.deliver(resend); err != nil && !errors.Is(err, errAborted) {
		e.log.Error("send again after a restart", "err", err)
	}
}

// loadSend reads a claimed send back into a send in progress. A *channel.Error means
// its channel cannot be used now; errUnrunnable that the stored message cannot be read.
func (e *Engine) loadSend(ctx context.Context, id int64) (*oneOff, error) {
	s, err := e.st.SendByID(ctx, nil, id)
	if err != nil {
		return nil, err
	}
	var c msg.Content
	if err := json.Unmarshal(s.Payload, &c); err != nil {
		return nil, fmt.Errorf("%w: message #%d content: %v", errUnrunnable, id, err)
	}
	u, err := e.st.UserByID(ctx, nil, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", errUnrunnable, err)
	}
	if err != nil {
		return nil, err
	}
	snd, err := e.cfg.Channels.Sender(ctx, s.BotID, s.Channel)
	if err != nil {
		return nil, err
	}
	to := channel.Recipient{ChannelUserID: u.ChannelUserID, Phone: u.Attrs["user.phone_no"], LastInbound: u.LastInboundAt}
	if to.Phone == "" {
		to.Phone = "+" + u.ChannelUserID
	}
	return &oneOff{id: id, sender: snd, local: !snd.External(), to: to, content: c, key: s.Key, m: s.Message}, nil
}

// sendCrash lets tests stop the engine around a provider call as a crash would.
func (e *Engine) sendCrash(stage, key string) bool {
	if e.isCrashed() {
		return true
	}
	if e.cfg.sendHook == nil {
		return false
	}
	if err := e.cfg.sendHook(stage, key); err != nil {
		e.crashOnce()
		return true
	}
	return false
}

func (e *Engine) isCrashed() bool {
	select {
	case <-e.crashed:
		return true
	default:
		return false
	}
}
