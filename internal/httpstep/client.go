package httpstep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/flow"
)

// Defaults and limits of the client.
const (
	DefaultMaxResponseBytes = 256 << 10
	DefaultUserAgent        = "Parley"
	// MaxRedirects is how many redirects a call follows before it fails.
	MaxRedirects = 5
	// MaxTimeout caps the time a call may take, as the seed says.
	MaxTimeout = flow.MaxHTTPTimeoutSeconds * time.Second

	maxResponseHeaderBytes = 64 << 10
)

// ErrorKind classifies a failed call.
type ErrorKind string

// The kinds of failure.
const (
	// KindBlocked: the address is in the server's own network and not allowed.
	KindBlocked ErrorKind = "blocked"
	// KindTimeout: no complete response within the step's timeout.
	KindTimeout ErrorKind = "timeout"
	// KindConnection: DNS, TCP, TLS or protocol failure, or too many redirects.
	KindConnection ErrorKind = "connection"
	// KindStatus: the server answered with a status outside 2xx.
	KindStatus ErrorKind = "status"
	// KindInvalidRequest: the request could not be built or sent as written.
	KindInvalidRequest ErrorKind = "invalid_request"
)

// Options configure a Client.
type Options struct {
	// Allow lists what may be reached even though it is in a blocked range: CIDRs
	// ("127.0.0.1/32", "10.1.0.0/16"), single IPs, and exact host names ("crm.internal"),
	// on any port; and an IP or host name with a port ("127.0.0.1:9100", "[::1]:9100",
	// "crm.internal:8443"), on that port only.
	Allow []string
	// MaxResponseBytes caps how much of a response body is read (default 256 KiB).
	MaxResponseBytes int64
	// UserAgent is sent unless the node sets its own (default "Parley").
	UserAgent string
}

// Client makes the calls of http nodes. It is safe for concurrent use.
type Client struct {
	http      *http.Client
	transport *http.Transport
	allowNets []allowNet
	allowHost map[hostPort]bool
	maxBytes  int64
	userAgent string
	dialer    *net.Dialer
	// lookup resolves a host name; tests replace it to play DNS tricks without DNS.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// allowNet is an allow entry of addresses: a prefix, on one port or (0) on any.
type allowNet struct {
	prefix netip.Prefix
	port   uint16
}

// hostPort is an allow entry of a host name, on one port or (0) on any.
type hostPort struct {
	host string
	port uint16
}

// NewClient returns a Client. An entry of opts.Allow that is neither a CIDR, an IP nor a
// host name, with or without a port, is an error, so a typo in the configuration is
// found at start.
func NewClient(opts Options) (*Client, error) {
	c := &Client{
		allowHost: make(map[hostPort]bool),
		maxBytes:  opts.MaxResponseBytes,
		userAgent: opts.UserAgent,
		dialer:    &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		lookup:    net.DefaultResolver.LookupNetIP,
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	for _, entry := range opts.Allow {
		if err := c.addAllow(strings.TrimSpace(entry)); err != nil {
			return nil, fmt.Errorf("httpstep: allow entry %q: %w", entry, err)
		}
	}
	c.transport = &http.Transport{
		Proxy:                  nil, // never a proxy from the environment: it would bypass the guard
		DialContext:            c.dialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    100, // many runs call the same API at once: keep their connections
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	c.http = &http.Client{Transport: c.transport, CheckRedirect: c.checkRedirect}
	return c, nil
}

// addAllow adds one entry of Options.Allow.
func (c *Client) addAllow(e string) error {
	if e == "" {
		return nil
	}
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return err
		}
		c.allowNets = append(c.allowNets, allowNet{prefix: p.Masked()})
		return nil
	}
	single := func(ip netip.Addr, port uint16) {
		ip = ip.Unmap().WithZone("")
		c.allowNets = append(c.allowNets, allowNet{prefix: netip.PrefixFrom(ip, ip.BitLen()), port: port})
	}
	if ip, err := netip.ParseAddr(e); err == nil {
		single(ip, 0)
		return nil
	}
	if ap, err := netip.ParseAddrPort(e); err == nil {
		if ap.Port() == 0 {
			return errors.New("port 0 is no port")
		}
		single(ap.Addr(), ap.Port())
		return nil
	}
	host, port := e, uint16(0)
	if h, p, err := net.SplitHostPort(e); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		host, port = h, uint16(n)
	}
	h := normalizeHost(host)
	if !validHostName(h) {
		return errors.New("not a CIDR, an IP address or a host name, with or without a :port")
	}
	c.allowHost[hostPort{h, port}] = true
	return nil
}

// checkRedirect follows at most MaxRedirects redirects. A redirect to another origin
// (scheme, host or port) than the node's URL carries none of the node's headers: they
// may hold credentials meant for that one server, and Go itself strips only
// Authorization and cookies. The Referer, which would show the node's URL and its query
// to the new host, goes too. The new host gets Parley's User-Agent and, when a 307 or
// 308 re-sends the body, its Content-Type.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return errTooManyRedirects
	}
	if origin(req.URL) != origin(via[0].URL) {
		h := http.Header{"User-Agent": {c.userAgent}}
		if ct := req.Header.Get("Content-Type"); ct != "" && req.Body != nil && req.Body != http.NoBody {
			h.Set("Content-Type", ct)
		}
		req.Header = h
	}
	return nil
}

