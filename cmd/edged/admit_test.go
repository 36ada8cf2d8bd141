package main

import (
	"strings"
	"testing"
)

// With admission second-hit, what was requested twice is
// on disk and survives a restart; what was requested once was kept in
// memory only and is fetched again; a body larger than memory's object
// limit goes to disk on its first request.
func TestRestartKeepsAdmittedObjects(t *testing.T) {
	o := newSizedOrigin(t)
	data := t.TempDir()
	cfg := writeConfig(t, smallMemory+"  disk:\n    admission: second-hit\n")
	twice := []string{"/obj/a-1000", "/obj/b-50000"}
	once := []string{"/obj/c-2000"}
	large := []string{"/obj/d-300000"} // above max_object_bytes (64KiB): streamed to disk

	l, _, stop := runDaemon(t, "-config", cfg, "-origin", o.URL, "-data", data)
	for _, p := range twice {
		fetchHost(t, "http://"+l.Edge+p, "cdn.example")
		if !isHit(t, l.Edge, p) {
			t.Fatalf("%s: the second request is not a memory hit", p)
		}
	}
	for _, p := range append(once, large...) {
		fetchHost(t, "http://"+l.Edge+p, "cdn.example")
	}
	stop() // waits for the write-behind copies

	l, _, stop = runDaemon(t, "-config", cfg, "-origin", o.URL, "-data", data)
	defer stop()
	for _, tc := range []struct {
		paths   []string
		hit     bool
		fetches int
	}{{twice, true, 1}, {large, true, 1}, {once, false, 2}} {
		for _, p := range tc.paths {
			resp, b := fetchHost(t, "http://"+l.Edge+p, "cdn.example")
			if cs := resp.Header.Get("Cache-Status"); strings.HasPrefix(cs, "edged; hit") != tc.hit {
				t.Errorf("%s after restart: Cache-Status %q, want hit %v", p, cs, tc.hit)
			}
			if b != string(body(p, len(b))) {
				t.Errorf("%s after restart: wrong body", p)
			}
			if n := o.Hits(p); n != tc.fetches {
				t.Errorf("%s: origin fetched %d times, want %d", p, n, tc.fetches)
			}
		}
	}
}
