package lb

import (
	"context"
	"errors"
	"io"
	"time"
)

// Timeouts by phase of one try (each try has its own):
//
//	connect          Config.DialTimeout (5s): the TCP connection
//	TLS handshake    Config.TLSHandshakeTimeout (10s): https shards
//	connection wait  DialTimeout + TLSHandshakeTimeout, only at MaxConnsPerShard (breaker.go)
//	first byte       Config.ResponseHeaderTimeout (15s): request written → response headers
//	body idle        Config.BodyIdleTimeout (60s): one body read making no progress
//
// The whole of a cache fill is bounded by the cache's fill timeout, outside
// this package; a pass-through response is bounded only by these, so a
// long download that keeps moving is never cut.

// Timeout defaults, applied by NewPool to zero fields. TLS handshake: Go's
// http.DefaultTransport. Body idle: nginx's proxy_read_timeout and
// Varnish's between_bytes_timeout.
const (
	defaultTLSHandshakeTimeout = 10 * time.Second
	defaultBodyIdleTimeout     = 60 * time.Second
)

// BodyIdleError is the error a response body read returns when the origin
// sent no body bytes for Config.BodyIdleTimeout. It is a net.Error whose
// Timeout is true. The response was cut short: callers must not keep (or
// cache) what was read.
type BodyIdleError struct {
	// Shard is the shard whose body stalled.
	Shard string
	// Idle is the timeout that passed, Config.BodyIdleTimeout.
	Idle time.Duration
}

func (e *BodyIdleError) Error() string {
	return "lb: shard " + e.Shard + ": no response body bytes for " + e.Idle.String()
}

// Timeout reports true: the origin was too slow.
func (e *BodyIdleError) Timeout() bool { return true }

// Temporary reports false (net.Error).
func (e *BodyIdleError) Temporary() bool { return false }

// idleBody fails a response body read that makes no progress for idle: a
// timer armed for the length of each Read cancels the try's context with
// a *BodyIdleError as its cause, which makes the transport close the
// connection (HTTP/1) or reset the stream (HTTP/2) and the Read return.
// Time spent between Reads (a slow client not reading) does not count.
type idleBody struct {
	io.ReadCloser
	ctx   context.Context
	timer *time.Timer
	idle  time.Duration
}

func newIdleBody(b io.ReadCloser, ctx context.Context, cancel context.CancelCauseFunc, shard string, idle time.Duration) *idleBody {
	t := time.AfterFunc(time.Hour, func() { cancel(&BodyIdleError{Shard: shard, Idle: idle}) })
	t.Stop()
	return &idleBody{ReadCloser: b, ctx: ctx, timer: t, idle: idle}
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		var ie *BodyIdleError
		if cause := context.Cause(b.ctx); errors.As(cause, &ie) {
			err = ie
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}
