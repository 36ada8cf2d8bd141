// Package sampleorigin is the small origin edged starts on a loopback port
// when no origin is configured, so that a fresh install serves something
// that shows the cache at work.
package sampleorigin

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// maxBytes caps /bytes/N.
const maxBytes = 64 << 20

// Handler serves the sample site. Its zero value is not usable; use New.
type Handler struct {
	mux     *http.ServeMux
	started time.Time
	hits    atomic.Int64
}

// New returns the sample origin's handler.
func New() *Handler {
	h := &Handler{mux: http.NewServeMux(), started: time.Now().UTC().Truncate(time.Second)}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /time", h.time)
	h.mux.HandleFunc("GET /bytes/{n}", h.bytes)
	h.mux.HandleFunc("GET /private", h.fixed("private, max-age=60", "personal content: never served from the shared cache\n"))
	h.mux.HandleFunc("GET /nostore", h.fixed("no-store", "no-store content: never stored\n"))
	h.mux.HandleFunc("GET /stats", h.stats)
	h.mux.HandleFunc("/", http.NotFound)
	return h
}

// ServeHTTP counts the request and serves it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.hits.Add(1)
	w.Header().Set("Server", "edged-sample-origin")
	h.mux.ServeHTTP(w, r)
}

const indexPage = `<!doctype html>
<html><head><title>edged</title></head>
<body>
<h1>edged is running</h1>
<p>This page comes from edged's built-in sample origin, through the cache.
Fetch it twice and compare the <code>Cache-Status</code> and <code>Age</code> headers:
the first answer is a miss, the next ones are hits for 60 seconds.</p>
<ul>
<li><a href="/time">/time</a>: the origin's clock, fresh for 5 s</li>
<li><a href="/bytes/1024">/bytes/N</a>: N deterministic bytes, fresh for 5 min</li>
<li><a href="/private">/private</a> and <a href="/nostore">/nostore</a>: never shared</li>
<li><a href="/stats">/stats</a>: how many requests reached the origin (no-store)</li>
</ul>
<p>Configure a real origin with <code>edged -origin http://host:port</code> or <code>edged -config edged.yaml</code>.</p>
</body></html>
`

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("ETag", `"index-v1"`)
	w.Header().Set("Last-Modified", h.started.Format(http.TimeFormat))
	fmt.Fprint(w, indexPage)
}

func (h *Handler) time(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=5")
	fmt.Fprintf(w, "origin time: %s\n", time.Now().UTC().Format(time.RFC3339Nano))
}

func (h *Handler) bytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > maxBytes {
		http.Error(w, fmt.Sprintf("n must be an integer from 0 to %d", maxBytes), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	buf := make([]byte, min(n, 32<<10))
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	for n > 0 {
		k := min(n, len(buf))
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

func (h *Handler) fixed(cc, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", cc)
		fmt.Fprint(w, body)
	}
}

func (h *Handler) stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "origin requests: %d\n", h.hits.Load())
}
