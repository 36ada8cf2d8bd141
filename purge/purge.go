// Package purge is edged's purge API: it resolves URLs, prefixes and tags to
// cache keys and asks every tier to drop them. It imports nothing of edged's;
// the cache satisfies the small interface declared here.
//
// Only the contract exists so far; the admin API, tags, soft purge and fleet
// propagation are issue 5.
package purge

// Invalidator removes stored objects. *cache.Cache satisfies it.
type Invalidator interface {
	// Invalidate removes every stored response under the primary cache key.
	Invalidate(key string)
}

// InvalidatorFunc adapts a function to Invalidator.
type InvalidatorFunc func(key string)

// Invalidate calls f(key).
func (f InvalidatorFunc) Invalidate(key string) { f(key) }
