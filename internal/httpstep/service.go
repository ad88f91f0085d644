package httpstep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/parleyhq/parley/internal/alert"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/queue"
	"github.com/parleyhq/parley/internal/store"
)

// The persistent side of http steps: where the Client makes one call, the Service makes
// it as a step of an account's flow, with the account's rate limit, the step's logs and
// response structure, and its alert mail, all kept in the database so that they hold
// across every instance sharing it.

// DefaultRate is the calls per minute an account may make when neither the account nor
// the server says otherwise, as the seed says.
const DefaultRate = 10

// RateLimited is the error of a call refused by the account's rate limit, word for word
// as the vendor shows it.
const RateLimited = "Rate Limit Exceeded"

// KindRateLimited: the account's calls of the current minute were used up; the call was
// not made.
const KindRateLimited ErrorKind = "rate_limited"

// KindInternal: the server could not check the rate limit; the call was not made.
const KindInternal ErrorKind = "internal"

// AlertInterval is the least time between two alert mails of one step.
const AlertInterval = time.Hour

// Config configures a Service.
type Config struct {
	Store  *store.Store
	Client *Client
	// DefaultRate is the calls per minute of an account without a rate of its own
	// (DefaultRate when not positive).
	DefaultRate int
	// Queue and Mailer send alert mail: without either, failures send none (and say so
	// in the server's log), and the throttle is left alone.
	Queue  *queue.Queue
	Mailer *alert.Mailer
	Log    *slog.Logger
	// Now is the clock (time.Now when nil); tests move it to cross minutes and hours.
	Now func() time.Time
}

// Service makes the calls of http steps for runs and for the admin's Test action. It is
// the engine's HTTPCaller as it is: the engine uses this package's StepCall and
// StepResult as its own types, and this package does not import the engine. It is safe
// for concurrent use; Close it after the last call.
type Service struct {
	st          *store.Store
	client      *Client
	defaultRate int
	q           *queue.Queue
	mail        bool
	log         *slog.Logger
	now         func() time.Time
	// batch groups the rate-limit claims of concurrent calls into shared transactions
	// on SQLite, whose single writer would otherwise commit them one by one. PostgreSQL
	// takes them as they come.
	batch *store.Batcher

	leasesMu sync.Mutex
	leases   map[int64]*lease // by customer id

	rec recorder

	// noMailMu guards noMailWarned: when each step last logged that it had no mail to
	// send, so a failing step without SMTP says so once an hour, not on every call.
	noMailMu     sync.Mutex
	noMailWarned map[store.HTTPStep]time.Time
}

// NewService returns a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("httpstep: a Service needs a store and a client")
	}
	s := &Service{
		st: cfg.Store, client: cfg.Client, defaultRate: cfg.DefaultRate, q: cfg.Queue,
		mail: cfg.Queue != nil && cfg.Mailer != nil, log: cfg.Log, now: cfg.Now,
		leases: map[int64]*lease{}, noMailWarned: map[store.HTTPStep]time.Time{},
	}
	if s.defaultRate <= 0 {
		s.defaultRate = DefaultRate
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.st.Dialect() == store.SQLite {
		s.batch = s.st.NewBatcher(1, 0)
	}
	s.rec.start(s)
	return s, nil
}

// Close writes the calls' logs still queued; calls after it are not logged.
func (s *Service) Close() {
	s.rec.close()
	if s.batch != nil {
		s.batch.Close()
	}
}

// StepCall is one execution of an http node by a run (the engine's HTTPCall).
type StepCall struct {
	CustomerID int64
	BotID      int64
	FlowID     int64
	FlowKey    string
	RunID      string
	Node       *flow.HTTPNode
	Lookup     flow.Lookup
}

// StepResult is what the run goes on with (the engine's HTTPResult).
// Error is also set, without Failed, when a successful response was not JSON
// (MappingNotDone), so that {{node.error}} tells why nothing was mapped.
type StepResult struct {
	Failed bool
	Error  string
	Status int
	Leaves map[string]string
}

// Call makes the call of a run's http node: it builds the request, counts it against
// the account's rate limit and makes it within the node's timeout. Then, in the
// background, it logs the call, records or checks the response's structure, and on
// failure queues the step's alert mail (at most one an hour). It never fails as a Go
// error: every failure is in the result.
func (s *Service) Call(ctx context.Context, c StepCall) StepResult {
	res, _ := s.call(ctx, callInput{customerID: c.CustomerID, flowID: c.FlowID, flowKey: c.FlowKey,
		runID: c.RunID, node: c.Node, lookup: c.Lookup})
	out := StepResult{Failed: res.Failed, Error: res.Error, Status: res.Response.Status, Leaves: res.Leaves}
	if !res.Failed && res.MappingError != "" {
		out.Error = res.MappingError
	}
	return out
}

