package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/rcs"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/channel/whatsapp"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/phone"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// channelRoutes registers the provider webhooks, the WhatsApp template API and the
// admin channel settings.
func (s *Server) channelRoutes() {
	if s.Channels == nil && s.Store != nil {
		// Wiring without a registry (older tests): settings still work through the
		// store, though the engine may be sending through other senders.
		s.Channels = registry.New(s.Store, registry.Options{})
	}
	m := s.mux
	m.HandleFunc("GET /webhooks/whatsapp/{botKey}", s.webhook(s.whatsappVerify))
	m.HandleFunc("POST /webhooks/whatsapp/{botKey}", s.webhook(s.whatsappWebhook))
	m.HandleFunc("POST /webhooks/rcs/{botKey}", s.webhook(s.rcsWebhook))
	m.HandleFunc("POST /whatsapp-api/v1.0/customer/{cid}/bot/{botKey}/template", s.platform(s.sendTemplate))

	const b = "/admin/v1/customers/{cid}/bots/{botKey}/channels"
	m.HandleFunc("GET "+b, s.admin(s.listChannels))
	m.HandleFunc("GET "+b+"/{channel}", s.admin(s.getChannel))
	m.HandleFunc("PUT "+b+"/{channel}", s.admin(s.putChannel))
}

// webhookHandler serves a provider webhook for the bot named in the path.
type webhookHandler func(w http.ResponseWriter, r *http.Request, bot store.Bot) *Error

// webhook resolves the bot of a webhook path: 404 for an unknown bot key.
func (s *Server) webhook(h webhookHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Channels == nil {
			writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "channels are not set up on this server"))
			return
		}
		bot, err := s.Store.BotByKey(r.Context(), r.PathValue("botKey"))
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, notFound("no bot with key %s", strconvQuote(r.PathValue("botKey"))))
			return
		}
		if err != nil {
			writeError(w, s.failed(r, "webhook: look up bot", err))
			return
		}
		if e := h(w, r, bot); e != nil {
			writeError(w, e)
		}
	}
}

// writeText answers a provider handshake with a plain-text body. nosniff keeps a
// browser from reading the echoed value as HTML.
func writeText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// whatsappVerify answers Meta's subscription handshake: 200 with hub.challenge as plain
// text when hub.mode is subscribe and hub.verify_token is the bot's, else 403.
func (s *Server) whatsappVerify(w http.ResponseWriter, r *http.Request, bot store.Bot) *Error {
	cfg, err := s.Channels.Get(r.Context(), bot.ID, channel.WhatsApp)
	if err != nil {
		return s.failed(r, "whatsapp webhook: settings", err)
	}
	if cfg.Adapter != channel.AdapterWhatsApp || cfg.VerifyToken == "" {
		return forbidden("this bot's whatsapp channel has no verify_token: set it with the WhatsApp adapter first")
	}
	challenge, ok := whatsapp.VerifyHandshake(r.URL.Query(), cfg.VerifyToken)
	if !ok {
		return forbidden("verification failed: hub.mode must be subscribe, hub.verify_token the bot's verify_token, and hub.challenge present")
	}
	writeText(w, challenge)
	return nil
}

// readBody reads a webhook body whole (the server's body limit applies), for signature
// checks over the exact bytes received.
func readBody(r *http.Request) ([]byte, *Error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return body, nil
}

// webhookResult summarises what one delivery did. Providers ignore the body; it helps
// whoever replays a delivery by hand.
type webhookResult struct {
	Messages   int      `json:"messages"`
	Duplicates int      `json:"duplicates"`
	Statuses   int      `json:"statuses"`
	Unmatched  int      `json:"unmatched_statuses"`
	Ignored    int      `json:"ignored"`
	Started    []string `json:"started_run_ids,omitempty"`
	Resumed    []string `json:"resumed_run_ids,omitempty"`
	failed     int
}

// target is the bot a part of a webhook delivery is for.
type target struct {
	botID, customerID int64
}

