package edge

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// ServerConfig holds the client-facing connection limits. Zero values take
// the defaults given per field.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's header; zero means 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; zero
	// means none.
	ReadTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next
	// request; zero means 120 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits a request header's size; zero means 64 KiB.
	MaxHeaderBytes int
	// ErrorLog receives net/http's connection errors; nil discards them.
	ErrorLog *slog.Logger
	// Metrics, when set, counts connections closed before they carried a
	// request (slow or idle clients cut off by the header-read timeout,
	// port scanners).
	Metrics *Metrics
	// H2C accepts HTTP/2 with prior knowledge on cleartext connections
	// (gRPC clients without TLS). HTTP/2 over TLS is always offered.
	H2C bool
}

// StrictConfig configures the strict HTTP/1 request reader that Listen puts
// in front of net/http (package edge/strict).
type StrictConfig = strict.Config

// Listen wraps ln so that every connection's requests pass the strict
// HTTP/1 framing checks of edge/strict before net/http parses them:
// ambiguous framing (Content-Length with Transfer-Encoding, obs-fold, bare
// LF, ...) is answered 400 and the connection closed. Serve the result with
// a server from NewServer, which tells the reader about protocol switches.
func Listen(ln net.Listener, cfg StrictConfig) net.Listener { return strict.NewListener(ln, cfg) }

// NewServer returns an *http.Server running h with cfg's limits. Writes are
// bounded per write by the Handler (Config.WriteTimeout), not for the whole
// response, so that large bodies to healthy clients are not cut off.
func NewServer(h http.Handler, cfg ServerConfig) *http.Server {
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = slog.New(slog.DiscardHandler)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(cfg.H2C)
	return &http.Server{
		Protocols: &protos,
		// HTTP/2 limits: at most 250 concurrent streams per connection
		// (the header list is bounded by MaxHeaderBytes, and net/http's own
		// rapid-reset protection stays on).
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 250},
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         strict.ConnState(countUnused(cfg.Metrics)), // hijacked connections leave the strict reader
		ConnContext:       connContext,                                // TLS state of strict-wrapped TLS connections
		ErrorLog:          slog.NewLogLogger(cfg.ErrorLog.Handler(), slog.LevelWarn),
	}
}

// countUnused returns a ConnState hook counting connections closed without
// ever becoming active, or nil.
func countUnused(m *Metrics) func(net.Conn, http.ConnState) {
	if m == nil {
		return nil
	}
	var used sync.Map // net.Conn → struct{}: carried a request
	return func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateActive: // once per request: store only the first time
			if _, seen := used.Load(c); !seen {
				used.Store(c, struct{}{})
			}
		case http.StateClosed, http.StateHijacked:
			if _, ok := used.LoadAndDelete(c); !ok && st == http.StateClosed {
				m.unused.Inc()
			}
		}
	}
}
