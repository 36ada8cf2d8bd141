package lb

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"
)

// shard is one origin server: its address, its own transport (so idle
// connections and limits are per shard) and its health as atomic state.
type shard struct {
	name   string
	weight int    // 1 or more
	scheme string // "http" or "https"
	host   string // host[:port]

	transport *http.Transport
	conns     *connStats    // the transport's connections (conns.go)
	metrics   *shardMetrics // nil when the pool has no Metrics

	// handedOver is set when a newer pool took over the transport
	// (Config.Previous): this pool's Close leaves its connections open.
	handedOver atomic.Bool

	// downUntil is the unix-nano time before which picks skip the shard;
	// zero or past means available.
	downUntil atomic.Int64

	// inflight counts requests from the start of a try until its response
	// body is read to its end or closed (Upstream.InFlight).
	inflight atomic.Int64

	// latency is the peak EWMA of time to response headers
	// (Upstream.Latency, the "p2c_ewma" policy).
	latency peakEWMA

	// pending counts tries waiting for a connection: from their start
	// until the transport hands them one (httptrace GotConn) or they end.
	pending atomic.Int64

	limits   limits        // circuit breaking (breaker.go)
	bodyIdle time.Duration // Config.BodyIdleTimeout; 0 means none
	// health is the shard's active health (health.go); nil when the pool
	// has no health checks.
	health *healthState
}

// parseShardURL checks a Shard.URL: scheme http or https, a host, and no path
// beyond "/", query, fragment or user info.
func parseShardURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("no host")
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("path %q not allowed", u.Path)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("query not allowed")
	case u.Fragment != "":
		return nil, fmt.Errorf("fragment not allowed")
	case u.User != nil:
		return nil, fmt.Errorf("user info not allowed")
	}
	return u, nil
}

// newTransport builds the transport of one shard from a validated config with
// defaults applied. Its HTTP/1 connections are rawHeadConns (rawhead.go), so
// that the Cache-Control Go invents can be told from the origin's; for that
// it does the TLS handshake itself, offering the ALPN protocols the
// transport would. Every connection it dials is tracked in cs (conns.go),
// which counts dials and handshakes. With cfg.MaxIdleConnsPerShard zero
// (auto) its idle cap is the ceiling and the pool's trimmer sizes the idle
// pool.
func newTransport(cfg *Config, cs *connStats) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	maxHead := cmp.Or(cfg.MaxResponseHeaderBytes, 64<<10)
	var protos http.Protocols
	alpn := []string{"http/1.1"}
	switch cfg.Protocol {
	case "h2":
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
		alpn = []string{"h2", "http/1.1"}
	case "h2c":
		protos.SetUnencryptedHTTP2(true)
	default:
		protos.SetHTTP1(true)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := cs.dialed(dialer.DialContext(ctx, network, addr))
		if err != nil {
			return nil, err // not a nil *trackedConn in a non-nil net.Conn
		}
		return c, nil
	}
	var dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	if cfg.Protocol != "h2c" { // HTTP/2 invents nothing: h2c connections stay as dialled
		limit := int(maxHead) + 4096 // the transport fails a longer head anyway
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := cs.dialed(dialer.DialContext(ctx, network, addr))
			if err != nil {
				return nil, err
			}
			c.setHTTP1()
			rc := newRawHeadConn(c, limit)
			rc.track = c
			return rc, nil
		}
		dialTLS = func(ctx context.Context, network, addr string) (net.Conn, error) {
			tc, track, err := dialTLSShard(ctx, dialer, cs, cfg.TLSClientConfig, cfg.TLSHandshakeTimeout, alpn, network, addr)
			if err != nil || tc.ConnectionState().NegotiatedProtocol == "h2" {
				return tc, err // HTTP/2 needs the *tls.Conn itself
			}
			track.setHTTP1()
			rc := newRawHeadConn(tc, limit)
			rc.track = track
			return rc, nil
		}
	}
	idleCap := cfg.MaxIdleConnsPerShard
	if idleCap == 0 {
		idleCap = maxIdleCeiling
		if cfg.MaxConnsPerShard > 0 {
			idleCap = min(idleCap, cfg.MaxConnsPerShard)
		}
	}
	return &http.Transport{
		Protocols:              &protos,
		Proxy:                  nil,
		DialContext:            dial,
		DialTLSContext:         dialTLS,
		TLSClientConfig:        cfg.TLSClientConfig, // used only where dialTLS is nil (h2c)
		MaxIdleConns:           idleCap,
		MaxIdleConnsPerHost:    idleCap,
		MaxConnsPerHost:        cfg.MaxConnsPerShard,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout, // used only where dialTLS is nil (h2c)
		ExpectContinueTimeout:  1 * time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHead,
	}
}

// dialTLSShard connects to addr and completes a TLS handshake offering the
// ALPN protocols alpn within timeout. base (nil: the system roots) is cloned; its
// ServerName defaults to addr's host. A dial error is returned as the
// dialer's (a *net.OpError "dial": failover applies), a handshake error
// wrapped with the address and the name verified (not a dial error: the
// shard was reached), so that the log line of a failed request says which
// name was checked against which shard. The TCP connection is tracked in cs,
// which counts the dial and the handshake, and is returned with the TLS one.
func dialTLSShard(ctx context.Context, d *net.Dialer, cs *connStats, base *tls.Config, timeout time.Duration, alpn []string, network, addr string) (*tls.Conn, *trackedConn, error) {
	raw, err := cs.dialed(d.DialContext(ctx, network, addr))
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	cfg.NextProtos = alpn
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = tc.HandshakeContext(hctx)
	cs.m.handshake(err)
	if err != nil {
		raw.Close()
		return nil, nil, &tlsError{fmt.Errorf("TLS handshake with %s (server name %q): %w", addr, cfg.ServerName, err)}
	}
	return tc, raw, nil
}