// whatsappWebhook receives Meta's notifications. The signature is checked over the raw
// body before anything is parsed or stored (401 otherwise). Every message and status is
// then handled on its own, so one that fails does not stop the others.
//
// Processing is synchronous: storing a message is one group-committed write of a few
// milliseconds, and answering 200 before it is durable would lose it in a crash.
// When any part fails to be stored (a database error, not bad content), the answer is
// 500 so that Meta redelivers the whole batch: what was stored the first time is
// recognised by its provider id and not stored or acted on twice. Content Parley cannot
// use (unsupported types, events for numbers no bot serves) is stored or skipped and
// answered 200, since redelivering it would not help.
func (s *Server) whatsappWebhook(w http.ResponseWriter, r *http.Request, bot store.Bot) *Error {
	body, cfg, e := s.webhookSetup(r, bot, channel.WhatsApp, "app_secret", whatsapp.SignatureHeader,
		func(c channel.Config) string { return c.AppSecret })
	if e != nil {
		return e
	}
	ctx := r.Context()
	sig := r.Header.Get(whatsapp.SignatureHeader)
	if !whatsapp.VerifySignature(body, sig, cfg.AppSecret) {
		return unauthorized(whatsapp.SignatureHeader + " is missing or does not match the body under the bot's app secret")
	}
	parts, err := splitWhatsApp(body)
	if err != nil {
		return invalid("%v", err)
	}

	res := &webhookResult{}
	routes := map[string]*target{}
	self := &target{bot.ID, bot.CustomerID}
	for _, b := range parts {
		t := self
		if len(b.PhoneNumberIDs) > 0 && b.PhoneNumberIDs[0] != cfg.PhoneNumberID {
			if t, err = s.routeWhatsApp(ctx, routes, b.PhoneNumberIDs[0], body, sig); err != nil {
				s.logFailure(ctx, "whatsapp webhook: route by phone number id", "phone_number_id", b.PhoneNumberIDs[0], "err", err)
				res.failed++
				continue
			}
		}
		if t == nil {
			res.Ignored += len(b.Messages) + len(b.Statuses)
			continue
		}
		for _, in := range b.Messages {
			s.inbound(ctx, *t, channel.WhatsApp, in, res)
		}
		for _, st := range b.Statuses {
			s.deliveryStatus(ctx, *t, st, res)
		}
	}
	return s.webhookDone(w, r, bot, res)
}

