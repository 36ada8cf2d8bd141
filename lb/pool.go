package lb

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edged-proxy/edged/lb/ketama"
)

// Shard describes one origin server of a pool.
type Shard struct {
	// Name identifies the shard on the ring, in Route.Shard and in metric
	// labels. Empty means the host[:port] of URL. Names must be unique
	// within a pool.
	Name string
	// URL is the origin's base address: scheme http or https, a host with
	// an optional port, and a path of "" or "/" only. For example
	// "http://127.0.0.1:8081". The request's path and query are kept.
	URL string
	// Weight scales the shard's share of keys. Zero or negative means 1.
	Weight int
}

// Config configures a Pool. The zero value of every field except Shards is
// usable; negative numbers and durations are rejected by NewPool.
type Config struct {
	// Name is the pool's name (the site); it labels the pool's metrics.
	Name string

	// Shards are the origin servers; at least one is required.
	Shards []Shard

	// MaxIdleConnsPerShard caps the idle keep-alive connections kept per
	// shard. Zero means auto (conns.go): the idle pool keeps what the
	// shard used at most over the last minute, plus a quarter, up to
	// MaxConnsPerShard when set and 1024, so that concurrency above a
	// fixed cap does not close and redial connections.
	MaxIdleConnsPerShard int

	// MaxConnsPerShard caps the connections (dialling, active and idle) per
	// shard; requests beyond it wait for a connection, for at most
	// DialTimeout + TLSHandshakeTimeout, and then move on to the next
	// shard (see ErrOverloaded). Zero means no limit.
	MaxConnsPerShard int

	// MaxPendingPerShard caps the requests waiting for a connection to a
	// shard (being dialled, in a TLS handshake, or queued at
	// MaxConnsPerShard); a request over it moves on to the next shard
	// without being sent (circuit breaking, breaker.go). Zero means 1024;
	// negative means no limit.
	MaxPendingPerShard int

	// MaxInFlightPerShard caps the requests a shard serves at once (from
	// the start of a try until its response body is read or closed;
	// Upstream.InFlight); a request over it moves on to the next shard
	// without being sent. Zero means 1024; negative means no limit.
	MaxInFlightPerShard int

	// IdleConnTimeout is how long an idle connection is kept. Zero means
	// 90s.
	IdleConnTimeout time.Duration

	// DialTimeout bounds establishing a TCP connection. Zero means 5s.
	DialTimeout time.Duration

	// TLSHandshakeTimeout bounds the TLS handshake with an https shard,
	// after the TCP connection. Zero means 10s.
	TLSHandshakeTimeout time.Duration

	// BodyIdleTimeout fails a response body read that gets no bytes from
	// the origin for this long, with a *BodyIdleError (timeouts.go); time
	// the caller spends between reads does not count. Not applied to a
	// 101 Switching Protocols connection. Zero means 60s; negative means
	// none.
	BodyIdleTimeout time.Duration

	// ResponseHeaderTimeout bounds the wait for an origin's response
	// headers once the request is written, per try: a replayable request
	// whose try times out is retried on the next shard (Retry). Zero means
	// 15s.
	ResponseHeaderTimeout time.Duration

	// DownFor is how long a shard whose dial failed is skipped by later
	// picks. Zero means 5s.
	DownFor time.Duration

	// Outlier configures passive outlier detection (outlier.go): shards
	// that fail several times in a row are ejected from picks for a while
	// and come back with slow start. The zero value is on with defaults.
	Outlier Outlier

	// Retry configures retries on the next shard after a try that may
	// have reached the origin (retry.go): bounded, and within a budget.
	// The zero value is on with defaults.
	Retry Retry

	// HealthCheck configures active health checks of the shards
	// (health.go): a request of its own to each shard every interval,
	// taking out of picks a shard that fails several in a row. The zero
	// value is off.
	HealthCheck HealthCheck

	// Protocol is how the pool talks to its shards: "" or "http1"
	// (HTTP/1.1 only), "h2" (HTTP/2 over TLS when the shard offers it,
	// else HTTP/1.1) or "h2c" (HTTP/2 with prior knowledge over cleartext,
	// for gRPC origins).
	Protocol string

	// MaxResponseHeaderBytes limits an origin response's header; a larger
	// one fails the request (502). Zero means 64 KiB.
	MaxResponseHeaderBytes int64

	// TLS configures TLS to https shards from names and files (server
	// name, CA bundle, client certificate, minimum version); see TLS. Its
	// set fields are applied over TLSClientConfig.
	TLS TLS

	// TLSClientConfig is the base TLS configuration of https shards, for
	// what TLS cannot say (a GetClientCertificate, a VerifyConnection);
	// the pool clones it, applies TLS, and sets NextProtos (by Protocol)
	// and, when still empty, ServerName (the shard's host). Nil means an
	// empty one: the system's roots.
	TLSClientConfig *tls.Config

	// Policy is the balancing policy, which orders the shards a request
	// is tried on (select.go, select_policies.go): "" or "ketama"
	// (consistent hashing of the routing key, for caching sites),
	// "round_robin" (smooth weighted round robin), "least_conn" (fewest
	// requests in flight for the weight) or "p2c_ewma" (the cheaper of two
	// random shards by latency EWMA × in-flight, for pass-through and API
	// sites). Selector, when set, replaces it.
	Policy string

	// HashBalanceFactor bounds the load of the "ketama" policy
	// (consistent hashing with bounded loads): no shard takes a request
	// that would bring its in-flight requests above ceil(factor × the
	// eligible shards' mean, this request included, scaled by weight); the
	// overflow goes to other shards. Zero means no bound; otherwise it
	// must be at least 1 (1.25 is a usual value). Other policies reject
	// it.
	HashBalanceFactor float64

	// Selector is a balancing policy of the Go API user's own; nil means
	// the one Policy names.
	Selector Selector

	// Metrics receives the pool's metrics. Nil means none are recorded.
	Metrics *Metrics

	// Previous is the pool this one replaces (a configuration reload), or
	// nil. NewPool takes over the transport, and so the open connections,
	// of each of its shards whose name and URL are unchanged when the
	// settings a transport is built from (Protocol, TLS and its files'
	// contents, TLSClientConfig, the timeouts and connection limits,
	// MaxResponseHeaderBytes, Name and Metrics) are too; Previous's Close
	// then leaves those connections open. A shard with the same name and
	// URL also keeps its health: marked down, ejected, slow start and
	// ejection history (takeover.go). Each shard is taken over once.
	Previous *Pool

	// Logger receives shard state changes. Nil means discard.
	Logger *slog.Logger

	// Now is the clock for the down and ejected states of shards, for
	// slow start and for the retry budget's window. Nil means time.Now.
	// Request durations are always measured with the real clock.
	Now func() time.Time
}

