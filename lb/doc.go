// Package lb sends origin requests to a sharded set of origin servers.
//
// A Pool sends a request with a routing key (Pool.Do and Pool.Send; the
// key passed by the caller, or, empty, the request's scheme, host and
// request URI, which is what its http.RoundTripper method uses), asks a
// ketama consistent-hash ring (package lb/ketama) which shards own that key
// in ring order, and sends the request to the first available one. The same key therefore always reaches the same origin shard,
// which keeps origin-side caches warm, and adding a shard only moves the keys
// that the new shard takes over. That is the default balancing policy;
// Config.Policy picks another.
//
// # Balancing policies
//
// A policy (a Selector, select.go and select_policies.go) orders the shards
// eligible for a request (neither down nor ejected; all of them in panic
// mode): the first is tried first, the rest are the order of retries.
//
//   - "ketama" (the default), for caching sites: ring order from the key,
//     so a key stays on one shard and that shard's cache stays warm. With
//     Config.HashBalanceFactor c (consistent hashing with bounded loads,
//     Mirrokni, Thorup and Zadimoghaddam 2017; HAProxy's and Envoy's
//     hash_balance_factor), no shard takes a request that would bring its
//     in-flight requests above ceil(c × the mean over the eligible shards,
//     this request included), scaled by its weight. The overflow jumps to
//     the owner of a ring position derived from the key and the attempt,
//     until one has room, then walks the ring: a hot shard's keys spread
//     over the other shards instead of all landing on its ring successor
//     and overloading it in turn, and each key overflows to the same place
//     every time. Retries after the first choice stay in ring order. Off by
//     default: under steady uniform load in-flight counts fluctuate, and at
//     c = 1.25 3 to 22% of requests left their key's shard in
//     BenchmarkBoundedLoadLocality (docs/architecture.md); set it for sites
//     with hot keys.
//   - "round_robin": nginx's smooth weighted round robin, exact over a
//     cycle and interleaved (weights 5, 1, 1 give a a b a c a a).
//   - "least_conn": the fewest requests in flight for the weight, this one
//     included, ties broken at random.
//   - "p2c_ewma", for pass-through and API sites: of two eligible shards
//     drawn at random, the one with the lower latency EWMA × (in-flight + 1)
//     for its weight, as Finagle's and Linkerd's balancers. The EWMA
//     (Upstream.Latency) is of time to response headers, peak-sensitive: a
//     slow shard costs more at once and gets little traffic until it is
//     fast again.
//
// The weighted policies scale a shard's weight by its slow-start share
// (Upstream.Share). Retries in the last three follow the policy's ranking
// after the first pick. Config.Selector plugs in a policy of one's own
// (see ExampleSelector; SelectorFunc adapts a function). Selection runs on
// every miss and allocates nothing for pools of up to 64 shards
// (BenchmarkSelect).
//
// # Health and failover
//
// Passive health lives on the shard as atomic values: no background
// goroutine runs for it, and a shard becomes eligible again when its time
// passes. A shard is marked down for Config.DownFor when a connection to
// it cannot be established.
//
// Outlier detection (Config.Outlier, outlier.go; on by default) counts each
// shard's gateway failures in a row: a connection that cannot be established,
// an error before the response headers (reset, timeout), or a 502, 503 or 504
// response; any other response resets the count, and a request the caller
// cancelled counts neither way. At Outlier.ConsecutiveFailures (5) the shard
// is ejected for Outlier.BaseEjection (30s), twice the previous ejection for
// a repeat within Outlier.MaxEjection (300s), which caps it. At most
// Outlier.MaxEjectedPercent (50%) of the shards are ejected at once. The
// defaults are Envoy's outlier_detection defaults, except the cap (Envoy's
// 10% would eject nothing in a site of a few shards; 50% is Envoy's panic
// threshold) and slow start.
//
// Active health checks (Config.HealthCheck, health.go; off unless
// enabled) send each shard a GET or HEAD of a path, with a chosen Host
// header, every HealthCheck.Interval (5s, ± 15% jitter), each bounded by
// HealthCheck.Timeout (2s). A check passes when a status in
// HealthCheck.ExpectedStatus ("200-399") comes back; HealthCheck.Fall (3)
// failures in a row take the shard out of picks and HealthCheck.Rise (2)
// passes in a row bring it back (HAProxy's rise and fall). One goroutine
// per shard runs the checks; Pool.Close cancels them and waits for the
// goroutines. Shards start healthy, so a new pool (at start or at a
// reload) serves at once, and until a shard has passed a check one failure
// takes it out (HAProxy's default init-state). Checks have connections of
// their own, one per check, with the pool's TLS settings: each connects
// and handshakes as a new request connection would, and none counts in
// the reuse metrics.
//
// Picks walk the ring from the key and skip shards that are down, ejected
// or failing health checks; when none is left, all are tried in ring order
// (panic mode), so a site is never failed by its health state alone. After
// an ejection, or after its health checks pass again, a shard is in slow
// start for Outlier.SlowStart (30s): its share ramps linearly from 10% to
// 100%, and it takes a key it owns only when a hash of the key, independent of
// the ring's, as a fraction of the hash space, is below its share; otherwise
// it comes after the other available shards. Consistent hashing has no weights
// to ramp, so the share is of keys rather than of requests; the accepted keys
// only grow during the window, so each key moves back once and stays.
//
// # Retries
//
// Within a request, a replayable request moves to the next shard in ring
// order (the policy's order, for the other policies) after a try that
// failed in a way another shard likely would not.
// Replayable means an idempotent method (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE; RFC 9110, 9.2.2; cache fills are GETs) with no body or a body
// recreatable through Request.GetBody: a body that cannot be replayed, and
// a POST or PATCH, are never sent twice once they may have reached an origin.
//
// A dial failure (refused, connect timeout) always moves on, to every
// candidate if need be, and costs nothing: the origin never saw the request,
// so it adds no load. A connection reset or closed before any response
// (retry.go), no response headers within Config.ResponseHeaderTimeout (each
// try's own first-byte timeout), and with Retry.OnStatus a 502, 503 or 504
// answer may each have cost the origin work, so those retries are bounded
// twice: Retry.Max per request (2), and a retry budget per pool, Finagle's
// and Envoy's guard against retry storms: retries over a sliding
// Retry.BudgetWindow (10s) stay within Retry.BudgetPercent (20%) of the
// requests, or Retry.MinPerSecond (10) a second if that is more, so a quiet
// pool can still retry. With the budget spent, the outcome in hand (the
// error, or the gateway answer) is returned. Nothing is retried once the
// caller's context is done, and any other error or answer is returned as
// is. Every try, retried or not, feeds outlier detection.
//
// # Circuit breaking
//
// Each shard has limits (breaker.go): requests waiting for a connection to
// it (Config.MaxPendingPerShard, 1024), requests it serves at once, from
// the start of a try until the response body is read or closed
// (Config.MaxInFlightPerShard, 1024; Upstream.InFlight), and its
// connections (Config.MaxConnsPerShard, no limit by default; at the limit
// the transport queues a request, and the pool cuts that wait at
// DialTimeout + TLSHandshakeTimeout). A try over a limit is not sent: it
// never reached the origin, so the request moves on to the next candidate
// whatever its method, as after a dial failure, without counting as a
// failure of the shard or drawing on the retry budget (a connection wait
// that was cut moves only a replayable request on: the connection may have
// come at the last moment). When every candidate is over a limit, Do fails
// at once with an error wrapping ErrOverloaded, never queueing. The
// defaults are Envoy's circuit-breaker defaults, per shard.
//
// # Timeouts
//
// Each try has a timeout per phase (timeouts.go): connecting
// (Config.DialTimeout, 5s), the TLS handshake (Config.TLSHandshakeTimeout,
// 10s), the response headers once the request is written
// (Config.ResponseHeaderTimeout, 15s: the per-try first-byte timeout,
// after which a replayable request is retried), and each read of the
// response body (Config.BodyIdleTimeout, 60s: a read that gets no bytes for
// that long fails with a *BodyIdleError, and the connection is closed). The
// whole of an exchange is the caller's to bound, through the request's
// context. A shard that accepts connections and never answers thus costs a
// request it owns one ResponseHeaderTimeout, then the next shard answers it,
// until Outlier.ConsecutiveFailures such timeouts eject it.
//

