package edge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/purge/selector"
)

// taggedOrigin serves versioned bodies tagged by path segment, varying on
// Accept-Language, with validators, and counts conditional requests.
type taggedOrigin struct {
	*origin
	version     atomic.Int32
	conditional atomic.Int32
	fail        atomic.Bool
}

func newTaggedOrigin(t *testing.T) *taggedOrigin {
	to := &taggedOrigin{}
	to.origin = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if to.fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		etag := fmt.Sprintf(`"v%d"`, to.version.Load())
		w.Header().Set("Cache-Control", "max-age=600, stale-if-error=600")
		w.Header().Set("ETag", etag)
		w.Header().Set("Vary", "Accept-Language")
		seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
		w.Header().Set("Surrogate-Key", "all section-"+seg)
		if r.Header.Get("If-None-Match") != "" {
			to.conditional.Add(1)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprintf(w, "%s %s %s", r.URL.Path, r.Header.Get("Accept-Language"), etag)
	})
	return to
}

func TestPurgeSelectorsAcrossTiersAndVariants(t *testing.T) {
	for _, disk := range []bool{false, true} {
		for _, tt := range []struct {
			name    string
			sel     selector.Selector
			purged  []string // paths whose variants must be gone
			kept    []string
			counted func(cache.PurgeCounts) int
		}{
			{"url", selector.Selector{URLs: []string{"https://example.com/a/1"}}, []string{"/a/1"}, []string{"/a/2", "/b/1"}, func(n cache.PurgeCounts) int { return n.URLs }},
			// A URL is not a prefix: keys that extend it stay, its variants go.
			{"url not prefix", selector.Selector{URLs: []string{"https://example.com/a"}}, []string{"/a"}, []string{"/a/1", "/a2", "/a?q=1"}, func(n cache.PurgeCounts) int { return n.URLs }},
			{"prefix", selector.Selector{Prefixes: []string{"example.com/a/"}}, []string{"/a/1", "/a/2"}, []string{"/b/1"}, func(n cache.PurgeCounts) int { return n.Prefixes }},
			{"tag", selector.Selector{Tags: []string{"section-b"}}, []string{"/b/1"}, []string{"/a/1", "/a/2"}, func(n cache.PurgeCounts) int { return n.Tags }},
			{"host", selector.Selector{Hosts: []string{"example.com"}}, []string{"/a/1", "/a/2", "/b/1"}, nil, func(n cache.PurgeCounts) int { return n.Hosts }},
		} {
			t.Run(fmt.Sprintf("%s/disk=%v", tt.name, disk), func(t *testing.T) {
				o := newTaggedOrigin(t)
				base, c := newEdge(t, edgeOpts{disk: disk}, o.origin)
				langs := []string{"en", "fr"}
				all := append(append([]string(nil), tt.purged...), tt.kept...)
				for _, p := range all {
					for _, l := range langs {
						get(t, base, "GET", "example.com", p, "Accept-Language", l)
					}
				}
				if disk {
					waitFor(t, func() bool { // write-behind has landed
						return diskHit(t, base, all, langs)
					})
				}
				n, err := c.Purge(context.Background(), tt.sel)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := tt.counted(n), len(tt.purged)*len(langs); got != want {
					t.Errorf("matched %d objects, want %d (%+v)", got, want, n)
				}
				for _, p := range tt.purged {
					for _, l := range langs {
						resp, _ := get(t, base, "GET", "example.com", p, "Accept-Language", l)
						if strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
							t.Errorf("%s (%s) still a hit after the purge", p, l)
						}
					}
				}
				for _, p := range tt.kept {
					for _, l := range langs {
						resp, _ := get(t, base, "GET", "example.com", p, "Accept-Language", l)
						if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
							t.Errorf("%s (%s) was purged too: %q", p, l, resp.Header.Get("Cache-Status"))
						}
					}
				}
			})
		}
	}
}

// diskHit reports whether every path and language is a hit (used to wait
// until the background disk copies exist).
func diskHit(t *testing.T, base string, paths, langs []string) bool {
	for _, p := range paths {
		for _, l := range langs {
			resp, _ := get(t, base, "HEAD", "example.com", p, "Accept-Language", l)
			if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
				return false
			}
		}
	}
	return true
}

// A soft purge makes the next request revalidate (a conditional request,
// answered 304 here), and keeps the old copy usable for stale-if-error.
func TestSoftPurge(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			o := newTaggedOrigin(t)
			base, c := newEdge(t, edgeOpts{disk: disk}, o.origin)
			get(t, base, "GET", "example.com", "/a/1", "Accept-Language", "en")
			if _, err := c.Purge(context.Background(), selector.Selector{Tags: []string{"all"}, Soft: true}); err != nil {
				t.Fatal(err)
			}
			o.fail.Store(true)
			resp, body := get(t, base, "GET", "example.com", "/a/1", "Accept-Language", "en")
			if body != `/a/1 en "v0"` || !strings.Contains(resp.Header.Get("Cache-Status"), "hit; fwd=stale; fwd-status=503; ttl=") || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=origin-error") {
				t.Errorf("origin down after a soft purge: %q %q, want the stale copy", resp.Header.Get("Cache-Status"), body)
			}
			o.fail.Store(false)
			resp, body = get(t, base, "GET", "example.com", "/a/1", "Accept-Language", "en")
			if o.conditional.Load() == 0 || body != `/a/1 en "v0"` || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd-status=304") {
				t.Errorf("after a soft purge: %q %q, %d conditional requests; want a 304 revalidation", resp.Header.Get("Cache-Status"), body, o.conditional.Load())
			}
			resp, _ = get(t, base, "GET", "example.com", "/a/1", "Accept-Language", "en")
			if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
				t.Errorf("after the revalidation: %q, want a hit", resp.Header.Get("Cache-Status"))
			}
		})
	}
}

// A purge that comes while a fetch is in flight wins: the fetch answers
// its clients but is not stored.
func TestPurgeDuringFetchNotStored(t *testing.T) {
	for _, sel := range []selector.Selector{
		{Tags: []string{"section-slow"}},
		{Prefixes: []string{"example.com/slow"}},
		{Hosts: []string{"example.com"}},
		{URLs: []string{"http://example.com/slow"}},
	} {
		t.Run(fmt.Sprintf("%+v", sel), func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				once.Do(func() { <-release })
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("Surrogate-Key", "section-slow")
				io.WriteString(w, "old")
			})
			base, c := newEdge(t, edgeOpts{disk: true}, o)
			done := make(chan struct{})
			go func() { get(t, base, "GET", "example.com", "/slow"); close(done) }()
			waitFor(t, func() bool { return o.hits("/slow") == 1 })
			if _, err := c.Purge(context.Background(), sel); err != nil {
				t.Fatal(err)
			}
			close(release)
			<-done
			resp, _ := get(t, base, "GET", "example.com", "/slow")
			if strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
				t.Errorf("a fetch that began before the purge was stored: %q", resp.Header.Get("Cache-Status"))
			}
		})
	}
}

func TestTagHeadersStripped(t *testing.T) {
	o := newTaggedOrigin(t)
	base, _, _ := buildEdge(t, edgeOpts{strip: []string{"surrogate-key"}}, o.URL)
	for range 2 { // miss, then hit
		resp, _ := get(t, base, "GET", "example.com", "/a/1")
		if resp.Header.Get("Surrogate-Key") != "" {
			t.Errorf("Surrogate-Key reached the client (%s)", resp.Header.Get("Cache-Status"))
		}
	}
}
