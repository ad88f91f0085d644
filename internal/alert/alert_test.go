package alert

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// delivery is one message the test server accepted.
type delivery struct {
	from string
	to   []string
	data []byte
	user string // who authenticated, if anyone
	tls  bool   // whether the message came over TLS
}

// backend is an in-process SMTP server's store.
type backend struct {
	users       map[string]string // user → password; nil: no AUTH offered
	requireAuth bool
	refuse      string // a recipient to refuse

	mu   sync.Mutex
	got  []delivery
	seen int // MAIL commands, accepted or not
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if b.users != nil {
		return &authSession{session{b: b, conn: c}}, nil
	}
	return &session{b: b, conn: c}, nil
}

func (b *backend) deliveries() []delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

type session struct {
	b    *backend
	conn *smtp.Conn
	user string
	cur  delivery
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	s.b.seen++
	s.b.mu.Unlock()
	if s.b.requireAuth && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = delivery{from: from, user: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.b.refuse {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.b.mu.Lock()
	s.b.got = append(s.b.got, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = delivery{} }
func (s *session) Logout() error { return nil }

// authSession offers PLAIN.
type authSession struct{ session }

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *authSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if want, ok := s.b.users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

type serverMode int

const (
	plainText   serverMode = iota // no TLS at all
	startTLS                      // STARTTLS offered
	implicitTLS                   // TLS from the first byte (smtps)
)

// startServer runs an SMTP server on 127.0.0.1 for the test and returns its port.
func startServer(t *testing.T, be *backend, mode serverMode, cert tls.Certificate) int {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.ErrorLog = testLogger{t}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	var l net.Listener
	var err error
	switch mode {
	case implicitTLS:
		l, err = tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	case startTLS:
		srv.TLSConfig = tlsConf
		fallthrough
	default:
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // Close misses a listener that Serve has not registered yet
		<-done
	})
	return l.Addr().(*net.TCPAddr).Port
}

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("smtp server: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"smtp server:"}, v...)...) }

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "parley test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// parsed is the part of a received message the tests look at.
type parsed struct {
	subject, body, date, messageID, contentType string
	bcc                                         bool
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reading the message: %v\n%s", err, data)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(msg.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return parsed{
		subject: subject, body: strings.ReplaceAll(string(b), "\r\n", "\n"),
		date: msg.Header.Get("Date"), messageID: msg.Header.Get("Message-Id"),
		contentType: msg.Header.Get("Content-Type"), bcc: len(msg.Header["Bcc"]) > 0,
	}
}

func TestSend(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	trust := Options{TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Timeout: 5 * time.Second}
	const from = "alerts@example.com"
	to := []string{"ops@example.com", "dev@example.org"}
	tests := []struct {
		name     string
		mode     serverMode
		be       *backend
		url      string // %d is the port
		wantUser string
		wantTLS  bool
		wantErr  string // a fragment of the error, "" for success
	}{
		{name: "plain text, no auth", mode: plainText, be: &backend{},
			url: "smtp://127.0.0.1:%d?from=" + from + "&starttls=no"},
		{name: "opportunistic STARTTLS without STARTTLS on offer", mode: plainText, be: &backend{},
			url: "smtp://127.0.0.1:%d?from=" + from},
		{name: "opportunistic STARTTLS upgrades", mode: startTLS, be: &backend{},
			url: "smtp://127.0.0.1:%d?from=" + from + "&starttls=opportunistic", wantTLS: true},
		{name: "mandatory STARTTLS", mode: startTLS, be: &backend{},
			url: "smtp://127.0.0.1:%d?from=" + from + "&starttls=mandatory", wantTLS: true},
		{name: "mandatory STARTTLS not on offer", mode: plainText, be: &backend{},
			url: "smtp://127.0.0.1:%d?from=" + from + "&starttls=mandatory", wantErr: "STARTTLS"},
		{name: "smtps", mode: implicitTLS, be: &backend{},
			url: "smtps://127.0.0.1:%d?from=" + from, wantTLS: true},
		{name: "PLAIN auth on localhost", mode: plainText,
			be:  &backend{users: map[string]string{"ada": "p@ss word"}, requireAuth: true},
			url: "smtp://ada:p%%40ss%%20word@127.0.0.1:%d?from=" + from + "&starttls=no", wantUser: "ada"},
		{name: "PLAIN auth over STARTTLS", mode: startTLS,
			be:  &backend{users: map[string]string{"ada": "secret"}, requireAuth: true},
			url: "smtp://ada:secret@127.0.0.1:%d?from=" + from + "&starttls=mandatory", wantUser: "ada", wantTLS: true},
		{name: "wrong password", mode: plainText,
			be:  &backend{users: map[string]string{"ada": "secret"}, requireAuth: true},
			url: "smtp://ada:nope@127.0.0.1:%d?from=" + from + "&starttls=no", wantErr: "AUTH"},
		{name: "no credentials where the server wants them", mode: plainText,
			be:  &backend{users: map[string]string{"ada": "secret"}, requireAuth: true},
			url: "smtp://127.0.0.1:%d?from=" + from + "&starttls=no", wantErr: "authenticate"},
		{name: "credentials where the server offers no AUTH", mode: plainText, be: &backend{},
			url: "smtp://ada:secret@127.0.0.1:%d?from=" + from + "&starttls=no", wantErr: "neither PLAIN nor LOGIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			port := startServer(t, tt.be, tt.mode, cert)
			m, err := NewWithOptions(fmt.Sprintf(tt.url, port), trust)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			body := "The http step \"crm\" failed: HTTP 503 Service Unavailable.\nÜmlauts and a long line " + strings.Repeat("x", 100) + "\n"
			err = m.Send(context.Background(), to, "Parley alert: crm failed", body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Send error = %v, want one mentioning %q", err, tt.wantErr)
				}
				if got := tt.be.deliveries(); len(got) != 0 {
					t.Errorf("a message was delivered: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := tt.be.deliveries()
			if len(got) != 1 {
				t.Fatalf("%d deliveries, want 1", len(got))
			}
			d := got[0]
			if d.from != from || !slices.Equal(d.to, to) {
				t.Errorf("envelope from %q to %q, want %q to %q", d.from, d.to, from, to)
			}
			if d.user != tt.wantUser || d.tls != tt.wantTLS {
				t.Errorf("user %q tls %v, want %q %v", d.user, d.tls, tt.wantUser, tt.wantTLS)
			}
			p := parse(t, d.data)
			if p.subject != "Parley alert: crm failed" || p.body != body {
				t.Errorf("subject %q body %q", p.subject, p.body)
			}
			if !strings.HasPrefix(p.contentType, "text/plain") {
				t.Errorf("content type %q", p.contentType)
			}
			if _, err := netmail.ParseDate(p.date); err != nil {
				t.Errorf("Date %q: %v", p.date, err)
			}
			if !strings.HasPrefix(p.messageID, "<") || !strings.Contains(p.messageID, "@") {
				t.Errorf("Message-ID %q", p.messageID)
			}
		})
	}
}

func TestSendRefusedRecipient(t *testing.T) {
	t.Parallel()
	cert, _ := selfSigned(t)
	be := &backend{refuse: "gone@example.com"}
	port := startServer(t, be, plainText, cert)
	m, err := New(fmt.Sprintf("smtp://127.0.0.1:%d?starttls=no&from=alerts@example.com", port))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(context.Background(), []string{"ok@example.com", "gone@example.com"}, "s", "b")
	if err == nil {
		t.Fatal("Send succeeded with a refused recipient")
	}
	if !strings.Contains(err.Error(), "gone@example.com") || !strings.Contains(err.Error(), "550") {
		t.Errorf("error %q does not say which recipient was refused and why", err)
	}
	if got := be.deliveries(); len(got) != 0 {
		t.Errorf("delivered: %+v", got)
	}
}

func TestSendHeaderInjection(t *testing.T) {
	t.Parallel()
	cert, _ := selfSigned(t)
	be := &backend{}
	port := startServer(t, be, plainText, cert)
	m, err := New(fmt.Sprintf("smtp://127.0.0.1:%d?starttls=no&from=alerts@example.com", port))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), []string{"ops@example.com"}, "down\r\nBcc: evil@example.net", "b"); err != nil {
		t.Fatal(err)
	}
	got := be.deliveries()
	if len(got) != 1 || !slices.Equal(got[0].to, []string{"ops@example.com"}) {
		t.Fatalf("deliveries %+v", got)
	}
	if p := parse(t, got[0].data); p.bcc || p.subject != "down Bcc: evil@example.net" {
		t.Errorf("subject %q, Bcc header present: %v", p.subject, p.bcc)
	}
}

func TestSendArguments(t *testing.T) {
	t.Parallel()
	m, err := New("smtp://127.0.0.1:1?starttls=no")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		to   []string
	}{
		{"no recipients", nil},
		{"bad recipient", []string{"not an address"}},
	}
	for _, tt := range tests {
		if err := m.Send(context.Background(), tt.to, "s", "b"); err == nil {
			t.Errorf("%s: Send succeeded", tt.name)
		}
	}
	// Nothing listens on port 1: the dial error must surface.
	err = m.Send(context.Background(), []string{"ops@example.com"}, "s", "b")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Send to a closed port: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Send(ctx, []string{"ops@example.com"}, "s", "b"); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a canceled context: %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url                 string
		wantHost            string
		wantPort            int
		wantFrom            string
		wantImplicit        bool
		wantUser, wantPass  string
		wantPolicyIsNoTLS   bool
		wantPolicyMandatory bool
	}{
		{url: "smtp://mail.example.com", wantHost: "mail.example.com", wantPort: 25, wantFrom: "parley@" + host},
		{url: "smtp://mail.example.com:587?from=alerts@example.com&starttls=mandatory", wantHost: "mail.example.com",
			wantPort: 587, wantFrom: "alerts@example.com", wantPolicyMandatory: true},
		{url: "smtp://u%40x:p%3Aw@mail.example.com:2525/?starttls=no", wantHost: "mail.example.com", wantPort: 2525,
			wantFrom: "parley@" + host, wantUser: "u@x", wantPass: "p:w", wantPolicyIsNoTLS: true},
		{url: "smtps://mail.example.com", wantHost: "mail.example.com", wantPort: 465, wantFrom: "parley@" + host, wantImplicit: true},
		{url: "smtps://[::1]:4650?from=Parley%20Alerts%20%3Calerts@example.com%3E", wantHost: "::1", wantPort: 4650,
			wantFrom: "Parley Alerts <alerts@example.com>", wantImplicit: true},
	}
	for _, tt := range tests {
		m, err := New(tt.url)
		if err != nil {
			t.Errorf("New(%q): %v", tt.url, err)
			continue
		}
		if m.host != tt.wantHost || m.port != tt.wantPort || m.From() != tt.wantFrom || m.implicit != tt.wantImplicit ||
			m.user != tt.wantUser || m.pass != tt.wantPass || m.hasAuth != (tt.wantUser != "") {
			t.Errorf("New(%q) = host %q port %d from %q implicit %v user %q pass %q", tt.url, m.host, m.port, m.from, m.implicit, m.user, m.pass)
		}
		if tt.wantPolicyIsNoTLS != (m.policy.String() == "NoTLS") || tt.wantPolicyMandatory != (m.policy.String() == "TLSMandatory") {
			t.Errorf("New(%q): policy %s", tt.url, m.policy)
		}
		if m.tlsConfig.ServerName != tt.wantHost {
			t.Errorf("New(%q): TLS server name %q", tt.url, m.tlsConfig.ServerName)
		}
	}
}

func TestNewBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"",
		"mail.example.com:25",
		"http://mail.example.com",
		"smtp://",
		"smtp://:25",
		"smtp://mail.example.com:0",
		"smtp://mail.example.com:70000",
		"smtp://mail.example.com:port",
		"smtp://mail.example.com/path",
		"smtp://mail.example.com?starttls=maybe",
		"smtp://mail.example.com?starttls=",
		"smtp://mail.example.com?from=not-an-address",
		"smtp://mail.example.com?form=alerts@example.com",
		"smtps://mail.example.com?starttls=no",
		"smtp://user:pa ss@mail example.com",
		"smtp://user:secret@mail.example.com:25%",
	} {
		m, err := New(u)
		if err == nil {
			t.Errorf("New(%q) = %+v, want an error", u, m)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pa ss") {
			t.Errorf("New(%q): the error shows the password: %v", u, err)
		}
	}
}