// splitWhatsApp parses a notification one change at a time, so every message and status
// keeps the business phone number it was for (a batch can mix numbers).
func splitWhatsApp(body []byte) ([]*whatsapp.Batch, error) {
	if _, err := whatsapp.ParseWebhook(body); err != nil {
		return nil, err // the whole delivery is malformed: say why
	}
	var n struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      string            `json:"id"`
			Changes []json.RawMessage `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("whatsapp webhook: %w", err)
	}
	type entry struct {
		ID      string            `json:"id"`
		Changes []json.RawMessage `json:"changes"`
	}
	var out []*whatsapp.Batch
	for _, en := range n.Entry {
		for _, ch := range en.Changes {
			one, err := json.Marshal(struct {
				Object string  `json:"object"`
				Entry  []entry `json:"entry"`
			}{n.Object, []entry{{en.ID, []json.RawMessage{ch}}}})
			if err != nil {
				return nil, fmt.Errorf("whatsapp webhook: %w", err)
			}
			b, err := whatsapp.ParseWebhook(one)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// routeWhatsApp finds the bot serving another phone number than the one whose webhook
// URL was called. Meta sends all of an app's numbers to one callback URL, so bots that
// share a Meta app receive each other's events; such an event is handed to the bot
// whose settings name the number, but only if the delivery's signature also verifies
// under that bot's app secret, so one bot's URL cannot be used to write into another.
// A nil target means no bot takes it.
func (s *Server) routeWhatsApp(ctx context.Context, cache map[string]*target, phoneNumberID string, body []byte, sig string) (*target, error) {
	if t, ok := cache[phoneNumberID]; ok {
		return t, nil
	}
	cands, err := s.Store.ChannelConfigsByPhoneNumberID(ctx, phoneNumberID)
	if err != nil {
		return nil, err
	}
	var t *target
	for _, c := range cands {
		cfg, err := s.Channels.Decode(c.Config)
		if err == nil && cfg.Adapter == channel.AdapterWhatsApp &&
			whatsapp.VerifySignature(body, sig, cfg.AppSecret) {
			t = &target{c.BotID, c.CustomerID}
			break
		}
	}
	if t == nil {
		s.log.Warn("whatsapp webhook: events for a phone number no bot serves were skipped", "phone_number_id", phoneNumberID)
	}
	cache[phoneNumberID] = t
	return t, nil
}

// inbound stores one message and acts on it through the engine. Messages the provider
// could not render are stored with their reason and do nothing else.
func (s *Server) inbound(ctx context.Context, t target, ch string, in channel.Inbound, res *webhookResult) {
	in = storable(in)
	cuid, e164 := in.From, ""
	if in.From != "" {
		if num, err := phone.Parse(in.From); err == nil {
			cuid, e164 = num.Digits, num.E164
		}
	} else {
		// A user who shows WhatsApp a username has no phone number: the provider's
		// business-scoped id is their identity.
		cuid = in.UserID
	}
	if cuid == "" {
		s.log.Warn("webhook: message without a sender skipped", "channel", ch, "provider_id", in.ProviderMessageID)
		res.Ignored++
		return
	}
	// The conversation is ordered by when Parley received each message (the engine's
	// clock, like the bot's own messages): provider timestamps have 1-second precision
	// and come from another clock, so a reply could sort before the message it answers.
	// The provider's timestamp stays in the stored raw message.
	if in.Unsupported != "" {
		dup, err := s.storeUnsupported(ctx, t, ch, cuid, e164, in)
		if err != nil {
			s.logFailure(ctx, "webhook: store unsupported message", "channel", ch, "provider_id", in.ProviderMessageID, "err", err)
			res.failed++
			return
		}
		res.Messages++
		if dup {
			res.Duplicates++
		}
		return
	}
	out, err := s.Engine.Inbound(ctx, engine.Inbound{BotID: t.botID, CustomerID: t.customerID, Channel: ch,
		ChannelUserID: cuid, Phone: e164, Name: in.Name, Type: in.Type, Text: in.Text, Payload: in.Payload,
		ProviderID: in.ProviderMessageID, Raw: in.Raw})
	if err != nil {
		s.logFailure(ctx, "webhook: inbound message", "channel", ch, "provider_id", in.ProviderMessageID, "err", err)
		res.failed++
		return
	}
	res.Messages++
	if out.Duplicate {
		res.Duplicates++
	}
	if out.Started != "" {
		res.Started = append(res.Started, out.Started)
	}
	if out.Resumed != "" {
		res.Resumed = append(res.Resumed, out.Resumed)
	}
}

// storable makes a delivered message fit to store, since a provider's redelivery would
// bring the same bytes again: NUL characters are dropped and invalid UTF-8 replaced in
// every text, the text is cut to sanitize.MaxText characters and the name to an
// attribute's limit (the raw message keeps all of it), and a message without a provider
// id gets one derived from its content, so a redelivery is still recognised and not
// stored twice.
func storable(in channel.Inbound) channel.Inbound {
	in.ProviderMessageID = sanitize.Clean(in.ProviderMessageID)
	in.From, in.UserID = sanitize.Clean(in.From), sanitize.Clean(in.UserID)
	in.Name = sanitize.Truncate(sanitize.Clean(in.Name), sanitize.MaxAttrValue)
	in.Type = sanitize.Clean(in.Type)
	in.Text = sanitize.Truncate(sanitize.Clean(in.Text), sanitize.MaxText)
	in.Payload = sanitize.Clean(in.Payload)
	in.Unsupported = sanitize.Clean(in.Unsupported)
	in.Raw = sanitize.CleanBytes(in.Raw)
	if strings.TrimSpace(in.ProviderMessageID) == "" {
		in.ProviderMessageID = derivedID(in)
	}
	return in
}

// derivedIDPrefix marks provider ids Parley made up for messages delivered without one.
const derivedIDPrefix = "parley-sha256:"

// derivedID names a message that came without a provider id by a hash of what the
// provider sent for it (its raw JSON, which holds the sender and the timestamp), so
// every redelivery of it gets the same id.
func derivedID(in channel.Inbound) string {
	h := sha256.New()
	if len(in.Raw) > 0 {
		h.Write(in.Raw)
	} else {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s\x00%s\x00%s", in.From, in.UserID, in.Timestamp.UnixNano(), in.Type, in.Text, in.Payload)
	}
	return derivedIDPrefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// storeUnsupported records a message Parley cannot act on, with the reason, in the
// user's history. It still counts as the user writing (WhatsApp's window opens on any
// message), but it neither starts a flow nor answers a waiting input.
func (s *Server) storeUnsupported(ctx context.Context, t target, ch, cuid, e164 string, in channel.Inbound) (bool, error) {
	attrs := map[string]string{"user.channel": ch}
	if e164 != "" {
		attrs["user.phone_no"] = e164
	}
	name := in.Name
	if name == "" {
		name = cuid
	}
	typ := in.Type
	if typ == "" {
		typ = "unsupported"
	}
	m := store.Message{BotID: t.botID, Channel: ch, Sender: store.SenderUser, Type: typ, Text: in.Text,
		Status: store.MsgReceived, Error: in.Unsupported}
	if len(in.Raw) > 0 && json.Valid(in.Raw) {
		m.Payload = in.Raw
	}
	if in.ProviderMessageID != "" {
		m.ProviderID = &in.ProviderMessageID
	}
	var inserted bool
	err := s.Store.InTx(ctx, func(tx store.Tx) error {
		u, err := s.Store.UpsertUser(ctx, tx, store.UserUpsert{BotID: t.botID, ChannelUserID: cuid, Channel: ch,
			Attrs: attrs, Defaults: map[string]string{"user.user_name": name}, Inbound: true})
		if err != nil {
			return err
		}
		m.UserID = u.ID
		_, inserted, err = s.Store.InsertMessage(ctx, tx, m)
		return err
	})
	return !inserted, err
}

// deliveryStatus applies a delivery receipt to the message it is about. Receipts for
// messages Parley did not store (sent by another system on the same number) are
// counted and skipped.
func (s *Server) deliveryStatus(ctx context.Context, t target, st channel.Status, res *webhookResult) {
	switch st.Status {
	case store.MsgSent, store.MsgDelivered, store.MsgRead, store.MsgFailed:
	default:
		res.Ignored++ // e.g. "deleted", "warning": nothing to record
		return
	}
	errText := ""
	if st.Status == store.MsgFailed {
		errText = sanitize.Clean(describeStatusError(st))
	}
	st.ProviderMessageID = sanitize.Clean(st.ProviderMessageID)
	found, err := s.Store.ApplyDeliveryStatus(ctx, t.botID, st.ProviderMessageID, st.Status, errText)
	if err != nil {
		s.logFailure(ctx, "webhook: delivery status", "provider_id", st.ProviderMessageID, "err", err)
		res.failed++
		return
	}
	res.Statuses++
	if !found {
		res.Unmatched++
	}
}

func describeStatusError(st channel.Status) string {
	reason := st.ErrorTitle
	if reason == "" {
		reason = "the provider reported the message as failed"
	}
	if st.ErrorCode != 0 {
		reason += fmt.Sprintf(" (provider code %d)", st.ErrorCode)
	}
	return reason
}

// webhookDone answers a processed delivery: 200, or 500 when something failed to be
// stored so the provider delivers it again (499 when the provider hung up first: it
// delivers again anyway).
func (s *Server) webhookDone(w http.ResponseWriter, r *http.Request, bot store.Bot, res *webhookResult) *Error {
	if res.failed > 0 && r.Context().Err() != nil {
		return clientClosed()
	}
	if res.failed > 0 {
		s.log.Error("webhook: events not stored; asking the provider to redeliver", "bot", bot.Key, "failed", res.failed)
		return errorf(http.StatusInternalServerError, CodeInternal, "INTERNAL_ERROR",
			"%d event(s) could not be stored; deliver again (events already stored are recognised and kept once)", res.failed)
	}
	writeOK(w, res)
	return nil
}

// webhookSetup reads a webhook's body and the bot's settings for ch (whose adapter has
// the channel's name), refusing with 401 a channel without the secret its provider signs
// deliveries with: nothing unverifiable is ever stored.
func (s *Server) webhookSetup(r *http.Request, bot store.Bot, ch, secretName, header string, secret func(channel.Config) string) ([]byte, channel.Config, *Error) {
	body, e := readBody(r)
	if e != nil {
		return nil, channel.Config{}, e
	}
	cfg, err := s.Channels.Get(r.Context(), bot.ID, ch)
	if err != nil {
		return nil, channel.Config{}, s.failed(r, ch+" webhook: settings", err)
	}
	if cfg.Adapter != ch || secret(cfg) == "" {
		return nil, channel.Config{}, unauthorized("this bot's " + ch + " channel has no " + secretName + " to verify " + header + " with")
	}
	return body, cfg, nil
}

// rcsWebhook receives RBM's webhook: the setup handshake ({"clientToken","secret"},
// answered with the secret as plain text) and events signed with X-Goog-Signature. A
// bad signature or client token is 401 and nothing is stored; after a valid signature
// the answer is 200 whatever the event (Google retries anything else for a week), except
// when Parley fails to store it, where a retry is exactly what is wanted (500).
func (s *Server) rcsWebhook(w http.ResponseWriter, r *http.Request, bot store.Bot) *Error {
	body, cfg, e := s.webhookSetup(r, bot, channel.RCS, "client_token", rcs.SignatureHeader,
		func(c channel.Config) string { return c.ClientToken })
	if e != nil {
		return e
	}
	ctx := r.Context()
	if e := checkRBMEnvelope(body); e != nil {
		return e
	}
	ev, err := rcs.ParseWebhook(body, r.Header.Get(rcs.SignatureHeader), cfg.ClientToken)
	if errors.Is(err, rcs.ErrBadSignature) {
		return unauthorized(strings.TrimPrefix(err.Error(), "rcs webhook: "))
	}
	res := &webhookResult{}
	switch {
	case err != nil:
		// Signed by Google but not an event Parley can read: nothing to store, and a
		// retry would bring the same bytes.
		s.log.Warn("rcs webhook: event skipped", "bot", bot.Key, "err", err)
		res.Ignored++
	case ev.Secret != "":
		writeText(w, ev.Secret)
		return nil
	case ev.Message != nil:
		s.inbound(ctx, target{bot.ID, bot.CustomerID}, channel.RCS, *ev.Message, res)
	case ev.Status != nil:
		s.deliveryStatus(ctx, target{bot.ID, bot.CustomerID}, *ev.Status, res)
	default:
		res.Ignored++ // IS_TYPING and other events that change nothing
	}
	return s.webhookDone(w, r, bot, res)
}

// checkRBMEnvelope refuses bodies that are not an RBM webhook at all (400), before the
// signature is looked at, so that the answer to anything signed stays 200.
func checkRBMEnvelope(body []byte) *Error {
	var env struct {
		Secret  string `json:"secret"`
		Message *struct {
			Data string `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return invalid("the body is not an RBM webhook: %v", err)
	}
	if env.Secret != "" {
		return nil
	}
	if env.Message == nil || env.Message.Data == "" {
		return invalid("the body is neither RBM's setup handshake {clientToken, secret} nor an event {message: {data}}")
	}
	d := strings.TrimSpace(env.Message.Data)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := enc.DecodeString(d); err == nil {
			return nil
		}
	}
	return invalid("message.data is not base64")
}

