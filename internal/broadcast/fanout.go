package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
)

// Reasons a recipient fails without a send.
const (
	reasonUnknownUser  = "unknown user: the bot has no user with this channel user id"
	reasonInterrupted  = "interrupted by a restart before the provider answered; not sent again to avoid a duplicate"
	maxSendAttempts    = 6
	firstRetryInterval = 2 * time.Second
)

// fanOut is one broadcast being published by this instance.
type fanOut struct {
	s        *Service
	b        store.Broadcast
	contents []msg.Content
	senders  map[string]senderOrErr
	runID    string
}

type senderOrErr struct {
	sender channel.Sender
	err    error
}

// publish fans a claimed broadcast out until every recipient is done, the broadcast is
// cancelled or taken over, or ctx ends (shutdown: another instance, or this one after a
// restart, goes on from the last batch).
func (s *Service) publish(ctx context.Context, id int64) error {
	b, err := s.st.BroadcastForFanOut(ctx, id)
	if err != nil {
		return err
	}
	cs, err := storedContents(b)
	if err != nil {
		return err
	}
	f := &fanOut{s: s, b: b, contents: cs, senders: map[string]senderOrErr{}, runID: store.BroadcastRunID(b.ID)}
	// Sends that were in flight when a previous owner stopped come first.
	if err := f.recover(ctx); err != nil {
		return err
	}
	after := -1
	for {
		if ctx.Err() != nil {
			return nil
		}
		if owned, err := s.st.BroadcastOwned(ctx, b.ID, s.cfg.InstanceID); err != nil || !owned {
			return err // cancelled, or taken over by another instance
		}
		batch, err := s.st.NextRecipients(ctx, b.BotID, b.ID, store.RecipientQueued, after, s.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		after = batch[len(batch)-1].Seq
		if err := f.batch(ctx, batch); err != nil {
			return err
		}
	}
	if _, err := s.st.FinishBroadcast(ctx, b.ID, s.cfg.InstanceID); err != nil {
		return err
	}
	s.log.Info("broadcast published", "broadcast", b.ID, "recipients", b.Recipients)
	return nil
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

func (f *fanOut) recipient(r store.FanOutRecipient) channel.Recipient {
	rc := channel.Recipient{ChannelUserID: r.ChannelUserID, LastInbound: r.LastInbound, Phone: r.Phone}
	if rc.Phone == "" {
		rc.Phone = "+" + r.ChannelUserID
	}
	return rc
}

// step is the messages-table step of recipient seq's message i.
func step(seq, i int) int { return seq*store.BroadcastStepsPerRecipient + i }

func (f *fanOut) key(seq, i int) string {
	return f.runID + ":" + strconv.Itoa(seq) + ":" + strconv.Itoa(i)
}

// batch sends one batch of queued recipients: the local ones together in one
// transaction, the provider ones each with its own pending record, several at a time.
func (f *fanOut) batch(ctx context.Context, batch []store.FanOutRecipient) error {
	failed := map[string][]int{} // reason → seqs
	var local []store.FanOutRecipient
	var external []store.FanOutRecipient
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
		case sender.External():
			external = append(external, r)
		default:
			local = append(local, r)
		}
	}
	if err := f.sendLocal(ctx, local, failed); err != nil {
		return err
	}
	return f.sendExternal(ctx, external)
}