// origin is a URL's scheme, host and port, the port made explicit.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(normalizeHost(u.Hostname()), port)
}

// CloseIdleConnections closes kept-alive connections, for a tidy shutdown.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// Request is a request as it was sent.
type Request struct {
	Method string      `json:"method"`
	URL    string      `json:"url"`
	Header http.Header `json:"headers,omitempty"`
	Body   string      `json:"body,omitempty"`
}

// Response is what came back; Status is 0 when no response arrived.
type Response struct {
	Status     int    `json:"status,omitempty"`
	StatusText string `json:"status_text,omitempty"` // "503 Service Unavailable"
	// URL is where the response came from, when redirects led elsewhere.
	URL    string      `json:"url,omitempty"`
	Header http.Header `json:"headers,omitempty"`
	Body   string      `json:"body,omitempty"`
	// Truncated says the body was longer than the client reads; Body holds its start.
	Truncated bool `json:"truncated,omitempty"`
}

// Result is everything one call produced: what a step's log shows and what the engine
// needs to go on. Store only Redact(result): Request and Response may hold secrets.
type Result struct {
	Request   Request       `json:"request"`
	Response  Response      `json:"response"`
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration_ns"`

	// Failed is set by a blocked address, a timeout, a connection error, a non-2xx status
	// and an invalid request; ErrorKind says which and Error says it in a sentence.
	Failed    bool      `json:"failed"`
	ErrorKind ErrorKind `json:"error_kind,omitempty"`
	Error     string    `json:"error,omitempty"`

	// JSON is the decoded response (numbers as json.Number) when it is a JSON object or
	// array, whatever its status; it is not logged, the body already holds it.
	JSON any `json:"-"`
	// Leaves are JSON's leaves by path, and Shape its structure (see Shape).
	Leaves map[string]string `json:"leaves,omitempty"`
	Shape  string            `json:"shape,omitempty"`
	// MappingError is MappingNotDone when a response came back but was not JSON. It does
	// not make the call fail.
	MappingError string `json:"mapping_error,omitempty"`
}

// BuildFailure is the Result of a node whose request Build refused, so that the failure
// is logged and handled like any other.
func BuildFailure(n *flow.HTTPNode, err error) *Result {
	r := &Result{StartedAt: time.Now(), Failed: true, ErrorKind: KindInvalidRequest, Error: err.Error()}
	if n != nil {
		r.Request = Request{Method: n.Method, URL: n.URL}
	}
	return r
}

