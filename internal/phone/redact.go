package phone

import (
	"context"
	"log/slog"
)

// Mask hides all but the last 4 digits of a phone number or channel user id
// ("+919876543210" → "+********3210"), keeping its shape for whoever reads a log.
// Characters other than digits stay; up to 4 digits are all hidden.
func Mask(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits++
		}
	}
	keep := 4
	if digits <= keep {
		keep = 0
	}
	b := []byte(s)
	for i := range b {
		if isDigit(b[i]) && digits > keep {
			b[i] = '*'
			digits--
		}
	}
	return string(b)
}

// minRedacted is the shortest run of digits Redact treats as a phone number: shorter
// runs are counts, ids and ports.
const minRedacted = 7

// Redact masks, in free text such as an error message, every run of at least 7 digits
// that stands alone — not part of a word, a UUID or an identifier (no letter, "-" or "_"
// next to it) — keeping its last 4 digits. Phone numbers and channel user ids end up
// in error strings ("upsert user 919876543210: ...") and paths; run ids do not change.
func Redact(s string) string {
	var b []byte // allocated on the first change
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isDigit(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			if i-start >= minRedacted && standsAlone(s, start, i) {
				if b == nil {
					b = []byte(s)
				}
				for j := start; j < i-4; j++ {
					b[j] = '*'
				}
			}
			start = -1
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

func standsAlone(s string, start, end int) bool {
	return (start == 0 || !wordByte(s[start-1])) && (end == len(s) || !wordByte(s[end]))
}

func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// RedactingHandler wraps h so that every log line's message, string values and error
// values pass through Redact: a phone number that reaches a log line by any path — a
// wrapped store error, a provider's refusal, a request path — is masked there.
func RedactingHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(redacting); ok {
		return h
	}
	return redacting{h}
}

type redacting struct{ h slog.Handler }

func (r redacting) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redacting) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redacting) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(a)
	}
	return redacting{r.h.WithAttrs(out)}
}

func (r redacting) WithGroup(name string) slog.Handler { return redacting{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = redactAttr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Redact(x.Error()))
		case string:
			return slog.String(a.Key, Redact(x))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