type callInput struct {
	customerID int64
	flowID     int64
	flowKey    string
	runID      string // "" for a test call
	node       *flow.HTTPNode
	lookup     flow.Lookup
}

func (in callInput) step() store.HTTPStep {
	return store.HTTPStep{FlowID: in.flowID, NodeID: in.node.ID}
}

// recorded is what the database made of a call.
type recorded struct {
	logID            int64
	structureChanged bool
	alertQueued      bool
}

func (s *Service) call(ctx context.Context, in callInput) (*Result, recorded) {
	if in.node == nil {
		return BuildFailure(nil, errors.New("no http node to call")), recorded{}
	}
	var res *Result
	node, err := s.openSecrets(in.node)
	var call *Call
	if err == nil {
		call, err = Build(node, in.lookup)
	}
	if err != nil {
		res = BuildFailure(in.node, err)
	} else {
		res = s.limitedDo(ctx, in, call)
	}
	// A run goes on without waiting for its call's log, which is for people to read
	// (reads on this instance wait for it); the Test action answers with the log's id.
	return res, s.rec.submit(s.newRecord(in, res), in.runID == "")
}

// limitedDo makes the call if the account's rate limit allows it.
func (s *Service) limitedDo(ctx context.Context, in callInput, call *Call) *Result {
	now := s.now()
	// A test call is a one-off (often from a CLI process that ends next): it takes one
	// call, not a block that would mostly go unused.
	allowed, err := s.allow(ctx, in.customerID, now, in.runID == "")
	if err != nil || !allowed {
		res := &Result{StartedAt: now, Request: Request{Method: call.Method, URL: call.URL, Header: call.Header, Body: string(call.Body)}}
		if err != nil {
			// Refuse rather than risk going over the limit while the database is away.
			s.log.Error("http step: rate limit check", "flow", in.flowKey, "node", in.node.ID, "err", err)
			return res.fail(KindInternal, "the rate limit could not be checked; the call was not made")
		}
		return res.fail(KindRateLimited, RateLimited)
	}
	return s.client.Do(ctx, call, time.Duration(in.node.Timeout())*time.Second)
}

// Blocks of calls: an account allowed L calls a minute has them claimed from the
// database L/leaseDivisor at a time (at most maxLease) once L is at least
// minLeaseLimit, so that a busy account costs a database write per block rather than
// per call. A block's calls may be used for leaseTTL after its claim, and the database
// counts the block for 60 s after that, so the limit holds within any 60 s across
// instances; an instance leaves at most one block unused per leaseTTL. Below
// minLeaseLimit every call is claimed on its own, and the count is exact.
const (
	leaseDivisor  = 100
	minLeaseLimit = 2 * leaseDivisor
	maxLease      = 1000
	leaseTTL      = 2 * time.Second
)

// lease is this instance's block of one account's calls.
type lease struct {
	mu      sync.Mutex
	until   time.Time // the block's calls may be made until then
	left    int       // calls of the block not used yet
	size    int       // calls claimed at once
	sizedAt time.Time // when size was last taken from the account's limit
}

func leaseSize(limit int) int {
	if limit < minLeaseLimit {
		return 1
	}
	return min(limit/leaseDivisor, maxLease)
}

// allow takes one call of the account: from this instance's block, or from the database
// (a block of calls unless single).
func (s *Service) allow(ctx context.Context, customerID int64, now time.Time, single bool) (bool, error) {
	s.leasesMu.Lock()
	l := s.leases[customerID]
	if l == nil {
		l = &lease{}
		s.leases[customerID] = l
	}
	s.leasesMu.Unlock()

	l.mu.Lock()
	if l.left > 0 && !now.After(l.until) {
		l.left--
		l.mu.Unlock()
		return true, nil
	}
	l.left = 0
	// The block size follows the account's limit, read again once a minute.
	if l.sizedAt.IsZero() || now.Sub(l.sizedAt) >= time.Minute || now.Before(l.sizedAt) {
		limit, err := s.limitOf(ctx, customerID)
		if err != nil {
			l.mu.Unlock()
			return false, err
		}
		l.size, l.sizedAt = leaseSize(limit), now
	}
	if l.size == 1 || single {
		// One call at a time: no need to hold up the account's other calls meanwhile.
		l.mu.Unlock()
		return s.claim(ctx, customerID, now, now, 1)
	}
	// The others wait for this block rather than each claim one.
	defer l.mu.Unlock()
	until := now.Add(leaseTTL)
	ok, err := s.claim(ctx, customerID, now, until, l.size)
	if err != nil {
		return false, err
	}
	if ok {
		l.until, l.left = until, l.size-1
		return true, nil
	}
	l.size = 1 // less than a block is left: take the rest one by one until the next minute
	return s.claim(ctx, customerID, now, now, 1)
}