// Config defaults, applied by NewPool to zero fields.
const (
	defaultIdleConnTimeout       = 90 * time.Second
	defaultDialTimeout           = 5 * time.Second
	defaultResponseHeaderTimeout = 15 * time.Second
	defaultDownFor               = 5 * time.Second
)

// Pool is an http.RoundTripper that sends each request to one of a set of
// origin shards, chosen by its balancing policy (Config.Policy; by default
// consistent hashing of the request's key), and fails over to the next
// shard in the policy's order when a shard cannot be dialled, resets
// the connection or (optionally) answers 502/503/504, within a retry budget. It is
// safe for concurrent use. Its shard set is fixed; build a new Pool to change
// it.
type Pool struct {
	name    string
	ring    *ketama.Ring
	shards  []*shard          // config order
	byName  map[string]*shard // ring member name → shard
	ups     []*Upstream       // config order
	sel     Selector
	downFor time.Duration
	ejector *ejector
	retry   Retry
	budget  *retryBudget
	metrics *poolMetrics // nil when the pool has no Metrics
	now     func() time.Time
	logger  *slog.Logger
	health  *healthChecker // nil without Config.HealthCheck

	settings  transportSettings // what its shards' transports are built from
	stopTrim  chan struct{}     // closed by Close; nil without auto idle sizing
	closeOnce sync.Once
}

var _ http.RoundTripper = (*Pool)(nil)