// templateRequest is the template API's body, as in the vendor's example. encoding/json
// matches keys case-insensitively, so "phoneNumber" and "phonenumber" both land in
// PhoneNumber.
type templateRequest struct {
	PhoneNumber      any           `json:"phoneNumber"`
	PhoneNumberSnake any           `json:"phone_number"`
	Payload          *msg.Template `json:"payload"`
}

// sendTemplate sends one WhatsApp template to a phone number through the bot's
// whatsapp sender (the sandbox when none is configured) and answers with the provider's
// message id. Templates may be sent outside the 24-hour window.
//
// The send goes through the engine (engine.Engine.Send): the user and the message are
// stored, pending, before the provider is called, and the outcome after, so a crash in
// between is settled by the engine and never sends twice. An Idempotency-Key header
// makes a retry within 24 hours answer with the first send instead of sending again.
func (s *Server) sendTemplate(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	var body templateRequest
	if e := decodeJSON(r, &body); e != nil {
		return e
	}
	raw := body.PhoneNumber
	if raw == nil {
		raw = body.PhoneNumberSnake
	}
	var phoneText string
	switch v := raw.(type) {
	case nil:
		return invalid("phoneNumber is required: the recipient's number with country code, e.g. +919876543210")
	case string:
		phoneText = v
	case json.Number:
		phoneText = v.String()
	default:
		return invalid("phoneNumber must be a string such as \"+919876543210\"")
	}
	num, err := phone.Parse(phoneText)
	if err != nil {
		return invalid("phoneNumber: %v", err)
	}
	t := body.Payload
	switch {
	case t == nil:
		return invalid("payload is required: the template's name, namespace, language and components")
	case strings.TrimSpace(t.Name) == "":
		return invalid("payload.name is required: the approved template's name")
	case strings.TrimSpace(t.Language.Code) == "":
		return invalid("payload.language.code is required, e.g. \"en\"")
	}
	for i, c := range t.Components {
		if c == nil {
			return invalid("payload.components[%d] must be an object", i)
		}
	}
	idem := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if len(idem) > 200 {
		return invalid("the idempotency key is longer than 200 characters")
	}
	key := ""
	if idem != "" {
		key = "template:" + idem
	}

	ctx := r.Context()
	send := engine.OneOff{BotID: p.BotID, Channel: channel.WhatsApp, Phone: num.E164, Digits: num.Digits,
		Content: msg.Content{Template: t}, Key: key}
	res, err := s.Engine.Send(ctx, send)
	if err == nil && res.Duplicate && res.Status == store.MsgPending {
		// The first send with this key is in flight (or was interrupted and is being
		// settled): wait a little for its outcome.
		res, err = s.Engine.AwaitSend(ctx, p.BotID, res.MessageID, templateDuplicateWait)
		if errors.Is(err, engine.ErrSendNotFound) {
			// It was refused for a passing reason, which frees the key: send now.
			res, err = s.Engine.Send(ctx, send)
		}
	}
	switch {
	case errors.Is(err, engine.ErrStopping):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "the server is shutting down; send again")
	case err != nil:
		return s.failed(r, "template api: send", err)
	case res.Status == store.MsgPending:
		w.Header().Set("Retry-After", "1")
		return errorf(http.StatusConflict, CodeConflict, "CONFLICT",
			"a send with this Idempotency-Key is still in progress; retry to learn its outcome")
	case res.Status == store.MsgFailed && res.Failure != nil:
		return s.sendError(w, res.Failure)
	case res.Status == store.MsgFailed:
		return errorf(http.StatusBadRequest, CodeMessageNotSent, "MESSAGE_NOT_SENT",
			"the first send with this Idempotency-Key failed: %s", res.Error)
	}
	out := map[string]any{"message_id": res.ProviderMessageID, "status": res.Status,
		"channel_user_id": num.Digits, "phone_number": num.E164, "stored_message_id": strconv.FormatInt(res.MessageID, 10)}
	if res.Duplicate {
		out["duplicate"] = true
	}
	writeOK(w, out)
	return nil
}

