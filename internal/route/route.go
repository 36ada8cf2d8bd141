// Package route carries request-scoped routing data across the
// http.RoundTripper seam between edge/cache (which decide the ring key) and
// lb (which picks and reports the origin shard). It is the one typed context
// value edged uses besides cancellation and deadlines.
package route

import "context"

// Route is filled in by the caller (Key) and by the origin pool (Shard,
// Attempts). A Route belongs to one request; it is not safe for concurrent
// use by two requests.
type Route struct {
	// Key is the consistent-hash key choosing the shard. Empty means the
	// pool derives one from the request URL.
	Key string
	// Shard is set by the pool to the shard that answered (or was last tried).
	Shard string
	// Attempts is set by the pool to the number of shards tried.
	Attempts int
}

type ctxKey struct{}

// With returns a copy of ctx carrying r.
func With(ctx context.Context, r *Route) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// From returns the Route carried by ctx, or nil.
func From(ctx context.Context) *Route {
	r, _ := ctx.Value(ctxKey{}).(*Route)
	return r
}