// NewPool validates cfg, applies its defaults and builds the pool: one ketama
// ring over the shards and one http.Transport per shard. The transports speak
// HTTP/1.1, use no proxy and leave bodies compressed as the origin sent them.
func NewPool(cfg Config) (*Pool, error) {
	var err error
	if err = cfg.setDefaults(); err != nil {
		return nil, err
	}
	if len(cfg.Shards) == 0 {
		return nil, errors.New("lb: pool needs at least one shard")
	}
	p := &Pool{
		name:    cfg.Name,
		byName:  make(map[string]*shard, len(cfg.Shards)),
		downFor: cfg.DownFor,
		retry:   cfg.Retry,
		budget:  newRetryBudget(cfg.Retry, cfg.Now),
		metrics: cfg.Metrics.forPool(cfg.Name),
		now:     cfg.Now,
		logger:  cfg.Logger,
	}
	if p.settings, err = settingsOf(&cfg); err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.TLS.clientConfig(cfg.TLSClientConfig)
	if err != nil {
		return nil, err
	}
	cfg.TLSClientConfig = tlsCfg
	members := make([]ketama.Member, 0, len(cfg.Shards))
	for i, sc := range cfg.Shards {
		u, err := parseShardURL(sc.URL)
		if err != nil {
			return nil, fmt.Errorf("lb: shard %d (%q): bad URL %q: %w", i, sc.Name, sc.URL, err)
		}
		name := sc.Name
		if name == "" {
			name = u.Host
		}
		if _, dup := p.byName[name]; dup {
			return nil, fmt.Errorf("lb: shard %d: duplicate shard name %q", i, name)
		}
		s := &shard{name: name, weight: max(sc.Weight, 1), scheme: u.Scheme, host: u.Host,
			limits: newLimits(&cfg), bodyIdle: max(cfg.BodyIdleTimeout, 0)}
		p.byName[name] = s
		p.shards = append(p.shards, s)
		p.ups = append(p.ups, &Upstream{s: s, pool: p, index: i})
		members = append(members, ketama.Member{Name: name, Weight: sc.Weight})
	}
	p.ejector = newEjector(cfg.Outlier, cfg.Name, p.shards, cfg.Now, cfg.Logger)
	if cfg.HealthCheck.Enabled {
		for _, s := range p.shards {
			s.health = new(healthState)
		}
	}
	ring, err := ketama.New(members)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	p.ring = ring
	p.takeOver(cfg.Previous, &cfg) // gives every shard its transport
	for _, s := range p.shards {
		s.metrics = cfg.Metrics.forShard(cfg.Name, s, p.ejector, cfg.Now)
	}
	if cfg.MaxIdleConnsPerShard == 0 {
		p.stopTrim = make(chan struct{})
		go p.trimIdle(p.stopTrim)
	} else {
		for _, s := range p.shards {
			s.conns.m.target(int64(cfg.MaxIdleConnsPerShard))
		}
	}
	p.sel = newSelector(&cfg, ring, p.ups)
	p.health = startHealthChecks(&cfg, p.shards, p.ejector) // last: nothing fails after
	return p, nil
}