// templateDuplicateWait is how long a retried template send waits for the first send
// with its Idempotency-Key to finish.
const templateDuplicateWait = 5 * time.Second

// sendError maps a send failure onto the envelope: the provider's rate limit is 429
// (with Retry-After when it gave one), an outage 503, any other refusal 400 with the
// provider's reason.
func (s *Server) sendError(w http.ResponseWriter, ce *channel.Error) *Error {
	switch ce.Kind {
	case channel.KindRateLimited:
		if ce.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ce.RetryAfter.Seconds()))))
		}
		return errorf(http.StatusTooManyRequests, CodeRateLimited, "RATE_LIMITED",
			"the message was not sent, the number is rate limited; try again later: %s", ce.Error())
	case channel.KindUnavailable:
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "PROVIDER_UNAVAILABLE",
			"the message was not sent, the provider is unavailable; try again later: %s", ce.Error())
	}
	return errorf(http.StatusBadRequest, CodeMessageNotSent, "MESSAGE_NOT_SENT", "the message was not sent: %s", ce.Error())
}

func pathChannel(r *http.Request) (string, *Error) {
	ch := strings.ToLower(r.PathValue("channel"))
	for _, c := range registry.Channels() {
		if ch == c {
			return ch, nil
		}
	}
	return "", notFound("no channel %s: channels are %s", strconvQuote(r.PathValue("channel")), strings.Join(registry.Channels(), ", "))
}