// tlsError is a failed TLS handshake with a shard: the "tls_error" reason
// of outlier detection. Whether it is retried is decided by what it wraps
// (retryReason): a reset or a timeout is, a verification failure is not.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// available reports whether picks at time now may use the shard.
func (s *shard) available(now time.Time) bool {
	return now.UnixNano() >= s.downUntil.Load()
}

// markDown makes picks skip the shard until until. It reports whether the
// shard was available at now, that is whether this call took it down.
func (s *shard) markDown(now, until time.Time) bool {
	old := s.downUntil.Swap(until.UnixNano())
	return now.UnixNano() >= old
}

// roundTrip sends a clone of req, with body as its body and ctx (req's
// context, or a child carrying the try's span) as its context, to the
// shard; traced sends ctx's span context to the origin (traceparent). A
// try over one of the shard's limits is not sent: it fails at once with an
// *overLimitError (breaker.go).
func (s *shard) roundTrip(ctx context.Context, req *http.Request, body io.ReadCloser, traced bool) (*http.Response, error) {
	if lim := s.acquire(); lim != "" {
		return nil, &overLimitError{shard: s.name, limit: lim}
	}
	pd := &pendingDone{pending: &s.pending}
	// The try's own context, cancelled when it ends, for the timeouts
	// the transport has none for: the connection wait at
	// MaxConnsPerShard and body idle (timeouts.go).
	cancel := context.CancelCauseFunc(func(error) {})
	if s.limits.connWait > 0 || s.bodyIdle > 0 {
		ctx, cancel = context.WithCancelCause(ctx)
	}
	var connWait *time.Timer
	if s.limits.connWait > 0 {
		connWait = time.AfterFunc(s.limits.connWait, func() {
			if pd.done.CompareAndSwap(false, true) {
				s.pending.Add(-1)
				cancel(&overLimitError{shard: s.name, limit: limitConnections})
			}
		})
	}
	// The connection the response comes from, to read its raw head
	// (rawhead.go). A ClientTrace is composed in place by
	// WithClientTrace, so each request needs its own.
	// The HTTP/1 connection's use is tracked (conns.go): GotConn acquires
	// it, and PutIdleConn, called from the transport's read loop, releases
	// the acquisition it answers.
	var conn atomic.Pointer[rawHeadConn]
	var use atomic.Pointer[connUse]
	sm := s.metrics
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			pd.end()
			if connWait != nil {
				connWait.Stop()
			}
			if c, ok := info.Conn.(*rawHeadConn); ok {
				conn.Store(c)
				if c.track != nil {
					use.Store(&connUse{c: c.track, gen: c.track.acquire()})
				}
			}
			if sm != nil {
				sm.gotConn(info.Reused)
			}
		},
		PutIdleConn: func(err error) {
			if u := use.Load(); u != nil && err == nil {
				u.c.release(u.gen, time.Now())
			}
		},
	})
	out := req.Clone(ctx)
	out.Body = body
	if traced {
		injectTrace(ctx, out.Header)
	}
	out.URL.Scheme = s.scheme
	out.URL.Host = s.host
	// out.Host stays as the caller set it: the caller decides the Host header.

	start := time.Now()
	resp, err := s.transport.RoundTrip(out)
	pd.end()
	if connWait != nil {
		connWait.Stop()
	}
	if err != nil {
		var ol *overLimitError
		if errors.As(context.Cause(ctx), &ol) {
			err = ol
		}
		cancel(nil)
		s.inflight.Add(-1)
		s.metrics.error()
		return nil, err
	}
	rb := resp.Body
	if _, upgraded := rb.(io.Writer); !upgraded && s.bodyIdle > 0 {
		rb = newIdleBody(rb, ctx, cancel, s.name, s.bodyIdle)
	}
	resp.Body = trackBody(rb, &s.inflight, cancel)
	took := time.Since(start)
	s.latency.observe(took, start.Add(took))
	s.metrics.response(resp.StatusCode, took)
	if c := conn.Load(); c != nil && resp.ProtoMajor == 1 {
		undoInventedCacheControl(resp, c.head())
	}
	return resp, nil
}

// trackBody wraps a response body so that the shard's in-flight count drops
// and the try's context is cancelled once, when the body is read to its
// end, fails, or is closed. A body that is also an io.Writer (a 101
// Switching Protocols connection) stays one.
func trackBody(b io.ReadCloser, inflight *atomic.Int64, cancel context.CancelCauseFunc) io.ReadCloser {
	if w, ok := b.(io.Writer); ok {
		return &trackedRWBody{trackedBody: trackedBody{ReadCloser: b, inflight: inflight, cancel: cancel}, w: w}
	}
	return &trackedBody{ReadCloser: b, inflight: inflight, cancel: cancel}
}

type trackedBody struct {
	io.ReadCloser
	inflight *atomic.Int64
	cancel   context.CancelCauseFunc
	done     atomic.Bool
}

func (b *trackedBody) finish() {
	if b.done.CompareAndSwap(false, true) {
		b.inflight.Add(-1)
		b.cancel(nil)
	}
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.finish()
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.finish()
	return err
}

type trackedRWBody struct {
	trackedBody
	w io.Writer
}

func (b *trackedRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