func (c *Config) setDefaults() error {
	switch c.Protocol {
	case "", "http1", "h2", "h2c":
	default:
		return fmt.Errorf("lb: Protocol must be http1, h2 or h2c, got %q", c.Protocol)
	}
	switch c.Policy {
	case "", policyKetama, policyRoundRobin, policyLeastConn, policyP2CEWMA:
	default:
		return fmt.Errorf("lb: unknown Policy %q (want ketama, round_robin, least_conn or p2c_ewma)", c.Policy)
	}
	switch f := c.HashBalanceFactor; {
	case f == 0:
	case !(f >= 1) || math.IsInf(f, 1):
		return fmt.Errorf("lb: HashBalanceFactor must be 0 (off) or at least 1, got %v", f)
	case c.Policy != "" && c.Policy != policyKetama:
		return fmt.Errorf("lb: HashBalanceFactor applies to the ketama policy only, not %q", c.Policy)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxIdleConnsPerShard", int64(c.MaxIdleConnsPerShard)},
		{"MaxConnsPerShard", int64(c.MaxConnsPerShard)},
		{"IdleConnTimeout", int64(c.IdleConnTimeout)},
		{"DialTimeout", int64(c.DialTimeout)},
		{"ResponseHeaderTimeout", int64(c.ResponseHeaderTimeout)},
		{"DownFor", int64(c.DownFor)},
		{"TLSHandshakeTimeout", int64(c.TLSHandshakeTimeout)},
	} {
		if f.v < 0 {
			return fmt.Errorf("lb: Config.%s is negative", f.name)
		}
	}
	if err := c.Outlier.setDefaults(); err != nil {
		return err
	}
	if err := c.Retry.setDefaults(); err != nil {
		return err
	}
	if err := c.HealthCheck.setDefaults(); err != nil {
		return err
	}
	if c.IdleConnTimeout == 0 {
		c.IdleConnTimeout = defaultIdleConnTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.ResponseHeaderTimeout == 0 {
		c.ResponseHeaderTimeout = defaultResponseHeaderTimeout
	}
	if c.DownFor == 0 {
		c.DownFor = defaultDownFor
	}
	c.setBreakerDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Pick returns the name of the shard the ring assigns to key, whether or not
// that shard is currently marked down or ejected.
func (p *Pool) Pick(key string) string {
	return p.ring.Lookup(key)
}

// CloseIdleConnections closes the idle connections of every shard, except
// shards whose transport a newer pool took over (Config.Previous). In-use
// connections are not interrupted.
func (p *Pool) CloseIdleConnections() {
	for _, s := range p.shards {
		if !s.handedOver.Load() {
			s.transport.CloseIdleConnections()
		}
	}
}

// Close retires the pool: it stops the pool's background work (the health
// checks, cancelling those in flight and waiting for their goroutines to
// end; the idle pool trimmer) and closes its idle connections, but not
// those of shards a newer pool took over (Config.Previous). Requests in
// flight finish; the pool stays usable, but a retired pool should not be
// given new requests. Close is idempotent.
func (p *Pool) Close() error {
	p.health.stop()
	p.closeOnce.Do(func() {
		if p.stopTrim != nil {
			close(p.stopTrim)
		}
		go p.drainIdle()
	})
	p.CloseIdleConnections()
	return nil
}

// drainIdle closes, after Close, the connections that requests in flight
// at Close return to the retired pool's idle pools, as each shard's
// requests finish, instead of leaving them open until the idle timeout.
// It gives up after retireDrain.
func (p *Pool) drainIdle() {
	t := time.NewTicker(retireTick)
	defer t.Stop()
	deadline := time.Now().Add(retireDrain)
	for range t.C {
		busy := false
		for _, s := range p.shards {
			if s.inflight.Load() > 0 {
				busy = true
			}
		}
		p.CloseIdleConnections()
		if !busy || time.Now().After(deadline) {
			return
		}
	}
}

// A retired pool's connections in use when it was closed are closed as
// they return, checked every retireTick for at most retireDrain.
const (
	retireTick  = 100 * time.Millisecond
	retireDrain = 2 * time.Minute
)

// trimIdle runs the idle pool trimmer of every shard each idleTick until
// stop is closed.
func (p *Pool) trimIdle(stop <-chan struct{}) {
	t := time.NewTicker(idleTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, s := range p.shards {
				s.conns.trim(now)
			}
		}
	}
}

// Route is how Pool.Do routed one request.
type Route struct {
	// Shard is the shard that answered, or with an error the last one
	// tried.
	Shard string
	// Attempts is the number of shards tried.
	Attempts int
}

// RoundTrip sends req to the shard owning its default key (see Do).
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := p.Do(req, "")
	return resp, err
}

// Send is Do reporting only the shard's name: the cache.Origin seam, by
// which the cache and the edge reach origins and learn which shard
// answered.
func (p *Pool) Send(req *http.Request, key string) (*http.Response, string, error) {
	resp, rt, err := p.Do(req, key)
	return resp, rt.Shard, err
}

