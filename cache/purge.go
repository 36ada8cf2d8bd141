package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/purge/selector"
)

// PurgeCounts is how many stored objects each kind of selector matched.
type PurgeCounts struct{ URLs, Prefixes, Tags, Hosts int }

// Purge removes (or, sel.Soft, marks stale) every stored object sel
// matches, in every tier. URLs and hosts are scheme-insensitive: content
// stored for http and for https goes alike; every Vary variant of a matched
// URL goes with it. When it returns nil the purge is durable: the disk
// tier's index no longer names hard-purged objects and records soft-purged
// ones as stale, so neither a restart nor a crash undoes it, and fills that
// were in flight when it began store nothing it matches.
func (c *Cache) Purge(ctx context.Context, sel selector.Selector) (PurgeCounts, error) {
	parsed, err := sel.Parse()
	if err != nil {
		return PurgeCounts{}, fmt.Errorf("cache: purge: %w", err)
	}
	found, err := c.remove(ctx, compileSelector(parsed))
	if err != nil {
		return PurgeCounts{}, fmt.Errorf("cache: purge: %w", err)
	}
	var n PurgeCounts
	for _, m := range found {
		n.add(m)
	}
	return n, nil
}

// Invalidate removes the stored response for key from every tier. A fill
// of key already in flight still answers its waiters but is not stored.
// Every Vary variant of key goes with it.
func (c *Cache) Invalidate(key string) {
	slices := c.sliceKeysOf(key) // before the disk tier forgets them
	if _, err := c.remove(context.Background(), &keySelector{urlKeys: []string{key}, keysOnly: true}); err != nil {
		c.warnDisk("invalidation failed", "key", key, "err", err)
	}
	c.invalidateSlices(slices)
}

// remove records the invalidation sel makes (first, so that fills already
// in flight store nothing it matches), then removes what it matches from
// every tier, the lowest first: the disk tier's removal is the durable one.
func (c *Cache) remove(ctx context.Context, sel *keySelector) (map[string]match, error) {
	c.recordInvalidation(sel.urlKeys, append(slices.Clip(sel.prefixes), sel.hostPrefixes...), sel.tags)
	now := c.now()
	ts := c.tierList()
	found := make(map[string]match)
	var errs []error
	for i := len(ts) - 1; i >= 0; i-- {
		m, err := ts[i].remove(ctx, sel, now)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, err)
		}
		for k, v := range m {
			found[k] = found[k].merge(v)
		}
	}
	return found, errors.Join(errs...)
}

// keySelector is a purge selector in the form the tiers match keys with:
// primary keys for URLs (both schemes) and key prefixes for prefixes and
// hosts, normalized as keys are.
type keySelector struct {
	urlKeys, prefixes, hostPrefixes, tags []string
	soft                                  bool
	// keysOnly: an invalidation, whose matches need not be counted, so a
	// tier may remove the keys without a scan.
	keysOnly bool
}

// compileSelector turns a parsed purge selector into key form.
func compileSelector(p selector.Parsed) *keySelector {
	ks := &keySelector{tags: p.Tags, soft: p.Soft}
	both := []string{"http", "https"}
	for _, u := range p.URLs {
		for _, scheme := range both {
			ks.urlKeys = append(ks.urlKeys, rfc.NormalizeKey(scheme, u.Host, u.Path, u.RawQuery))
		}
	}
	for _, pr := range p.Prefixes {
		for _, scheme := range pr.Schemes {
			ks.prefixes = append(ks.prefixes, rfc.KeyPrefix(scheme, pr.Host, strings.TrimPrefix(pr.Path, "/")))
		}
	}
	for _, h := range p.Hosts {
		for _, scheme := range both {
			ks.hostPrefixes = append(ks.hostPrefixes, rfc.KeyPrefix(scheme, h, ""))
		}
	}
	return ks
}

// matchEntry reports which kinds of ks match e, by its primary key and tags.
func (ks *keySelector) matchEntry(e *Entry) match {
	m := match{
		urls:     slices.Contains(ks.urlKeys, URLKey(e.Primary)),
		prefixes: hasAnyPrefix(e.Primary, ks.prefixes),
		hosts:    hasAnyPrefix(e.Primary, ks.hostPrefixes),
	}
	for _, t := range ks.tags {
		m.tags = m.tags || slices.Contains(e.Tags, t)
	}
	return m
}

// KeyExtraSep starts the part of a primary key that the edge's rules add
// after the URL (header and cookie values: package edge/rules). A purge or
// invalidation of a URL matches the URL's key with any such part. It
// cannot occur in a URL or a field value.
const KeyExtraSep = "\x01"

// URLKey returns the URL part of a primary key: key without the part that
// begins with KeyExtraSep, if any, or with a NUL (a slice's key, which is
// the primary key of its own lookups: sliceKey).
func URLKey(key string) string {
	if i := strings.IndexByte(key, 0); i >= 0 {
		key = key[:i]
	}
	if i := strings.IndexByte(key, KeyExtraSep[0]); i >= 0 {
		key = key[:i]
	}
	return key
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// match records which selector kinds matched one stored object.
type match struct{ urls, prefixes, tags, hosts bool }

func (m match) any() bool { return m.urls || m.prefixes || m.tags || m.hosts }

func (m match) merge(o match) match {
	return match{m.urls || o.urls, m.prefixes || o.prefixes, m.tags || o.tags, m.hosts || o.hosts}
}

func (n *PurgeCounts) add(m match) {
	for _, k := range [...]struct {
		on bool
		n  *int
	}{{m.urls, &n.URLs}, {m.prefixes, &n.Prefixes}, {m.tags, &n.Tags}, {m.hosts, &n.Hosts}} {
		if k.on {
			*k.n++
		}
	}
}

// softened returns a copy of e that is stale from now on: its lifetime
// ends at its current age, so the next use revalidates, and its
// stale-while-revalidate and stale-if-error windows run from now.
func (e *Entry) softened(now time.Time) *Entry {
	s := *e
	if age := e.Age(now); s.Lifetime > age {
		s.Lifetime = age
	}
	return &s
}
