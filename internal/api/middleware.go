package api

import (
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/internal/phone"
)

// httpMetrics counts requests and their latency per route pattern.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_http_requests_total",
			Help: "HTTP requests served, by route pattern, method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or other) and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// recorder remembers what a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument wraps the whole API: body limit, panic recovery (a logged 500 in the
// envelope, never a dropped connection), metrics and one log line per request.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		r.Body = http.MaxBytesReader(rec, r.Body, bodyLimit(r))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path,
					"panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					writeError(rec, internalError())
				}
				rec.status = http.StatusInternalServerError
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(route, metricMethod(r.Method), strconv.Itoa(rec.status)).Inc()
			s.metrics.latency.WithLabelValues(route).Observe(elapsed.Seconds())
			// A 503 is the server saying it is busy or stopping (a trigger not accepted in
			// time under a flood): worth a warning, not an error line per refusal.
			level := slog.LevelInfo
			switch {
			case rec.status == http.StatusServiceUnavailable:
				level = slog.LevelWarn
			case rec.status >= 500:
				level = slog.LevelError
			}
			if s.log.Enabled(r.Context(), level) {
				s.log.LogAttrs(r.Context(), level, "request",
					slog.String("method", logMethod(r.Method)),
					slog.String("path", logPath(r)),
					slog.String("query", redactQuery(r.URL.RawQuery)),
					slog.String("route", route),
					slog.Int("status", rec.status),
					slog.Duration("duration", elapsed),
					slog.String("remote", r.RemoteAddr))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// metricMethod bounds the method label: anyone can send any method, and every new
// label value is a new time series kept for good.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

// logMethod keeps an odd method readable in the log (and short).
func logMethod(m string) string {
	if metricMethod(m) != "other" {
		return m
	}
	return strconvQuote(m)
}

// logPath is the request path for the log line, with the channel user id (a phone
// number) masked.
func logPath(r *http.Request) string {
	p := r.URL.Path
	if r.Pattern == "" || !strings.Contains(r.Pattern, "{channelUserId}") {
		return p
	}
	if id := r.PathValue("channelUserId"); id != "" {
		p = strings.Replace(p, "/"+id+"/", "/"+phone.Mask(id)+"/", 1)
	}
	return p
}

// loggedQueryParams are the query parameters whose values are logged as they are;
// phone numbers are masked, and every other value (credentials, trigger attributes,
// attribute_value) is replaced by REDACTED, since it may be personal data or a secret.
var loggedQueryParams = map[string]bool{
	"wait": true, "wait_ms": true, "page_number": true, "page_size": true, "start_date": true, "end_date": true,
	"attribute_name": true, "user.channel": true, "user_channel": true, "hub.mode": true,
}

// redactQuery is the query string for the log line (see loggedQueryParams).
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "[unparsable query]"
	}
	for k, vs := range q {
		switch lk := strings.ToLower(k); {
		case loggedQueryParams[lk]:
		case lk == "user.phone_no" || lk == "user_phone_no":
			for i, v := range vs {
				vs[i] = phone.Mask(v)
			}
		default:
			q[k] = []string{"REDACTED"}
		}
	}
	return q.Encode()
}