// sendLocal stores the messages of local recipients and every outcome of the batch
// that needs no provider, in one transaction. Only recipients still queued when it
// commits get their messages, so a cancellation that came first wins.
func (f *fanOut) sendLocal(ctx context.Context, rs []store.FanOutRecipient, failed map[string][]int) error {
	now := f.s.cfg.Now().UnixMilli()
	type sentMsgs struct {
		seq  int
		msgs []store.Message
	}
	var sent []sentMsgs
	var failedLocal = map[string][]int{}
	for _, r := range rs {
		sender, _ := f.sender(ctx, r.UserChannel)
		ms := make([]store.Message, 0, len(f.contents))
		var sendErr error
		for i, c := range f.contents {
			out, err := sender.Send(ctx, f.recipient(r), c, f.key(r.Seq, i))
			if err != nil {
				sendErr = err
				break
			}
			m, err := f.message(r, i, c, now)
			if err != nil {
				return err
			}
			m.Status = out.Status
			if m.Status == "" {
				m.Status = store.MsgSent
			}
			ms = append(ms, m)
		}
		if sendErr != nil {
			why := "message not sent: " + sendErr.Error()
			failedLocal[why] = append(failedLocal[why], r.Seq)
			continue
		}
		sent = append(sent, sentMsgs{r.Seq, ms})
	}
	return f.s.st.InTx(ctx, func(tx store.Tx) error {
		seqs := make([]int, len(sent))
		for i, x := range sent {
			seqs[i] = x.seq
		}
		won, err := f.s.st.MarkRecipients(ctx, tx, f.b.ID, seqs, store.RecipientQueued, store.RecipientSent, len(f.contents), "")
		if err != nil {
			return err
		}
		var msgs []store.Message
		for _, x := range sent {
			if won[x.seq] {
				msgs = append(msgs, x.msgs...)
			}
		}
		if err := f.s.st.AddMessages(ctx, tx, msgs); err != nil {
			return err
		}
		for _, m := range []map[string][]int{failed, failedLocal} {
			for why, seqs := range m {
				if _, err := f.s.st.MarkRecipients(ctx, tx, f.b.ID, seqs, store.RecipientQueued, store.RecipientFailed, 0, why); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// message is recipient r's message i, stored under the broadcast's run id.
func (f *fanOut) message(r store.FanOutRecipient, i int, c msg.Content, now int64) (store.Message, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return store.Message{}, fmt.Errorf("encode message: %w", err)
	}
	st := step(r.Seq, i)
	return store.Message{BotID: f.b.BotID, UserID: r.UserID, RunID: &f.runID, Step: &st, Channel: r.UserChannel,
		Sender: store.SenderBot, Type: c.Kind(), Text: c.Summary(), Payload: payload, CreatedAt: now}, nil
}

// sendExternal sends to provider recipients, Parallel at a time.
func (f *fanOut) sendExternal(ctx context.Context, rs []store.FanOutRecipient) error {
	if len(rs) == 0 {
		return nil
	}
	work := make(chan store.FanOutRecipient)
	errs := make(chan error, len(rs))
	var wg sync.WaitGroup
	for range min(f.s.cfg.Parallel, len(rs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := f.sendOne(ctx, r, false); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, r := range rs {
		work <- r
	}
	close(work)
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// sendOne sends recipient r's remaining messages through its provider. Each message is
// committed as pending (and the recipient as sending) before the call, and its outcome
// after. resumed is set for a recipient found sending after a previous owner stopped.
func (f *fanOut) sendOne(ctx context.Context, r store.FanOutRecipient, resumed bool) error {
	sender, err := f.sender(ctx, r.UserChannel)
	if err != nil {
		return err
	}
	dedup := false
	if d, ok := sender.(channel.Deduplicator); ok {
		dedup = d.DropsDuplicates()
	}
	for i := r.Step; i < len(f.contents); i++ {
		c := f.contents[i]
		if resumed && i == r.Step {
			// A previous owner stored this message as pending and may have sent it.
			if !dedup {
				return f.finishExternal(ctx, r, i, store.MsgFailed, nil, reasonInterrupted, store.RecipientFailed)
			}
		} else {
			m, err := f.message(r, i, c, f.s.cfg.Now().UnixMilli())
			if err != nil {
				return err
			}
			m.Status = store.MsgPending
			ok, err := f.s.st.StartRecipientSend(ctx, f.b.ID, r.Seq, i, m)
			if err != nil {
				return err
			}
			if !ok {
				return nil // cancelled meanwhile
			}
		}
		sent, err := f.sendWithRetries(ctx, sender, r, c, f.key(r.Seq, i))
		if err != nil {
			if ctx.Err() != nil {
				return nil // shutting down: the next owner resolves the pending send
			}
			return f.finishExternal(ctx, r, i, store.MsgFailed, nil, "message not sent: "+err.Error(), store.RecipientFailed)
		}
		status := sent.Status
		if status == "" {
			status = store.MsgSent
		}
		// Between two messages the recipient is queued again at its next step, so that
		// only a message actually in flight is ever "sending".
		next := store.RecipientQueued
		if i == len(f.contents)-1 {
			next = store.RecipientSent
		}
		if err := f.finishExternal(ctx, r, i, status, &sent.ProviderMessageID, "", next); err != nil {
			return err
		}
		resumed = false
	}
	return nil
}

// sendWithRetries retries a passing failure (rate limited, provider unavailable) with
// backoff, as the engine does for runs.
func (f *fanOut) sendWithRetries(ctx context.Context, sender channel.Sender, r store.FanOutRecipient, c msg.Content, key string) (channel.Sent, error) {
	wait := firstRetryInterval
	for attempt := 1; ; attempt++ {
		sent, err := sender.Send(ctx, f.recipient(r), c, key)
		if err == nil {
			return sent, nil
		}
		ce := channel.AsError(err)
		if !ce.Retryable || attempt >= maxSendAttempts || ctx.Err() != nil {
			return channel.Sent{}, ce
		}
		d := wait
		if ce.RetryAfter > 0 {
			d = min(ce.RetryAfter, 10*time.Minute)
		}
		select {
		case <-ctx.Done():
			return channel.Sent{}, ctx.Err()
		case <-time.After(d):
		}
		wait = min(2*wait, time.Minute)
	}
}

// finishExternal records message i's outcome and moves the recipient on.
func (f *fanOut) finishExternal(ctx context.Context, r store.FanOutRecipient, i int, msgStatus string, providerID *string, errText, recipientStatus string) error {
	return f.s.st.InTx(ctx, func(tx store.Tx) error {
		if err := f.s.st.SetStepMessageOutcome(ctx, tx, f.runID, step(r.Seq, i), msgStatus, providerID, errText); err != nil {
			return err
		}
		stepDone := i + 1
		if recipientStatus == store.RecipientFailed {
			stepDone = i
		}
		_, err := f.s.st.MarkRecipients(ctx, tx, f.b.ID, []int{r.Seq}, store.RecipientSending, recipientStatus, stepDone, errText)
		return err
	})
}

// recover resolves the sends a previous owner left in flight: a recipient is "sending"
// only while its message at its step is stored as pending.
func (f *fanOut) recover(ctx context.Context) error {
	after := -1
	for {
		rs, err := f.s.st.NextRecipients(ctx, f.b.BotID, f.b.ID, store.RecipientSending, after, f.s.cfg.BatchSize)
		if err != nil || len(rs) == 0 {
			return err
		}
		after = rs[len(rs)-1].Seq
		for _, r := range rs {
			if err := f.sendOne(ctx, r, true); err != nil {
				return err
			}
		}
	}
}