// Do sends req to the shard owning key and returns that shard's response
// and how it was routed. An empty key means the Pool derives one from the
// request: req.URL.Scheme + "://" + req.Host + req.URL.RequestURI(), with
// req.URL.Host standing in for an empty req.Host. The request is cloned:
// its URL scheme and host are replaced by the shard's, while req.Host, the
// path and the query are kept.
//
// Shards marked down or ejected (see Config.Outlier) are skipped unless none
// is left, in which case all are tried in the policy's order; each try's
// outcome feeds outlier detection. A replayable request moves to the next
// shard in the policy's order (ring order for ketama) when a try fails in a way another shard may not (Config.Retry):
// the shard cannot be dialled (it is then marked down for Config.DownFor), the
// connection is reset or closed before any response, no response headers came
// within Config.ResponseHeaderTimeout (each try's own), or, with Retry.OnStatus,
// the shard answers 502, 503 or 504. Replayable means an idempotent method
// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE; RFC 9110, 9.2.2) and a body that is
// nil, http.NoBody or recreatable through req.GetBody, so a body that cannot
// be replayed is never sent twice. Dial failures move on to every candidate;
// other retries are bounded by Retry.Max and the retry budget, and when they
// run out the outcome in hand (an error or a gateway answer) is returned.
// Nothing is retried once req's context is done.
//
// A shard over a circuit-breaking limit (breaker.go) is skipped without
// being sent to, whatever the method; when every candidate is skipped so,
// Do fails at once with an error wrapping ErrOverloaded.
//
// When every try failed to dial, the last *DialError is returned; other
// errors are wrapped with the shard's name.
func (p *Pool) Do(req *http.Request, key string) (*http.Response, Route, error) {
	ctx := req.Context()
	if key == "" {
		key = defaultKey(req)
	}
	cands := p.candidates(key, req)
	replay := replayable(req)
	p.budget.request()

	var rt Route
	retries := 0
	sent := false // a try was sent, so req.Body was used
	var moved error
	for i, s := range cands {
		body := req.Body
		if sent && body != nil && body != http.NoBody {
			// The transport closed the previous try's body;
			// replayable guarantees GetBody is set.
			var err error
			if body, err = req.GetBody(); err != nil {
				return nil, rt, fmt.Errorf("lb: shard %s: recreating request body: %w", s.name, err)
			}
		}
		tctx, span := startTry(ctx, req, s, rt.Attempts)
		resp, err := s.roundTrip(tctx, req, body, span != nil)
		if span != nil {
			endTry(span, resp, err)
		}
		if lim := overLimit(err); lim != "" {
			// Circuit breaking (breaker.go): not sent, not the shard's
			// failure. A try that gave up waiting for a connection may
			// have had one at the last moment: only a replayable
			// request moves on from it.
			s.metrics.trip(lim)
			rt.Shard = s.name
			if lim != limitConnections || replay {
				continue
			}
			return nil, rt, fmt.Errorf("%w: %w", ErrOverloaded, err)
		}
		sent = true
		rt = Route{Shard: s.name, Attempts: rt.Attempts + 1}
		if reason, counted := gatewayFailure(ctx, resp, err); counted {
			p.ejector.record(s, reason)
		}
		why := retryReason(ctx, resp, err, p.retry.OnStatus)
		dial := why == reasonConnect
		if dial {
			p.markDown(s, err)
			err = &DialError{Shard: s.name, Err: err}
		} else if err != nil {
			err = fmt.Errorf("lb: shard %s: %w", s.name, err)
		}
		if why == "" || !replay || i == len(cands)-1 || !dial && !p.mayRetry(retries) {
			return resp, rt, err
		}
		if !dial {
			retries++
		}
		moved = err
		if resp != nil {
			moved = fmt.Errorf("lb: shard %s: answered %s", s.name, resp.Status)
			// Drain a little so the connection may be reused.
			io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		}
		if dial {
			s.metrics.failover()
		}
		p.metrics.retry(why)
	}
	// Every shard left was over its limits.
	err := fmt.Errorf("lb: pool %s: %w", p.name, ErrOverloaded)
	if moved != nil {
		err = fmt.Errorf("%w (after %w)", err, moved)
	}
	return nil, rt, err
}

// mayRetry reports whether one more retry after a try that may have reached
// an origin is allowed, retries having been made: within Retry.Max and the
// budget. An exhausted budget is counted.
func (p *Pool) mayRetry(retries int) bool {
	if retries >= p.retry.Max {
		return false
	}
	if !p.budget.withdraw() {
		p.metrics.budgetExhausted()
		return false
	}
	return true
}

// candidates returns the shards to try for key, in order: the policy's
// (Config.Policy or Config.Selector) over the eligible shards, neither down,
// ejected nor failing health checks, or over all of them when none is
// eligible (panic mode).
func (p *Pool) candidates(key string, req *http.Request) []*shard {
	ups := p.sel.Select(key, req, p.eligible(p.now()))
	out := make([]*shard, len(ups))
	for i, u := range ups {
		out[i] = u.s
	}
	if len(out) == 0 { // a Selector broke its contract: keep the request going
		out = append(out, p.shards...)
	}
	return out
}

func (p *Pool) markDown(s *shard, err error) {
	now := p.now()
	if s.markDown(now, now.Add(p.downFor)) {
		p.logger.Warn("upstream shard marked down",
			slog.String("pool", p.name), slog.String("shard", s.name),
			slog.Duration("down_for", p.downFor), slog.Any("error", err))
	}
}

// defaultKey is the ring key of a request without a Route key.
func defaultKey(req *http.Request) string {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return req.URL.Scheme + "://" + host + req.URL.RequestURI()
}

// isDialError reports whether err means no connection was established, so
// the request never reached the shard.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// replayable reports whether req may be sent to another shard after a dial
// failure: an idempotent method (RFC 9110, 9.2.2) and a body that is absent or
// can be recreated.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}
