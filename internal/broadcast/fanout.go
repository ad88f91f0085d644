package broadcast

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
)

// Reasons a recipient fails without a send, and the retries of passing refusals.
const (
	reasonUnknownUser  = "unknown user: the bot has no user with this channel user id"
	maxSendAttempts    = 6
	firstRetryInterval = 2 * time.Second
)

// analyzeFrom is the size from which a broadcast's fan-out first refreshes the
// database's statistics of the recipients (store.AnalyzeRecipients).
const analyzeFrom = 1000

// fanOut is one broadcast being published by this instance.
type fanOut struct {
	s        *Service
	b        store.Broadcast
	contents []msg.Content
	senders  map[string]senderOrErr
}

type senderOrErr struct {
	sender channel.Sender
	err    error
}

// publish fans a claimed broadcast out until every recipient is done, the broadcast is
// cancelled or taken over, or ctx ends (shutdown: another instance, or this one after a
// restart, goes on from where it stopped).
//
// Recipients are handed to the engine's one-off sends in batches: each batch is marked
// sending, sent (the engine commits every message as pending before a provider call,
// under a key of its own), then marked sent or failed. A batch cut short by a crash is
// sent again by the next owner with the same keys, which the engine recognises: nothing
// goes out twice, and nothing is lost.
func (s *Service) publish(ctx context.Context, id int64) error {
	b, err := s.st.BroadcastForFanOut(ctx, id)
	if err != nil {
		return err
	}
	cs, err := storedContents(b)
	if err != nil {
		return err
	}
	if b.Recipients >= analyzeFrom {
		if err := s.st.AnalyzeRecipients(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("broadcasts: refresh the recipients' statistics", "broadcast", b.ID, "err", err)
		}
	}
	f := &fanOut{s: s, b: b, contents: cs, senders: map[string]senderOrErr{}}
	// Batches a previous owner left half-way come first.
	for _, status := range []string{store.RecipientSending, store.RecipientQueued} {
		after := -1
		for {
			if ctx.Err() != nil {
				return nil
			}
			if owned, err := s.st.BroadcastOwned(ctx, b.ID, s.cfg.InstanceID); err != nil || !owned {
				return err // cancelled, or taken over by another instance
			}
			batch, err := s.st.NextRecipients(ctx, b.BotID, b.ID, status, after, f.batchSize(ctx))
			if err != nil {
				return err
			}
			if len(batch) == 0 {
				break
			}
			after = batch[len(batch)-1].Seq
			if err := f.batch(ctx, batch, status == store.RecipientSending); err != nil {
				return err
			}
		}
	}
	if _, err := s.st.FinishBroadcast(ctx, b.ID, s.cfg.InstanceID); err != nil {
		return err
	}
	s.log.Info("broadcast published", "broadcast", b.ID, "recipients", b.Recipients)
	return nil
}

// batchSize is BatchSize for local channels; through a provider, a batch is as many
// messages as the engine sends at once, so that a cancellation stops the broadcast
// within one such batch.
func (f *fanOut) batchSize(ctx context.Context) int {
	for _, ch := range []string{channel.WhatsApp, channel.RCS} {
		if sender, err := f.sender(ctx, ch); err == nil && sender.External() {
			return max(1, f.s.cfg.ExternalBatch/len(f.contents))
		}
	}
	return f.s.cfg.BatchSize
}

// sender returns (and keeps) the sender of one of the bot's channels.
func (f *fanOut) sender(ctx context.Context, ch string) (channel.Sender, error) {
	so, ok := f.senders[ch]
	if !ok {
		so.sender, so.err = f.s.cfg.Channels.Sender(ctx, f.b.BotID, ch)
		f.senders[ch] = so
	}
	return so.sender, so.err
}

// audienceAllows reports whether a user on channel ch is in the audience: the channel is
// named, or "sandbox" is and the bot serves ch with a local sender.
func (f *fanOut) audienceAllows(ch string, sender channel.Sender) bool {
	for _, c := range f.b.Channels {
		if c == ch || (c == ChannelSandbox && sender != nil && !sender.External()) {
			return true
		}
	}
	return false
}

// batch sends to one batch of recipients: queued ones (resumed=false) or ones a previous
// owner left sending.
func (f *fanOut) batch(ctx context.Context, batch []store.FanOutRecipient, resumed bool) error {
	failed := map[string][]int{} // reason → seqs
	var ready []store.FanOutRecipient
	for _, r := range batch {
		if r.UserID == 0 {
			failed[reasonUnknownUser] = append(failed[reasonUnknownUser], r.Seq)
			continue
		}
		sender, err := f.sender(ctx, r.UserChannel)
		switch {
		case !f.audienceAllows(r.UserChannel, sender):
			why := fmt.Sprintf("not in the audience: the user is on %s, the broadcast is for %v", r.UserChannel, f.b.Channels)
			failed[why] = append(failed[why], r.Seq)
		case err != nil:
			why := fmt.Sprintf("channel %s: %v", r.UserChannel, err)
			failed[why] = append(failed[why], r.Seq)
		default:
			ready = append(ready, r)
		}
	}
	from := store.RecipientQueued
	if resumed {
		from = store.RecipientSending
	}
	if err := f.mark(ctx, failed, from); err != nil {
		return err
	}
	if !resumed {
		// Only recipients still queued now are sent to: a cancellation that came first
		// wins.
		seqs := make([]int, len(ready))
		for i, r := range ready {
			seqs[i] = r.Seq
		}
		won, err := f.move(ctx, seqs, store.RecipientQueued, store.RecipientSending, "")
		if err != nil {
			return err
		}
		ready = keep(ready, won)
	}
	if len(ready) == 0 {
		return nil
	}
	outcome, err := f.send(ctx, ready)
	if err != nil {
		return err
	}
	return f.mark(ctx, outcome, store.RecipientSending)
}

