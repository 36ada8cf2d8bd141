// Package conformance holds edged's black-box HTTP caching conformance
// suite. Its tests build a real edge (edge.Handler over a cache.Cache and an
// lb.Pool) in front of a scripted origin that records every request it
// receives, drive it with a plain HTTP client and check the behaviour
// RFC 9111 (HTTP Caching), RFC 9110 §13 and §15 (conditional requests and
// status codes), RFC 5861 (stale-while-revalidate and stale-if-error),
// RFC 9213 (targeted cache-control fields) and RFC 9211 (Cache-Status)
// require of a shared cache, plus the choices edged makes where the RFCs
// leave one.
//
// Every test case names the RFC section it enforces. Time is moved with the
// cache's injectable clock (cache.Config.Now), never by sleeping: the origin
// stamps its Date header from the same fake clock, so ages and freshness are
// exact to the second.
//
// The package has no non-test code; run it with
//
//	go test -race ./conformance/
package conformance
