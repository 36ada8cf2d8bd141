package lb

import (
	"cmp"
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
	scheme string // "http" or "https"
	host   string // host[:port]

	transport *http.Transport
	metrics   *shardMetrics // nil when the pool has no Metrics

	// downUntil is the unix-nano time before which picks skip the shard;
	// zero or past means available.
	downUntil atomic.Int64
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
// defaults applied.
func newTransport(cfg *Config) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	switch cfg.Protocol {
	case "h2":
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
	case "h2c":
		protos.SetUnencryptedHTTP2(true)
	default:
		protos.SetHTTP1(true)
	}
	return &http.Transport{
		Protocols:              &protos,
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		MaxIdleConns:           cfg.MaxIdleConnsPerShard,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerShard,
		MaxConnsPerHost:        cfg.MaxConnsPerShard,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  1 * time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: cmp.Or(cfg.MaxResponseHeaderBytes, 64<<10),
	}
}

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

// roundTrip sends a clone of req, with body as its body, to the shard.
func (s *shard) roundTrip(req *http.Request, body io.ReadCloser) (*http.Response, error) {
	ctx := req.Context()
	if s.metrics != nil {
		// A ClientTrace is composed in place by WithClientTrace, so each
		// request needs its own.
		sm := s.metrics
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { sm.gotConn(info.Reused) },
		})
	}
	out := req.Clone(ctx)
	out.Body = body
	out.URL.Scheme = s.scheme
	out.URL.Host = s.host
	// out.Host stays as the caller set it: the caller decides the Host header.

	start := time.Now()
	resp, err := s.transport.RoundTrip(out)
	if err != nil {
		s.metrics.error()
		return nil, err
	}
	s.metrics.response(resp.StatusCode, time.Since(start))
	return resp, nil
}