func (s *Service) limitOf(ctx context.Context, customerID int64) (int, error) {
	c, err := s.st.Customer(ctx, customerID)
	if err != nil {
		return 0, err
	}
	if c.HTTPRate != nil {
		return *c.HTTPRate, nil
	}
	return s.defaultRate, nil
}

func (s *Service) claim(ctx context.Context, customerID int64, at, until time.Time, n int) (bool, error) {
	if s.batch == nil {
		return s.st.ClaimHTTPCalls(ctx, nil, customerID, at.UnixMilli(), until.UnixMilli(), s.defaultRate, n)
	}
	var ok bool
	err := s.batch.Do(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		ok, err = s.st.ClaimHTTPCalls(ctx, tx, customerID, at.UnixMilli(), until.UnixMilli(), s.defaultRate, n)
		return err
	})
	return ok, err
}

// logDetail is what a log keeps of a call beyond its summary columns.
type logDetail struct {
	Request   Request           `json:"request"`
	Response  Response          `json:"response"`
	ErrorKind ErrorKind         `json:"error_kind,omitempty"`
	Leaves    map[string]string `json:"leaves,omitempty"`
}

// record is a call to log: logged in the order calls end, so that the first successful
// call of a step is the one whose structure is recorded.
type record struct {
	in     callInput
	res    *Result
	red    *Result
	detail []byte
	now    time.Time
	reply  chan recorded // for a caller that waits
	// Set by the transaction, afresh each time it runs.
	out    recorded
	noMail bool
}

// openSecrets returns n with its secret headers decrypted, for Build; n itself (shared
// by every run of the flow version) keeps them encrypted.
func (s *Service) openSecrets(n *flow.HTTPNode) (*flow.HTTPNode, error) {
	if len(n.SecretHeaders) == 0 {
		return n, nil
	}
	out := *n
	out.Headers = maps.Clone(n.Headers)
	for name, v := range n.Headers {
		if !n.IsSecretHeader(name) {
			continue
		}
		plain, err := s.st.Secrets().Decrypt(v)
		if err != nil {
			return nil, &RequestError{Node: n.ID, Field: "headers." + name, Reason: "the secret value cannot be decrypted", Err: err}
		}
		out.Headers[name] = plain
	}
	return &out, nil
}

func (s *Service) newRecord(in callInput, res *Result) *record {
	red := RedactSecretHeaders(Redact(res), in.node.SecretHeaders)
	detail, err := json.Marshal(logDetail{Request: red.Request, Response: red.Response, ErrorKind: red.ErrorKind, Leaves: red.Leaves})
	if err != nil { // cannot happen with these types; log the call without its detail
		s.log.Error("http step: encode log", "flow", in.flowKey, "node", in.node.ID, "err", err)
		detail = []byte("{}")
	}
	return &record{in: in, res: res, red: red, detail: detail, now: s.now()}
}

