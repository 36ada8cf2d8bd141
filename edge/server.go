package edge

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-proxy/edged/edge/h1"
	"github.com/edged-proxy/edged/edge/strict"
)

// ServerConfig holds the client-facing connection limits. Zero values take
// the defaults given per field.
type ServerConfig struct {
	// HTTP1 chooses the HTTP/1 server: HTTP1Edged (the default, edged's own
	// connection loop, package edge/h1) or HTTP1NetHTTP (net/http behind the
	// strict reader). HTTP/2 is net/http's either way.
	HTTP1 string
	// Strict holds the strict HTTP/1 reader's limits and its rejection
	// callback (package edge/strict).
	Strict StrictConfig
	// ReadHeaderTimeout bounds reading a request's header; zero means 10 s.
	// It also bounds a TLS handshake.
	ReadHeaderTimeout time.Duration
	// FirstByteTimeout bounds how long a new connection may send nothing
	// before its first request begins; zero means 5 s. It is what makes a
	// silent connection go sooner than a slow one. At or above
	// ReadHeaderTimeout it adds nothing: ReadHeaderTimeout bounds the
	// first head from the connection's start either way.
	FirstByteTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; zero
	// means none.
	ReadTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next
	// request; zero means 120 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits a request header's size; zero means 64 KiB.
	MaxHeaderBytes int
	// ErrorLog receives the servers' connection errors and handler panics;
	// nil discards them.
	ErrorLog *slog.Logger
	// Metrics, when set, counts connections closed before they carried a
	// request (slow or idle clients cut off by the header-read timeout,
	// port scanners).
	Metrics *Metrics
	// H2C accepts HTTP/2 with prior knowledge on cleartext connections
	// (gRPC clients without TLS). HTTP/2 over TLS is always offered.
	H2C bool
	// Peer makes this the peer listener's server of a PoP node
	// (Config.Cluster): its requests are the other nodes' peer fetches,
	// answered on the general path.
	Peer bool
}

// The values of ServerConfig.HTTP1.
const (
	HTTP1Edged   = "edged"
	HTTP1NetHTTP = "net/http"
)

// StrictConfig configures the strict HTTP/1 request reader (package
// edge/strict).
type StrictConfig = strict.Config

// Listen wraps ln so that every connection's requests pass the strict
// HTTP/1 framing checks of edge/strict before net/http parses them:
// ambiguous framing (Content-Length with Transfer-Encoding, obs-fold, bare
// LF, ...) is answered 400 and the connection closed. Serve the result with
// a server from NewHTTPServer, which tells the reader about protocol
// switches.
func Listen(ln net.Listener, cfg StrictConfig) net.Listener { return strict.NewListener(ln, cfg) }

// Server serves the edge's client connections: HTTP/1 on edged's own loop
// (edge/h1) or on net/http behind the strict reader, as ServerConfig.HTTP1
// says, and HTTP/2 (ALPN h2, or prior knowledge with H2C) on net/http.
type Server struct {
	cfg  ServerConfig
	std  *http.Server // HTTP/2; HTTP/1 too with HTTP1NetHTTP
	loop *h1.Server   // nil with HTTP1NetHTTP
	h2   *connQueue   // connections the loop hands to std
}

// NewServer returns a server running h with cfg's limits. Writes are
// bounded per write by the Handler (Config.WriteTimeout), not for the whole
// response, so that large bodies to healthy clients are not cut off.
func NewServer(h http.Handler, cfg ServerConfig) (*Server, error) {
	cfg.ReadHeaderTimeout = cmp.Or(cfg.ReadHeaderTimeout, 10*time.Second)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, 120*time.Second)
	cfg.MaxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, cfg.Strict.MaxHeaderBytes, 64<<10)
	cfg.Strict.MaxHeaderBytes = cfg.MaxHeaderBytes
	cfg.Strict.FirstByteTimeout = cmp.Or(cfg.FirstByteTimeout, cfg.Strict.FirstByteTimeout, 5*time.Second)
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, std: NewHTTPServer(h, cfg)}
	switch cfg.HTTP1 {
	case "", HTTP1Edged:
	case HTTP1NetHTTP:
		return s, nil
	default:
		return nil, fmt.Errorf("edge: unknown HTTP/1 server %q (want %q or %q)", cfg.HTTP1, HTTP1Edged, HTTP1NetHTTP)
	}
	s.h2 = newConnQueue()
	s.loop = &h1.Server{
		Handler:           h,
		Strict:            cfg.Strict,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		Logger:            cfg.ErrorLog,
		ConnContext:       contextFor(cfg.Peer),
		HTTP2:             s.h2.push,
	}
	s.loop.Strict.AllowH2C = cfg.H2C
	if f, ok := h.(h1.Fast); ok && !cfg.Peer { // the edge's Handler: cache hits answered in the loop
		s.loop.Fast = f
	}
	if m := cfg.Metrics; m != nil {
		s.loop.Unused = m.unused.Inc
	}
	go s.std.Serve(s.h2) // returns when Shutdown closes the queue
	return s, nil
}