func (s *Server) channelsReady() *Error {
	if s.Channels == nil {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "channels are not set up on this server")
	}
	return nil
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request) *Error {
	if e := s.channelsReady(); e != nil {
		return e
	}
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	out := make([]registry.View, 0, len(registry.Channels()))
	for _, ch := range registry.Channels() {
		cfg, err := s.Channels.Get(r.Context(), b.ID, ch)
		if err != nil {
			return s.storeError(r, "channel settings", err)
		}
		out = append(out, registry.NewView(b.Key, ch, cfg))
	}
	writeOK(w, map[string]any{"channels": out})
	return nil
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) *Error {
	if e := s.channelsReady(); e != nil {
		return e
	}
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	ch, e := pathChannel(r)
	if e != nil {
		return e
	}
	cfg, err := s.Channels.Get(r.Context(), b.ID, ch)
	if err != nil {
		return s.storeError(r, "channel settings", err)
	}
	writeOK(w, registry.NewView(b.Key, ch, cfg))
	return nil
}

// channelInput is the body of PUT .../channels/{channel}: channel.Config, with
// rate_per_second also accepted as "default" or "unlimited".
type channelInput struct {
	Adapter       string `json:"adapter"`
	BaseURL       string `json:"base_url"`
	PhoneNumberID string `json:"phone_number_id"`
	Token         string `json:"token"`
	AppSecret     string `json:"app_secret"`
	VerifyToken   string `json:"verify_token"`
	AgentID       string `json:"agent_id"`
	ClientToken   string `json:"client_token"`
	APIVersion    string `json:"api_version"`
	RatePerSecond any    `json:"rate_per_second"`
	// ServiceAccountJSON is the RBM agent's key file: its JSON object as it is, or
	// that object's text in a string.
	ServiceAccountJSON json.RawMessage `json:"service_account_json"`
}