// Do makes the call. timeout is capped at MaxTimeout, which is also used when it is not
// positive. Do never returns nil; a failure is described in the Result.
func (c *Client) Do(ctx context.Context, call *Call, timeout time.Duration) *Result {
	res := &Result{StartedAt: time.Now()}
	if call == nil {
		return res.fail(KindInvalidRequest, "no request to make")
	}
	header := call.Header.Clone()
	if header == nil {
		header = make(http.Header)
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", c.userAgent)
	}
	if call.ContentType != "" && header.Get("Content-Type") == "" {
		header.Set("Content-Type", call.ContentType)
	}
	res.Request = Request{Method: call.Method, URL: call.URL, Header: header, Body: string(call.Body)}

	if timeout <= 0 || timeout > MaxTimeout {
		timeout = MaxTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var body io.Reader
	if len(call.Body) > 0 {
		body = bytes.NewReader(call.Body)
	}
	req, err := http.NewRequestWithContext(ctx, call.Method, call.URL, body)
	if err != nil {
		return res.fail(KindInvalidRequest, "invalid request: "+causeOf(err))
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return res.fail(KindInvalidRequest, "invalid request: the URL must start with http:// or https://")
	}
	req.Header = header.Clone() // the transport may add to it; the log keeps what Build made
	if h := header.Get("Host"); h != "" {
		req.Host = h // Go sends req.Host, never a Host header
	}

	resp, err := c.http.Do(req)
	if err != nil {
		res.Duration = time.Since(res.StartedAt)
		return res.failErr(ctx, err, timeout)
	}
	defer resp.Body.Close()
	res.Response = Response{Status: resp.StatusCode, StatusText: resp.Status, Header: resp.Header}
	if u := resp.Request.URL.String(); u != call.URL {
		res.Response.URL = u
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	res.Duration = time.Since(res.StartedAt)
	if int64(len(data)) > c.maxBytes {
		data = data[:c.maxBytes]
		res.Response.Truncated = true
	}
	res.Response.Body = string(data)
	res.mapJSON(data)
	if err != nil {
		return res.failErr(ctx, fmt.Errorf("reading the response: %w", err), timeout)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return res.fail(KindStatus, "HTTP "+resp.Status)
	}
	return res
}

func (r *Result) fail(kind ErrorKind, msg string) *Result {
	r.Failed, r.ErrorKind, r.Error = true, kind, msg
	if r.Duration == 0 {
		r.Duration = time.Since(r.StartedAt)
	}
	return r
}

// failErr classifies a transport error. Error messages are built from the cause, never
// from url.Error, which repeats the URL and with it any token in the query.
func (r *Result) failErr(ctx context.Context, err error, timeout time.Duration) *Result {
	var blocked *blockedError
	var netErr net.Error
	switch {
	case errors.As(err, &blocked):
		return r.fail(KindBlocked, blocked.Error())
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.As(err, &netErr) && netErr.Timeout():
		return r.fail(KindTimeout, "timed out after "+formatTimeout(timeout))
	case errors.Is(err, errTooManyRedirects):
		return r.fail(KindConnection, errTooManyRedirects.Error())
	case errors.Is(err, context.Canceled):
		return r.fail(KindConnection, "canceled before the response arrived")
	}
	return r.fail(KindConnection, "connection failed: "+causeOf(err))
}

// causeOf returns the message of err without url.Error's "Get "https://...":" prefix.
func causeOf(err error) string {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

func formatTimeout(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// mapJSON decodes the body when it is a JSON object or array, whatever the Content-Type
// says: servers often label JSON text/plain, and sometimes label an HTML error page JSON.
func (r *Result) mapJSON(data []byte) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM is not JSON, but harmless
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		r.MappingError = MappingNotDone
		return
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		r.MappingError = MappingNotDone
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		r.MappingError = MappingNotDone // more after the value: not one JSON document
		return
	}
	r.JSON = v
	r.Leaves = Leaves(v)
	r.Shape = Shape(v)
}

// blockedError is the dialer's refusal of an address in a blocked range.
type blockedError struct {
	host   string
	ip     netip.Addr
	reason string
}

func (e *blockedError) Error() string {
	if e.host == "" || e.host == e.ip.String() {
		return fmt.Sprintf("blocked: %s is %s", e.ip, e.reason)
	}
	return fmt.Sprintf("blocked: %s (%s) is %s", e.host, e.ip, e.reason)
}

// dialContext resolves the host itself and dials only addresses it has checked, so what
// is checked is what is connected to: a second DNS answer (rebinding) never comes into
// play. Every connection, redirects included, is made here.
func (c *Client) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portText)
	}
	name := normalizeHost(host)
	hostAllowed := c.allowHost[hostPort{name, 0}] || c.allowHost[hostPort{name, uint16(port)}]

	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ipNet := "ip"
		switch network {
		case "tcp4":
			ipNet = "ip4"
		case "tcp6":
			ipNet = "ip6"
		}
		if ips, err = c.lookup(ctx, ipNet, host); err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}

	var refused *blockedError
	var lastErr error
	for _, ip := range ips {
		ip = ip.Unmap()
		if !hostAllowed && !c.ipAllowed(ip, uint16(port)) {
			if reason := blockedReason(ip); reason != "" {
				if refused == nil {
					refused = &blockedError{host: host, ip: ip.WithZone(""), reason: reason}
				}
				continue
			}
		}
		conn, err := c.dialer.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, refused
}

func (c *Client) ipAllowed(ip netip.Addr, port uint16) bool {
	ip = ip.WithZone("")
	for _, a := range c.allowNets {
		if a.prefix.Contains(ip) && (a.port == 0 || a.port == port) {
			return true
		}
	}
	return false
}

// blockedRanges are the addresses of the server's own networks, and those that are no
// single host's, with the reason a refusal gives.
var blockedRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "a reserved address"}, // IPv4-compatible, deprecated
	// Teredo tunnels reach an IPv4 host through a relay; the client's address is
	// obfuscated in the last bits, and no HTTP API is served from one.
	{netip.MustParsePrefix("2001::/32"), "a Teredo tunnel address"},
	// Local-use NAT64 (RFC 8215) translates to IPv4 by a site's own rules, which may
	// well lead into its private network.
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// nat64 is the well-known NAT64 prefix, which reaches the IPv4 address in its last bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// sixToFour is the 6to4 prefix (RFC 3056): 2002:AABB:CCDD::/48 reaches the IPv4 address
// AA.BB.CC.DD through a relay.
var sixToFour = netip.MustParsePrefix("2002::/16")

// blockedReason says why ip may not be dialled without an allow entry, or "" if it may.
// An IPv6 address that embeds an IPv4 one (NAT64, 6to4) is judged by the IPv4 address.
func blockedReason(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	switch {
	case nat64.Contains(ip):
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	case sixToFour.Contains(ip):
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		if reason := blockedReason(v4); reason != "" {
			return fmt.Sprintf("a 6to4 address of %s, %s", v4, reason)
		}
		return ""
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// validHostName accepts names made of letters, digits, '-' and '_' in dot-separated labels.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
