// Package alert sends the alert mail of failed http steps over SMTP. It knows nothing of
// steps or throttling: the caller decides when a mail is due and what it says.
package alert

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// DefaultTimeout bounds connecting and each SMTP command when Options do not say.
const DefaultTimeout = 30 * time.Second

// Options adjust a Mailer beyond what its URL says.
type Options struct {
	// TLSConfig replaces the default TLS settings, for instance to trust a private CA.
	// Its ServerName is filled in from the URL when empty.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each SMTP command (DefaultTimeout when zero).
	Timeout time.Duration
}

// Mailer sends plain-text mail through one SMTP server. It is safe for concurrent use.
type Mailer struct {
	host      string
	port      int
	from      string
	implicit  bool // smtps: TLS from the first byte
	policy    mail.TLSPolicy
	user      string
	pass      string
	hasAuth   bool
	tlsConfig *tls.Config
	timeout   time.Duration
}

// New parses an SMTP URL and returns a Mailer for it:
//
//	smtp://[user:pass@]host[:port][?from=alerts@example.com&starttls=no|opportunistic|mandatory]
//	smtps://[user:pass@]host[:port][?from=alerts@example.com]
//
// smtp:// defaults to port 25 and opportunistic STARTTLS; smtps:// is TLS from the start
// and defaults to port 465. The sender defaults to parley@<this host's name>. Nothing is
// dialled until Send.
func New(smtpURL string) (*Mailer, error) { return NewWithOptions(smtpURL, Options{}) }

// NewWithOptions is New with Options.
func NewWithOptions(smtpURL string, opts Options) (*Mailer, error) {
	u, err := url.Parse(strings.TrimSpace(smtpURL))
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("alert: SMTP URL: %w", err)
	}
	m := &Mailer{policy: mail.TLSOpportunistic, timeout: opts.Timeout}
	switch u.Scheme {
	case "smtp":
		m.port = 25
	case "smtps":
		m.port, m.implicit = 465, true
	default:
		return nil, fmt.Errorf("alert: SMTP URL scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return nil, errors.New("alert: SMTP URL: only smtp://[user:pass@]host:port[?from=...&starttls=...] is understood")
	}
	if m.host = u.Hostname(); m.host == "" {
		return nil, errors.New("alert: SMTP URL has no host")
	}
	if p := u.Port(); p != "" {
		if m.port, err = strconv.Atoi(p); err != nil || m.port < 1 || m.port > 65535 {
			return nil, fmt.Errorf("alert: SMTP URL port %q is not a port number", p)
		}
	}
	if u.User != nil {
		m.user = u.User.Username()
		m.pass, _ = u.User.Password()
		m.hasAuth = m.user != ""
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("alert: SMTP URL query: %w", err)
	}
	for key := range q {
		if key != "from" && key != "starttls" {
			return nil, fmt.Errorf("alert: SMTP URL: unknown parameter %q (want from or starttls)", key)
		}
	}
	if q.Has("starttls") {
		if m.implicit {
			return nil, errors.New("alert: SMTP URL: starttls does not apply to smtps, which is TLS from the start")
		}
		switch q.Get("starttls") {
		case "no":
			m.policy = mail.NoTLS
		case "opportunistic":
			m.policy = mail.TLSOpportunistic
		case "mandatory":
			m.policy = mail.TLSMandatory
		default:
			return nil, fmt.Errorf("alert: SMTP URL: starttls=%q: want no, opportunistic or mandatory", q.Get("starttls"))
		}
	}
	if q.Has("from") {
		m.from = q.Get("from")
		if _, err := netmail.ParseAddress(m.from); err != nil {
			return nil, fmt.Errorf("alert: SMTP URL: from=%q is not an email address: %w", m.from, err)
		}
	} else {
		m.from = defaultFrom()
	}

	if opts.TLSConfig != nil {
		m.tlsConfig = opts.TLSConfig.Clone()
	} else {
		m.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if m.tlsConfig.ServerName == "" {
		m.tlsConfig.ServerName = m.host
	}
	if m.timeout <= 0 {
		m.timeout = DefaultTimeout
	}
	return m, nil
}

// defaultFrom is parley@<hostname>, or parley@localhost when the host name would not make
// an address.
func defaultFrom() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		from := "parley@" + h
		if _, err := netmail.ParseAddress(from); err == nil {
			return from
		}
	}
	return "parley@localhost"
}

// From returns the sender address mail is sent from.
func (m *Mailer) From() string { return m.from }

// Send mails a plain-text message to every address in to, in one SMTP transaction. A
// recipient the server refuses makes the whole send fail, and nothing is sent.
func (m *Mailer) Send(ctx context.Context, to []string, subject, body string) error {
	if len(to) == 0 {
		return errors.New("alert: no recipients")
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(m.from); err != nil {
		return fmt.Errorf("alert: sender %q: %w", m.from, err)
	}
	if err := msg.To(to...); err != nil {
		return fmt.Errorf("alert: recipients: %w", err)
	}
	msg.SetUserAgent("Parley")
	// A header value with a line break could start a header of its own (a Bcc, say).
	msg.Subject(strings.Join(strings.Fields(subject), " "))
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, body)

	// A client per send: go-mail's client keeps the connection in it, and the LOGIN
	// mechanism keeps its progress, so one shared client would not be safe to share.
	client, err := m.client()
	if err != nil {
		return fmt.Errorf("alert: SMTP client for %s:%d: %w", m.host, m.port, err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("alert: sending to %s via %s:%d: %w", strings.Join(to, ", "), m.host, m.port, err)
	}
	return nil
}

func (m *Mailer) client() (*mail.Client, error) {
	opts := []mail.Option{
		mail.WithPort(m.port),
		mail.WithTimeout(m.timeout),
		mail.WithTLSConfig(m.tlsConfig.Clone()),
	}
	if m.implicit {
		opts = append(opts, mail.WithSSL())
	} else {
		opts = append(opts, mail.WithTLSPolicy(m.policy))
	}
	if m.hasAuth {
		opts = append(opts, mail.WithSMTPAuthCustom(&plainOrLogin{user: m.user, pass: m.pass, host: m.host}))
	}
	return mail.NewClient(m.host, opts...)
}

// plainOrLogin authenticates with PLAIN, or with LOGIN when the server offers only that,
// which is what submission servers support between them. Both refuse to send the
// password over a connection that is neither TLS nor to localhost.
type plainOrLogin struct {
	user, pass, host string
	chosen           smtp.Auth
}

func (a *plainOrLogin) Start(server *smtp.ServerInfo) (string, []byte, error) {
	switch {
	case slices.Contains(server.Auth, "PLAIN"):
		a.chosen = smtp.PlainAuth("", a.user, a.pass, a.host, false)
	case slices.Contains(server.Auth, "LOGIN"):
		a.chosen = smtp.LoginAuth(a.user, a.pass, a.host, false)
	default:
		return "", nil, fmt.Errorf("the server offers neither PLAIN nor LOGIN authentication (it offers %s)", strings.Join(server.Auth, ", "))
	}
	return a.chosen.Start(server)
}

func (a *plainOrLogin) Next(fromServer []byte, more bool) ([]byte, error) {
	if a.chosen == nil {
		return nil, errors.New("authentication was not started")
	}
	return a.chosen.Next(fromServer, more)
}