// recordStepTx logs calls of one step, in the order they ended: redacted, numbered,
// the last store.HTTPStepLogsKept of them kept (those before would be overwritten in the
// same transaction). It keeps the step's response structure and, for a failed call of a
// run, claims and queues the alert mail, in tx: the mail is queued if and only if the
// claim commits.
func (s *Service) recordStepTx(ctx context.Context, tx store.Tx, recs []*record) error {
	k := recs[0].in.step()
	last := recs[len(recs)-1]
	st, err := s.st.CountHTTPStepCalls(ctx, tx, k, len(recs), last.res.StartedAt.UnixMilli())
	if err != nil {
		return err
	}
	shape, changed, alertSent := st.Shape, st.ChangedShape, st.AlertSentAt
	for i, r := range recs {
		r.out, r.noMail = recorded{logID: st.Calls + int64(i) + 1}, false
		res := r.res
		message := res.MappingError
		if !res.Failed && res.Shape != "" {
			switch {
			case shape == "":
				shape = res.Shape // the first successful JSON call maps the structure
			case ShapeChanged(shape, res.Shape):
				r.out.structureChanged, changed, message = true, res.Shape, StructureChanged
			}
		}
		if i >= len(recs)-store.HTTPStepLogsKept {
			if err := s.st.PutHTTPStepLog(ctx, tx, k, store.HTTPStepLog{Seq: r.out.logID, RunID: r.in.runID,
				At: res.StartedAt.UnixMilli(), DurationUS: res.Duration.Microseconds(), Method: r.red.Request.Method,
				URL: r.red.Request.URL, Status: res.Response.Status, Error: res.Error, Message: message, Detail: r.detail}); err != nil {
				return err
			}
		}
		if !res.Failed || r.in.runID == "" || len(r.in.node.AlertEmails) == 0 ||
			(alertSent != nil && r.now.Sub(time.UnixMilli(*alertSent)) < AlertInterval) {
			continue
		}
		if !s.mail {
			r.noMail = true // not claimed: the mail is due as soon as SMTP is configured
			continue
		}
		now := r.now.UnixMilli()
		claimed, err := s.st.ClaimHTTPStepAlert(ctx, tx, k, now, r.now.Add(-AlertInterval).UnixMilli())
		if err != nil {
			return err
		}
		if !claimed {
			continue
		}
		if err := s.q.InsertTx(ctx, tx, alertArgs(r.in, r.red, r.now), &river.InsertOpts{MaxAttempts: alertAttempts}); err != nil {
			return err
		}
		alertSent, r.out.alertQueued = &now, true
	}
	if shape != st.Shape || changed != st.ChangedShape {
		return s.st.SetHTTPStepShapes(ctx, tx, k, shape, changed)
	}
	return nil
}

// recordTx writes a batch of records, step by step.
func (s *Service) recordTx(ctx context.Context, tx store.Tx, batch []*record) error {
	var steps []store.HTTPStep
	byStep := map[store.HTTPStep][]*record{}
	for _, r := range batch {
		k := r.in.step()
		if byStep[k] == nil {
			steps = append(steps, k)
		}
		byStep[k] = append(byStep[k], r)
	}
	for _, k := range steps {
		if err := s.recordStepTx(ctx, tx, byStep[k]); err != nil {
			return err
		}
	}
	return nil
}

// recorder writes records in the order they are submitted, from one goroutine, putting
// whatever is queued when it comes round into one transaction.
type recorder struct {
	s       *Service
	jobs    chan *record
	stopped chan struct{}

	sendMu sync.Mutex // serialises submissions, so queue order is numbering order
	closed bool
	queued atomic.Uint64 // records submitted

	mu      sync.Mutex
	cond    *sync.Cond
	written uint64 // records done with, in submission order
}

// maxRecordsPerTx bounds one transaction of the recorder, and recordLinger how long it
// waits for more records before writing.
const (
	maxRecordsPerTx = 128
	recordLinger    = 5 * time.Millisecond
)

func (rc *recorder) start(s *Service) {
	rc.s, rc.jobs, rc.stopped = s, make(chan *record, 4096), make(chan struct{})
	rc.cond = sync.NewCond(&rc.mu)
	go rc.loop()
}

// submit queues r; with wait it returns once r is written, and what came of it.
func (rc *recorder) submit(r *record, wait bool) recorded {
	if wait {
		r.reply = make(chan recorded, 1)
	}
	rc.sendMu.Lock()
	if rc.closed {
		rc.sendMu.Unlock()
		rc.s.log.Error("http step: call not logged: the service is closed", "flow", r.in.flowKey, "node", r.in.node.ID)
		return recorded{}
	}
	rc.queued.Add(1)
	rc.jobs <- r
	rc.sendMu.Unlock()
	if !wait {
		return recorded{}
	}
	return <-r.reply
}

// wait returns once every record submitted before the call is written; later ones do
// not hold it up, so a busy server cannot starve it.
func (rc *recorder) wait() {
	upto := rc.queued.Load()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for rc.written < upto {
		rc.cond.Wait()
	}
}

// close writes what is queued and stops the loop; later records are dropped.
func (rc *recorder) close() {
	rc.sendMu.Lock()
	if !rc.closed {
		rc.closed = true
		close(rc.jobs)
	}
	rc.sendMu.Unlock()
	<-rc.stopped
}

