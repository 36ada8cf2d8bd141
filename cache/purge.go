package cache

import (
	"context"
	"errors"
	"fmt"
	"github.com/edged-proxy/edged/cache/rfc"
	"net/url"
	"strings"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// PurgeSelector names what one purge removes. URLs are absolute http(s)
// URLs; prefixes are "host/path-prefix" (both schemes) or an absolute URL
// prefix (that scheme only); hosts are host or host:port. URLs and hosts
// are scheme-insensitive: content stored for http and for https goes
// alike. Every Vary variant of a matched URL goes with it.
type PurgeSelector struct {
	URLs, Prefixes, Tags, Hosts []string
	// Soft marks matched objects stale instead of deleting them: the next
	// request revalidates, while stale-while-revalidate and stale-if-error
	// may still use the old copy.
	Soft bool
}

// PurgeCounts is how many stored objects each kind of selector matched.
type PurgeCounts struct{ URLs, Prefixes, Tags, Hosts int }

// Purge removes (or, soft, marks stale) every stored object sel matches, in
// both tiers. When it returns nil the purge is durable: the disk tier's
// index no longer names hard-purged objects and records soft-purged ones as
// stale, so neither a restart nor a crash undoes it, and fills that were in
// flight when it began store nothing it matches.
func (c *Cache) Purge(ctx context.Context, sel PurgeSelector) (PurgeCounts, error) {
	now := c.now()
	var urlKeys, prefixes, hostPrefixes []string
	for _, raw := range sel.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return PurgeCounts{}, fmt.Errorf("cache: purge: %q is not an absolute URL", raw)
		}
		for _, scheme := range [...]string{"http", "https"} {
			urlKeys = append(urlKeys, rfc.NormalizeKey(scheme, u.Host, u.EscapedPath(), u.RawQuery))
		}
	}
	for _, p := range sel.Prefixes {
		schemes := []string{"http", "https"}
		if scheme, rest, ok := strings.Cut(p, "://"); ok { // an absolute prefix: that scheme only
			p, schemes = rest, []string{strings.ToLower(scheme)}
		}
		host, path, _ := strings.Cut(p, "/")
		for _, scheme := range schemes {
			prefixes = append(prefixes, rfc.KeyPrefix(scheme, host, path))
		}
	}
	for _, h := range sel.Hosts {
		for _, scheme := range [...]string{"http", "https"} {
			hostPrefixes = append(hostPrefixes, rfc.KeyPrefix(scheme, h, ""))
		}
	}
	// First, so that fills already in flight store nothing this matches.
	c.recordInvalidation(urlKeys, append(append([]string(nil), prefixes...), hostPrefixes...), sel.Tags)

	// Collect the matching keys of both tiers, per selector kind.
	found := make(map[string]*match)
	mark := func(key string, set func(*match)) {
		m := found[key]
		if m == nil {
			m = new(match)
			found[key] = m
		}
		set(m)
	}
	hasPrefix := func(key string, ps []string) bool {
		for _, p := range ps {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
	isURL := func(primary string) bool {
		for _, k := range urlKeys {
			if primary == k {
				return true
			}
		}
		return false
	}
	var memHits []*Entry
	c.mem.c.IterValues(func(e *Entry) bool {
		m := match{
			urls:     isURL(e.Primary),
			prefixes: hasPrefix(e.Primary, prefixes),
			hosts:    hasPrefix(e.Primary, hostPrefixes),
		}
		for _, t := range sel.Tags {
			m.tags = m.tags || containsTag(e.Tags, t)
		}
		if m.urls || m.prefixes || m.tags || m.hosts {
			memHits = append(memHits, e)
			if !e.Marker {
				mark(e.Key, func(x *match) { x.merge(m) })
			}
		}
		return false
	})
	var diskKeys []string
	if c.diskTier() != nil {
		seen := make(map[string]*match)
		add := func(k string, set func(*match)) {
			m := seen[k]
			if m == nil {
				m = new(match)
				seen[k] = m
				diskKeys = append(diskKeys, k)
			}
			set(m)
		}
		for _, k := range urlKeys {
			c.diskTier().KeysWithPrefix(k, func(v string) bool {
				if v == k || strings.HasPrefix(v, k+"\x00") {
					add(v, func(m *match) { m.urls = true })
				}
				return true
			})
		}
		for _, p := range prefixes {
			c.diskTier().KeysWithPrefix(p, func(k string) bool { add(k, func(m *match) { m.prefixes = true }); return true })
		}
		for _, p := range hostPrefixes {
			c.diskTier().KeysWithPrefix(p, func(k string) bool { add(k, func(m *match) { m.hosts = true }); return true })
		}
		for _, t := range sel.Tags {
			c.diskTier().KeysByTag(t, func(k string) bool { add(k, func(m *match) { m.tags = true }); return true })
		}
		for k, m := range seen {
			if !isMarkerKey(k) { // a Vary marker is not an object to count
				mark(k, func(x *match) { x.merge(*m) })
			}
		}
	}

	// Apply: disk first (durable), then memory.
	var errs []error
	if sel.Soft {
		for _, k := range diskKeys {
			if err := ctx.Err(); err != nil {
				return PurgeCounts{}, err
			}
			if err := c.softenOnDisk(k, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
		}
	} else if len(diskKeys) > 0 {
		if _, err := c.diskTier().DeleteKeys(diskKeys); err != nil {
			errs = append(errs, err)
		}
	}
	for _, e := range memHits {
		switch {
		case !sel.Soft:
			c.mem.del(e.Key)
		case !e.Marker: // a soft purge keeps markers: the variants stay reachable
			c.mem.set(e.softened(now))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return PurgeCounts{}, fmt.Errorf("cache: purge: %w", err)
	}
	var n PurgeCounts
	for _, m := range found {
		if m.urls {
			n.URLs++
		}
		if m.prefixes {
			n.Prefixes++
		}
		if m.tags {
			n.Tags++
		}
		if m.hosts {
			n.Hosts++
		}
	}
	return n, nil
}

// match records which selector kinds matched one stored object.
type match struct{ urls, prefixes, tags, hosts bool }

func (m *match) merge(o match) {
	m.urls, m.prefixes, m.tags, m.hosts = m.urls || o.urls, m.prefixes || o.prefixes, m.tags || o.tags, m.hosts || o.hosts
}

func containsTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
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

// softenOnDisk marks the disk object under key stale.
func (c *Cache) softenOnDisk(key string, now time.Time) error {
	obj, err := c.diskTier().Get(key)
	if err != nil {
		return err
	}
	hdr := obj.Meta.Header
	obj.Close()
	e, err := decodeEntry(hdr)
	if err != nil {
		return c.diskTier().Delete(key) // unreadable: a hard purge is the safe answer
	}
	if e.Marker {
		return nil
	}
	s := e.softened(now)
	return c.diskTier().UpdateMeta(key, encodeEntry(s), s.expires())
}
