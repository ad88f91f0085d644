package console

// The web console itself: the single-page app that web/ builds with Vite into dist/,
// embedded in the binary so that serving it needs no Node and loads nothing from
// elsewhere at run time. The bundle is committed; .ci/run rebuilds it and fails when the
// committed one differs from the sources.

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// Prefix is the path the console is served under; the bundle's URLs assume it.
const Prefix = "/console/"

// contentTypes fixes the types of what Vite emits, rather than leaving them to the
// host's MIME tables.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".json":  "application/json",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// csp allows the app's own files and API and nothing else: no inline script, no
// third-party origin, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// immutable is the cache policy of hashed assets: their name changes with their content.
const immutable = "public, max-age=31536000, immutable"

type file struct {
	body  []byte
	gz    []byte // nil when compressing does not pay
	etag  string // of body; the gzip variant's ends in -gz
	ctype string
}

// bundle is the embedded files by path under dist/, read on first use.
type bundle struct {
	once  sync.Once
	files map[string]*file
	err   error
}

func (b *bundle) load() (map[string]*file, error) {
	b.once.Do(func() {
		b.files = map[string]*file{}
		b.err = fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := dist.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			f := &file{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: contentType(p)}
			f.gz = compress(body)
			b.files[strings.TrimPrefix(p, "dist/")] = f
			return nil
		})
	})
	return b.files, b.err
}

func contentType(p string) string {
	ext := strings.ToLower(path.Ext(p))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// compress gzips text worth compressing; nil otherwise.
func compress(body []byte) []byte {
	if len(body) < 1024 {
		return nil
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	if buf.Len() >= len(body)*9/10 {
		return nil
	}
	return buf.Bytes()
}

// Static serves the bundle under /console/. A path naming a file serves that file:
// hashed assets (under assets/) with a year's immutable caching, others revalidated
// each time. A missing asset is a 404, so that a stale page never runs HTML as script.
// Any other path serves index.html, uncached, so the app's own routes (/console/runs/…)
// load the app.
func Static() http.Handler {
	b := &bundle{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files, err := b.load()
		if err != nil {
			http.Error(w, "the console bundle cannot be read", http.StatusInternalServerError)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		f, found := files[name]
		switch {
		case found && strings.HasPrefix(name, "assets/"):
			w.Header().Set("Cache-Control", immutable)
		case found && name != "index.html":
			w.Header().Set("Cache-Control", "no-cache")
		case strings.HasPrefix(name, "assets/"):
			http.NotFound(w, r)
			return
		default:
			f = files["index.html"]
			if f == nil {
				http.Error(w, "the console is not built into this binary", http.StatusNotFound)
				return
			}
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Referrer-Policy", "same-origin")
		}
		serve(w, r, f)
	})
}

func serve(w http.ResponseWriter, r *http.Request, f *file) {
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	body, etag := f.body, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
		}
	}
	h.Set("ETag", etag)
	// ServeContent answers conditional and range requests; with Content-Encoding set it
	// serves the compressed bytes as they are.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the request accepts gzip (and does not give it q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, param, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(param, " ", ""), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