func (rc *recorder) loop() {
	defer close(rc.stopped)
	batch := make([]*record, 0, maxRecordsPerTx)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	prev := 0
	for r := range rc.jobs {
		// Under load (the last batch was not alone), gather the records of the next few
		// milliseconds too: fewer, larger transactions take less of the writer from the
		// runs' own commits. Alone, a record is written at once.
		var wait <-chan time.Time
		if prev > 1 {
			linger.Reset(recordLinger)
			wait = linger.C
		}
		batch = rc.gather(append(batch[:0], r), wait)
		linger.Stop()
		prev = len(batch)
		rc.write(batch)
		rc.mu.Lock()
		rc.written += uint64(len(batch))
		rc.mu.Unlock()
		rc.cond.Broadcast()
	}
}

// gather adds the records queued now to batch and, unless wait is nil, those arriving
// before wait fires.
func (rc *recorder) gather(batch []*record, wait <-chan time.Time) []*record {
	for len(batch) < maxRecordsPerTx {
		if wait == nil {
			select {
			case next, ok := <-rc.jobs:
				if !ok {
					return batch
				}
				batch = append(batch, next)
				continue
			default:
				return batch
			}
		}
		select {
		case next, ok := <-rc.jobs:
			if !ok {
				return batch
			}
			batch = append(batch, next)
		case <-wait:
			return batch
		}
	}
	return batch
}

// write commits the batch in one transaction; if that fails, each record alone, so that
// one bad record costs only its own log.
func (rc *recorder) write(batch []*record) {
	s, ctx := rc.s, context.Background()
	err := s.st.InTx(ctx, func(tx store.Tx) error { return s.recordTx(ctx, tx, batch) })
	for _, r := range batch {
		if err != nil && len(batch) > 1 {
			if err1 := s.st.InTx(ctx, func(tx store.Tx) error { return s.recordTx(ctx, tx, []*record{r}) }); err1 != nil {
				s.log.Error("http step: log call", "flow", r.in.flowKey, "node", r.in.node.ID, "err", err1)
				r.out, r.noMail = recorded{}, false
			}
		} else if err != nil {
			s.log.Error("http step: log call", "flow", r.in.flowKey, "node", r.in.node.ID, "err", err)
			r.out, r.noMail = recorded{}, false
		}
		if r.noMail {
			s.warnNoMail(r.in.step(), r.in, r.now)
		}
		if r.reply != nil {
			r.reply <- r.out
		}
	}
}

// warnNoMail says, once an hour per step, that a failure's alert mail was not sent.
func (s *Service) warnNoMail(k store.HTTPStep, in callInput, now time.Time) {
	s.noMailMu.Lock()
	last, seen := s.noMailWarned[k]
	if seen && now.Sub(last) < AlertInterval {
		s.noMailMu.Unlock()
		return
	}
	s.noMailWarned[k] = now
	s.noMailMu.Unlock()
	s.log.Warn("http step failed; no alert mail sent: no SMTP server is configured (--smtp-url)",
		"flow", in.flowKey, "node", in.node.ID, "recipients", len(in.node.AlertEmails))
}

// Alert mail jobs.

// alertAttempts bounds the retries of one alert mail: River's backoff spreads eight
// attempts over about an hour, after which the next failure's mail is due anyway.
const alertAttempts = 8