func keep(rs []store.FanOutRecipient, won map[int]bool) []store.FanOutRecipient {
	out := rs[:0]
	for _, r := range rs {
		if won[r.Seq] {
			out = append(out, r)
		}
	}
	return out
}

// mark records outcomes: failure reasons (reasonSent for success) → recipients.
func (f *fanOut) mark(ctx context.Context, outcomes map[string][]int, from string) error {
	if len(outcomes) == 0 {
		return nil
	}
	for why, seqs := range outcomes {
		to := store.RecipientFailed
		if why == reasonSent {
			to, why = store.RecipientSent, ""
		}
		if _, err := f.move(ctx, seqs, from, to, why); err != nil {
			return err
		}
	}
	return nil
}

// markRows is how many recipients one bulk operation moves.
const markRows = 32

// move moves recipients (by seq) from one status to another and returns those it
// moved. It writes through the bulk lane, like the sends, a few recipients to an
// operation: the fan-out never holds up runs and triggers for long.
func (f *fanOut) move(ctx context.Context, seqs []int, from, to, why string) (map[int]bool, error) {
	chunks := make([]map[int]bool, (len(seqs)+markRows-1)/markRows) // what each operation moved
	ops := make([]func(ctx context.Context, tx store.Tx) error, len(chunks))
	for i := range chunks {
		chunk := seqs[i*markRows : min((i+1)*markRows, len(seqs))]
		ops[i] = func(ctx context.Context, tx store.Tx) (err error) {
			chunks[i], err = f.s.st.MarkRecipients(ctx, tx, f.b, len(f.contents), chunk, from, to, why)
			return err
		}
	}
	// Not cut short by a shutdown: what was sent is recorded as sent.
	if err := f.s.inBulk(context.WithoutCancel(ctx), true, ops); err != nil {
		return nil, err
	}
	moved := make(map[int]bool, len(seqs))
	for _, won := range chunks {
		maps.Copy(moved, won)
	}
	return moved, nil
}

// reasonSent is the outcome key of recipients whose every message was sent.
const reasonSent = ""

// send hands the recipients' messages to the engine and says what came of each
// recipient: sent, or the first reason one of its messages failed. Passing refusals
// (rate limits, outages) are retried with backoff; their keys are free again.
func (f *fanOut) send(ctx context.Context, rs []store.FanOutRecipient) (map[string][]int, error) {
	type item struct {
		r int // index in rs
		o engine.OneOff
	}
	var todo []item
	for i, r := range rs {
		phone := r.Phone
		if phone == "" {
			phone = "+" + r.ChannelUserID
		}
		for j, c := range f.contents {
			todo = append(todo, item{i, engine.OneOff{BotID: f.b.BotID, Channel: r.UserChannel, Phone: phone, Digits: r.ChannelUserID,
				UserID: r.UserID, LastInbound: r.LastInbound, Content: c, Key: store.BroadcastSendKey(f.b.ID, j, r.Seq)}})
		}
	}
	why := make([]string, len(rs)) // "" while every message went out
	wait := firstRetryInterval
	for attempt := 1; len(todo) > 0; attempt++ {
		sends := make([]engine.OneOff, len(todo))
		for i, it := range todo {
			sends[i] = it.o
		}
		res, err := f.s.cfg.Sends.SendBulk(ctx, sends)
		if err != nil {
			return nil, err
		}
		var retry []item
		var hint time.Duration
		for i, x := range res {
			it := todo[i]
			switch {
			case x.Failure != nil && x.Failure.Retryable && attempt < maxSendAttempts:
				retry = append(retry, it)
				hint = max(hint, x.Failure.RetryAfter)
			case (x.Failure != nil || x.Status == store.MsgFailed) && why[it.r] == "":
				why[it.r] = "message not sent: " + x.Error
			}
		}
		todo = retry
		if len(todo) == 0 {
			break
		}
		d := wait
		if hint > 0 {
			d = min(hint, 10*time.Minute)
		}
		select {
		case <-ctx.Done():
			return nil, nil // shutting down: the next owner sends these again, by key
		case <-time.After(d):
		}
		wait = min(2*wait, time.Minute)
	}
	out := map[string][]int{}
	for i, r := range rs {
		out[why[i]] = append(out[why[i]], r.Seq)
	}
	return out, nil
}