// Serve serves the cleartext connections of ln until it fails or Shutdown
// is called (then it returns http.ErrServerClosed).
func (s *Server) Serve(ln net.Listener) error {
	if s.loop == nil {
		return s.std.Serve(Listen(ln, s.strict(false)))
	}
	return s.loop.Serve(ln)
}

// ServeTLS terminates TLS on ln's connections with cfg and serves them as
// Serve does; ALPN chooses between HTTP/2 and HTTP/1.1. Each handshake is
// bounded by ReadHeaderTimeout.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	if s.loop == nil {
		return s.std.Serve(ListenTLS(ln, cfg, s.strict(true), s.cfg.ReadHeaderTimeout))
	}
	return s.loop.Serve(listenTLS(ln, cfg, s.cfg.ReadHeaderTimeout, s.cfg.Strict.FirstByteTimeout, nil))
}

// strict is the reader's configuration for net/http's HTTP/1: prior
// knowledge passes through only on cleartext connections with H2C.
func (s *Server) strict(overTLS bool) StrictConfig {
	sc := s.cfg.Strict
	sc.AllowH2C = s.cfg.H2C && !overTLS
	return sc
}

// Shutdown stops the server gracefully: listeners close, connections not
// in a request close at once (idle ones, and those that have not finished
// a first request head, under either HTTP/1 server), and requests in
// flight finish (their responses close their connections) until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.loop == nil {
		return s.std.Shutdown(ctx)
	}
	return errors.Join(s.loop.Shutdown(ctx), s.std.Shutdown(ctx))
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	if s.loop == nil {
		return s.std.Close()
	}
	s.h2.Close()
	return errors.Join(s.loop.Close(), s.std.Close())
}

// NewHTTPServer returns the *http.Server that serves HTTP/2 (and, with
// HTTP1NetHTTP, HTTP/1 behind a listener from Listen or ListenTLS) with
// cfg's limits. Its Shutdown closes at once the strict-wrapped
// connections that have not begun a request.
func NewHTTPServer(h http.Handler, cfg ServerConfig) *http.Server {
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
	waiting := &waitingConns{}
	srv := &http.Server{
		Protocols: &protos,
		// HTTP/2 limits: at most 250 concurrent streams per connection
		// (the header list is bounded by MaxHeaderBytes, and net/http's own
		// rapid-reset protection stays on).
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 250},
		Handler:           withTLS(h),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         strict.ConnState(waiting.track(countUnused(cfg.Metrics))), // hijacked connections leave the strict reader
		ConnContext:       contextFor(cfg.Peer),                                      // TLS state of strict-wrapped TLS connections
		ErrorLog:          slog.NewLogLogger(cfg.ErrorLog.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(waiting.shutdown)
	return srv
}

// waitingConns are the open HTTP/1 connections of a net/http server, so
// that Shutdown can close at once those that have not begun a request
// (strict.Conn.CloseWaiting): net/http counts a connection that has sent
// no request as busy for its first 5 s, which held the shutdown of an
// idle edged that long.
type waitingConns struct {
	conns    sync.Map // *strict.Conn → struct{}, from StateNew to closed or hijacked
	shutting atomic.Bool
}

// track returns a ConnState hook that keeps the set, then calls next
// (which may be nil).
func (w *waitingConns) track(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		if sc, ok := c.(*strict.Conn); ok {
			switch st {
			case http.StateNew:
				w.conns.Store(sc, struct{}{})
				if w.shutting.Load() { // accepted as Shutdown began
					sc.CloseWaiting()
				}
			case http.StateClosed, http.StateHijacked:
				w.conns.Delete(sc)
			}
		}
		if next != nil {
			next(c, st)
		}
	}
}

// shutdown closes the connections that have not begun a request; it runs
// when Shutdown has closed the listeners.
func (w *waitingConns) shutdown() {
	w.shutting.Store(true)
	w.conns.Range(func(c, _ any) bool {
		c.(*strict.Conn).CloseWaiting()
		return true
	})
}

// withTLS restores Request.TLS for requests that arrived over a TLS
// connection the strict reader wraps (net/http sees no *tls.Conn there).
func withTLS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		restoreTLS(r, connOf(r))
		h.ServeHTTP(w, r)
	})
}

// connQueue is a listener whose connections are pushed to it: the HTTP/2
// connections edged's HTTP/1 loop hands to net/http.
type connQueue struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the server accepting on q, or closes it once q is
// closed.
func (q *connQueue) push(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return queueAddr{} }

type queueAddr struct{}

func (queueAddr) Network() string { return "edged-h2" }
func (queueAddr) String() string  { return "edged-h2" }

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