// AlertArgs is the River job that sends one alert mail. It carries the whole mail, which
// holds nothing redaction would hide.
type AlertArgs struct {
	FlowID  int64    `json:"flow_id"`
	NodeID  string   `json:"node_id"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Body    string   `json:"body"`
}

// Kind names the job.
func (AlertArgs) Kind() string { return "httpstep_alert" }

func alertArgs(in callInput, red *Result, now time.Time) AlertArgs {
	n := in.node
	name := n.ID
	if n.Name != "" {
		name = fmt.Sprintf("%s (%s)", n.Name, n.ID)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "An HTTP step of your Parley bot failed.\n\n")
	fmt.Fprintf(&b, "Flow:    %s\nStep:    %s\nTime:    %s\nRun:     %s\n", in.flowKey, name, now.UTC().Format(time.RFC3339), in.runID)
	fmt.Fprintf(&b, "Request: %s %s\n", red.Request.Method, red.Request.URL)
	if red.Response.StatusText != "" {
		fmt.Fprintf(&b, "Status:  %s\n", red.Response.StatusText)
	}
	fmt.Fprintf(&b, "Error:   %s\n\n", red.Error)
	fmt.Fprintf(&b, "No further mail is sent for this step's failures within the next hour. "+
		"\"Reset Mail Timeout\" on the step sends the next failure's mail at once.\n")
	return AlertArgs{
		FlowID: in.flowID, NodeID: n.ID, To: append([]string(nil), n.AlertEmails...),
		Subject: fmt.Sprintf("HTTP step %s failed in flow %s", name, in.flowKey),
		Body:    b.String(),
	}
}

// AlertWorker sends alert mail. Register it with the queue of every instance; one
// without a Mailer fails the job, which River retries, perhaps on an instance with one.
type AlertWorker struct {
	river.WorkerDefaults[AlertArgs]
	mailer *alert.Mailer
}

// NewAlertWorker returns the worker of AlertArgs jobs; m may be nil.
func NewAlertWorker(m *alert.Mailer) *AlertWorker { return &AlertWorker{mailer: m} }

// Work sends the mail.
func (w *AlertWorker) Work(ctx context.Context, job *river.Job[AlertArgs]) error {
	if w.mailer == nil {
		return errors.New("no SMTP server is configured on this instance (--smtp-url)")
	}
	if err := w.mailer.Send(ctx, job.Args.To, job.Args.Subject, job.Args.Body); err != nil {
		return fmt.Errorf("alert mail of http step %s: %w", job.Args.NodeID, err)
	}
	return nil
}

// Timeout bounds one attempt: connecting and each SMTP command are bounded by the
// Mailer already.
func (w *AlertWorker) Timeout(*river.Job[AlertArgs]) time.Duration { return 2 * time.Minute }

// The admin's view of a step.

// Errors of Step.
var (
	ErrFlowNotFound = errors.New("flow not found")
	ErrNodeNotFound = errors.New("node not found")
	ErrNotHTTPNode  = errors.New("not an http node")
)

// Step is an http node of the current version of a bot's flow, as the admin API and the
// CLI address it.
type Step struct {
	CustomerID int64
	BotID      int64
	FlowID     int64
	FlowKey    string
	Node       *flow.HTTPNode
}

func (st Step) key() store.HTTPStep { return store.HTTPStep{FlowID: st.FlowID, NodeID: st.Node.ID} }

// Step finds the http node nodeID of the bot's flow flowKey. The error wraps
// ErrFlowNotFound, ErrNodeNotFound or ErrNotHTTPNode when that is what is wrong.
func (s *Service) Step(ctx context.Context, customerID, botID int64, flowKey, nodeID string) (Step, error) {
	rec, err := s.st.FlowByKey(ctx, botID, flowKey)
	if errors.Is(err, store.ErrNotFound) {
		return Step{}, fmt.Errorf("%w: %s", ErrFlowNotFound, flowKey)
	}
	if err != nil {
		return Step{}, err
	}
	f, err := flow.Parse(rec.Document)
	if err != nil {
		return Step{}, fmt.Errorf("stored flow %s: %w", rec.Key, err)
	}
	n, ok := f.Node(nodeID)
	if !ok {
		return Step{}, fmt.Errorf("%w: flow %s has no node %q", ErrNodeNotFound, rec.Key, nodeID)
	}
	hn, ok := n.(*flow.HTTPNode)
	if !ok {
		return Step{}, fmt.Errorf("%w: node %q is a %s node", ErrNotHTTPNode, nodeID, n.NodeType())
	}
	return Step{CustomerID: customerID, BotID: botID, FlowID: rec.ID, FlowKey: rec.Key, Node: hn}, nil
}

// TestResult is the outcome of the Test action: the call in full (not redacted: it goes
// to the admin who asked, and its log is redacted) but for the values of the node's
// secret headers, and what a run would make of it.
type TestResult struct {
	*Result
	DurationMS float64 `json:"duration_ms"`
	// Attributes are what the node's save would set.
	Attributes map[string]string `json:"attributes"`
	// StructureChanged is set when the response's structure differs from the recorded
	// one; Message then says StructureChanged (or, for a response that is not JSON,
	// MappingNotDone).
	StructureChanged bool   `json:"structure_changed"`
	Message          string `json:"message,omitempty"`
	// LogID is the id of the call's log (0 if it could not be stored).
	LogID int64 `json:"log_id,omitempty"`
}

// Test makes one call of the step with the given attributes (names as templates use
// them: "order_id", "user.phone_no", or "other_node.path" for another step's result).
// It counts against the rate limit, is logged, and maps the structure at the step's
// first successful call, like a run's call; it sends no alert mail.
func (s *Service) Test(ctx context.Context, st Step, attrs map[string]string) (*TestResult, error) {
	if st.Node == nil {
		return nil, ErrNodeNotFound
	}
	res, rec := s.call(ctx, callInput{customerID: st.CustomerID, flowID: st.FlowID, flowKey: st.FlowKey, node: st.Node, lookup: lookupIn(attrs)})
	out := testResult(st.Node, res)
	out.StructureChanged, out.LogID = rec.structureChanged, rec.logID
	if rec.structureChanged {
		out.Message = StructureChanged
	}
	return out, nil
}

// TestDraft makes one call of node as the flow builder has it, published or not. A
// secret header whose value is still flow.RedactedSecret (as the builder shows stored
// secrets) takes the value saved gives for it (the saved draft's), else that of the
// published node pub.Node; the other values are as typed. It counts against the rate
// limit like Test, but records nothing: the logs and the recorded structure are those of
// the node runs call.
func (s *Service) TestDraft(ctx context.Context, pub Step, node *flow.HTTPNode, saved func(header string) (string, bool), attrs map[string]string) *TestResult {
	in := callInput{customerID: pub.CustomerID, flowID: pub.FlowID, flowKey: pub.FlowKey, node: node, lookup: lookupIn(attrs)}
	plain, err := s.draftSecrets(node, saved, pub.Node)
	var call *Call
	if err == nil {
		call, err = Build(plain, in.lookup)
	}
	var res *Result
	if err != nil {
		res = BuildFailure(node, err)
	} else {
		res = s.limitedDo(ctx, in, call)
	}
	return testResult(node, res)
}

// draftSecrets returns node with its secret headers in plain: typed values as they are,
// RedactedSecret ones decrypted from the saved draft's or the published node's.
func (s *Service) draftSecrets(node *flow.HTTPNode, saved func(header string) (string, bool), published *flow.HTTPNode) (*flow.HTTPNode, error) {
	out := *node
	out.Headers = maps.Clone(node.Headers)
	for name, v := range node.Headers {
		if !node.IsSecretHeader(name) || v != flow.RedactedSecret {
			continue
		}
		stored, ok := saved(name)
		if !ok && published != nil && published.IsSecretHeader(name) {
			stored, ok = published.Headers[name]
		}
		if !ok {
			return nil, &RequestError{Node: node.ID, Field: "headers." + name, Reason: "no value of this secret is saved or published yet: type it in"}
		}
		plain, err := s.st.Secrets().Decrypt(stored)
		if err != nil {
			return nil, &RequestError{Node: node.ID, Field: "headers." + name, Reason: "the secret value cannot be decrypted", Err: err}
		}
		out.Headers[name] = plain
	}
	return &out, nil
}

// lookupIn reads template names from a copy of attrs.
func lookupIn(attrs map[string]string) flow.Lookup {
	attrs = maps.Clone(attrs)
	return func(name string) (string, bool) {
		v, ok := attrs[name]
		return v, ok
	}
}

// testResult is a test call's answer: the call, its secret headers hidden, and what the
// node's save would make of it.
func testResult(node *flow.HTTPNode, res *Result) *TestResult {
	res = RedactSecretHeaders(res, node.SecretHeaders)
	out := &TestResult{Result: res, DurationMS: ms(res.Duration), Attributes: map[string]string{}, Message: res.MappingError}
	if !res.Failed {
		for attr, path := range node.Save {
			if v, ok := Lookup(res.Leaves, path); ok {
				out.Attributes[attr] = v
			}
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// State is what the console shows about a step.
type State struct {
	FlowKey string `json:"flow_key"`
	NodeID  string `json:"node_id"`
	Name    string `json:"name,omitempty"`
	// StructureChanged flags a response structure other than the recorded one, until a
	// Remap; Message is then StructureChanged.
	StructureChanged bool   `json:"structure_changed"`
	Message          string `json:"message,omitempty"`
	// Shape is the recorded structure, one "path type" per line; ChangedShape the latest
	// other one seen, which Remap would accept.
	Shape        []string   `json:"shape"`
	ChangedShape []string   `json:"changed_shape,omitempty"`
	Calls        int64      `json:"calls"`
	LastCallAt   *time.Time `json:"last_call_at,omitempty"`
	AlertEmails  []string   `json:"alert_emails"`
	// LastAlertAt is when the last alert mail was queued; until NextAlertAt no failure
	// sends another (Reset Mail Timeout clears both).
	LastAlertAt *time.Time `json:"last_alert_at,omitempty"`
	NextAlertAt *time.Time `json:"next_alert_at,omitempty"`
}

// State reads the step's state; a step never called has an empty one.
func (s *Service) State(ctx context.Context, st Step) (State, error) {
	out := State{FlowKey: st.FlowKey, NodeID: st.Node.ID, Name: st.Node.Name, Shape: []string{},
		AlertEmails: append([]string{}, st.Node.AlertEmails...)}
	s.rec.wait()
	rec, err := s.st.HTTPStepState(ctx, st.key())
	if errors.Is(err, store.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return State{}, err
	}
	out.Calls, out.LastCallAt = rec.Calls, msTime(rec.LastCallAt)
	out.Shape = shapeLines(rec.Shape)
	if rec.ChangedShape != "" {
		out.StructureChanged, out.Message, out.ChangedShape = true, StructureChanged, shapeLines(rec.ChangedShape)
	}
	if t := msTime(rec.AlertSentAt); t != nil {
		next := t.Add(AlertInterval)
		out.LastAlertAt = t
		if next.After(s.now()) {
			out.NextAlertAt = &next
		}
	}
	return out, nil
}

func shapeLines(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

func msTime(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := time.UnixMilli(*ms).UTC()
	return &t
}

// Remap accepts the latest response structure as the step's mapping, which clears
// "JSON Structure Change Detected".
func (s *Service) Remap(ctx context.Context, st Step) (State, error) {
	s.rec.wait()
	if err := s.st.RemapHTTPStep(ctx, st.key()); err != nil {
		return State{}, err
	}
	return s.State(ctx, st)
}

// ResetMailTimeout clears the step's alert throttle: its next failure sends a mail.
func (s *Service) ResetMailTimeout(ctx context.Context, st Step) (State, error) {
	s.rec.wait()
	if err := s.st.ResetHTTPStepAlert(ctx, st.key()); err != nil {
		return State{}, err
	}
	return s.State(ctx, st)
}

// LogSummary is one line of a step's logs.
type LogSummary struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	RunID      string    `json:"run_id,omitempty"`
	Test       bool      `json:"test,omitempty"`
	Method     string    `json:"method"`
	URL        string    `json:"url"`
	Status     int       `json:"status,omitempty"`
	DurationMS float64   `json:"duration_ms"`
	Failed     bool      `json:"failed"`
	Error      string    `json:"error,omitempty"`
	// Message is MappingNotDone or StructureChanged when the response said so.
	Message string `json:"message,omitempty"`
}

// Log is one call in full, secrets redacted.
type Log struct {
	LogSummary
	ErrorKind ErrorKind         `json:"error_kind,omitempty"`
	Request   Request           `json:"request"`
	Response  Response          `json:"response"`
	Leaves    map[string]string `json:"leaves,omitempty"`
}

func summary(l store.HTTPStepLog) LogSummary {
	return LogSummary{ID: l.Seq, At: time.UnixMilli(l.At).UTC(), RunID: l.RunID, Test: l.RunID == "", Method: l.Method,
		URL: l.URL, Status: l.Status, DurationMS: float64(l.DurationUS) / 1000, Failed: l.Error != "", Error: l.Error, Message: l.Message}
}

// Logs lists the step's last calls (at most store.HTTPStepLogsKept), newest first.
func (s *Service) Logs(ctx context.Context, st Step) ([]LogSummary, error) {
	s.rec.wait()
	logs, err := s.st.HTTPStepLogs(ctx, st.key())
	if err != nil {
		return nil, err
	}
	out := make([]LogSummary, len(logs))
	for i, l := range logs {
		out[i] = summary(l)
	}
	return out, nil
}

// Log reads one of the step's kept calls in full; the error wraps store.ErrNotFound for
// an id that is not among them.
func (s *Service) Log(ctx context.Context, st Step, id int64) (Log, error) {
	s.rec.wait()
	l, err := s.st.HTTPStepLog(ctx, st.key(), id)
	if err != nil {
		return Log{}, err
	}
	var d logDetail
	if err := json.Unmarshal(l.Detail, &d); err != nil {
		return Log{}, fmt.Errorf("log %d of step %s: %w", id, st.Node.ID, err)
	}
	return Log{LogSummary: summary(l), ErrorKind: d.ErrorKind, Request: d.Request, Response: d.Response, Leaves: d.Leaves}, nil
}