// serviceAccountText reads service_account_json, an object or a string holding one.
func serviceAccountText(raw json.RawMessage) (string, *Error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", nil
	case raw[0] == '{':
		return string(raw), nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalid("service_account_json is not a valid string")
		}
		return s, nil
	}
	return "", invalid("service_account_json must be the service-account key: a JSON object, or a string holding one")
}

// putChannel replaces a channel's settings. Secrets left out (or sent back in the
// redacted form GET shows) keep their stored values while the adapter stays the same,
// so a client can change one setting without holding the credentials. Unknown fields
// are refused, so a misspelt setting is not silently dropped.
func (s *Server) putChannel(w http.ResponseWriter, r *http.Request) *Error {
	if e := s.channelsReady(); e != nil {
		return e
	}
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	ch, e := pathChannel(r)
	if e != nil {
		return e
	}
	var in channelInput
	if e := decodeStrict(r, &in); e != nil {
		return e
	}
	sa, e := serviceAccountText(in.ServiceAccountJSON)
	if e != nil {
		return e
	}
	cfg := channel.Config{Adapter: in.Adapter, BaseURL: in.BaseURL, PhoneNumberID: in.PhoneNumberID, Token: in.Token,
		AppSecret: in.AppSecret, VerifyToken: in.VerifyToken, AgentID: in.AgentID, ClientToken: in.ClientToken, APIVersion: in.APIVersion,
		ServiceAccountJSON: sa}
	switch v := in.RatePerSecond.(type) {
	case nil:
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return invalid("rate_per_second %s is not a number", v)
		}
		cfg.RatePerSecond = f
	case string:
		f, err := registry.ParseRate(v)
		if err != nil {
			return invalid("%v", err)
		}
		cfg.RatePerSecond = f
	default:
		return invalid("rate_per_second must be a number, \"default\" or \"unlimited\"")
	}
	ctx := r.Context()
	prev, err := s.Channels.Get(ctx, b.ID, ch)
	if err != nil {
		return s.storeError(r, "channel settings", err)
	}
	cfg = registry.KeepSecrets(prev, registry.Normalize(cfg))
	if err := s.Channels.Set(ctx, b.ID, ch, cfg); err != nil {
		if errors.Is(err, registry.ErrInvalidConfig) {
			return invalid("%s", err.Error())
		}
		return s.storeError(r, "channel settings", err)
	}
	saved, err := s.Channels.Get(ctx, b.ID, ch)
	if err != nil {
		return s.storeError(r, "channel settings", err)
	}
	s.log.Info("channel settings changed", "bot", b.Key, "channel", ch, "adapter", saved.Adapter)
	writeOK(w, registry.NewView(b.Key, ch, saved))
	return nil
}