// # Requests
//
// The Pool clones each request and replaces only the URL's scheme and host by
// the shard's. Request.Host, the path and the query are kept, so the caller
// decides the Host header the origin sees. Each shard has its own
// http.Transport (keep-alive, no proxy, compression left as the origin sent
// it), so connection limits and idle pools are per shard. Config.Protocol
// picks what the transport speaks: "http1" (the default) HTTP/1.1 only, "h2"
// HTTP/2 over TLS when the shard offers it in ALPN and HTTP/1.1 otherwise,
// "h2c" HTTP/2 with prior knowledge over cleartext (for gRPC origins).
//
// # Connections
//
// Each shard has its own transport, and every connection it dials is
// tracked (conns.go): dials and TLS handshakes by result, open
// connections, and for HTTP/1 whether a request is using each one (httptrace
// GotConn acquires, PutIdleConn releases). Config.MaxIdleConnsPerShard
// zero (the default) sizes the idle pool by use: the transport's cap is a
// ceiling (1024, or MaxConnsPerShard) and a trimmer per pool, stopped by
// Close, closes every 10s the least recently used idle connections above
// the peak in use over the last minute plus a quarter, so concurrency
// above a fixed cap does not close and redial connections. A request that
// takes a connection as it is trimmed writes nothing on it, and the
// transport retries it on another.
//
// Config.Previous hands a running pool to its replacement (a reload): the
// new pool takes over the transport, and the open connections, of each
// shard whose name, URL and transport settings are unchanged, and the old
// pool's Close leaves them open. A shard whose name and URL are unchanged
// keeps its health (down, ejected, slow start) whatever the settings.
//
// # Responses
//
// A response is returned with the fields the origin sent and no others.
// Go's HTTP/1 client adds "Cache-Control: no-cache" to a response that has
// "Pragma: no-cache" and no Cache-Control; the pool's HTTP/1 connections
// note each response head's raw field names (rawhead.go, for which the pool
// does TLS handshakes itself) and the pool removes that field exactly when
// the origin did not send it.
//
// Do returns how it routed the request as a value (Route: the shard that
// answered, or with an error the last one tried, and the number tried); Send
// returns the shard's name alone, which is the cache.Origin seam through
// which the cache and the edge reach origins. Nothing travels in the
// request's context.
//
// # Origin TLS
//
// Config.TLS configures TLS to a pool's https shards from names and files:
// the server name sent as SNI and verified (default: each shard's host),
// a PEM CA bundle that replaces the system roots (not added to them), a
// client certificate and key for origins that require mutual TLS, the
// lowest version (TLS 1.2 unless set to 1.3), and InsecureSkipVerify,
// which the daemon warns about at every start and reload. NewPool reads
// the files, and refuses a bad one with a *TLSFileError naming the field
// and file; CheckTLS runs the same checks without a pool. The settings are
// applied over Config.TLSClientConfig, the Go API's base configuration.
// With Protocol "h2" each connection offers h2 and http/1.1 by ALPN. A
// failed handshake is not a dial error (the shard was reached, and with
// one setting for the pool another shard would most likely fail alike):
// it is returned, naming the address and the server name checked, with no
// failover (unless the shard broke the handshake off or it timed out:
// retried as above), and counts as a gateway failure for outlier ejection,
// with reason "tls_error".
//
// # Metrics
//
// Metrics, created once with NewMetrics and shared by pools through
// Config.Metrics, counts attempts by status code, new and reused connections
// (through net/http/httptrace), time to response headers, failovers, the
// up/down state of each shard, outlier ejections by reason, the ejected
// state of each shard, retries by reason, retries the budget refused,
// requests bounded loads sent past their key's shard, each shard's pending
// and in-flight requests and circuit-breaker trips by limit, health checks
// by result and the health of each checked shard.
//
// Connections (conns.go) are counted too: dials and TLS handshakes by
// result, open and idle connections per shard, the idle pool's target size
// and the idle connections the trimmer closed.
package lb
