package conformance_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
)

// TestTargetedCacheControl checks that the targeted fields edged obeys take
// precedence over Cache-Control and Expires (RFC 9213 §2.2).
func TestTargetedCacheControl(t *testing.T) {
	cases := []struct {
		name    string
		policy  rfc.Policy
		resp    []string
		advance time.Duration
		fresh   bool
	}{
		{name: "RFC 9213 §2.2 CDN-Cache-Control max-age overrides Cache-Control no-store", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 CDN-Cache-Control max-age overrides Cache-Control private", resp: []string{"Cache-Control", "private", "CDN-Cache-Control", "max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 CDN-Cache-Control no-store overrides Cache-Control max-age", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "no-store"}},
		{name: "RFC 9213 §2.2 CDN-Cache-Control private is obeyed", resp: []string{"Cache-Control", "public, max-age=600", "CDN-Cache-Control", "private"}},
		{name: "RFC 9213 §2.2 CDN-Cache-Control shorter max-age wins over Cache-Control", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age=10"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.2 CDN-Cache-Control longer max-age wins over Cache-Control s-maxage", resp: []string{"Cache-Control", "s-maxage=10", "CDN-Cache-Control", "max-age=600"}, advance: 20 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 CDN-Cache-Control overrides Expires", resp: []string{"Expires", httpDate(epoch.Add(time.Hour)), "CDN-Cache-Control", "max-age=10"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.2 CDN-Cache-Control without freshness ignores a longer Expires", resp: []string{"Expires", httpDate(epoch.Add(time.Hour)), "CDN-Cache-Control", "must-revalidate"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.2 Surrogate-Control is obeyed", resp: []string{"Cache-Control", "no-store", "Surrogate-Control", "max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 CDN-Cache-Control takes precedence over Surrogate-Control", resp: []string{"Surrogate-Control", "max-age=600", "CDN-Cache-Control", "max-age=10"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.2 an empty targeted field is ignored (falls back to Cache-Control)", resp: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", ""}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 edged's own Edged-Cache-Control is obeyed by default", resp: []string{"Cache-Control", "no-store", "Edged-Cache-Control", "max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 edged's own field takes precedence over CDN-Cache-Control", resp: []string{"CDN-Cache-Control", "max-age=600", "Edged-Cache-Control", "max-age=10"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.2 an own field that fails to parse gives way to CDN-Cache-Control", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60", "Edged-Cache-Control", "max-age=10,"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 configured own field is obeyed", policy: rfc.Policy{OwnTargetedHeaders: []string{"Acme-Cache-Control"}}, resp: []string{"Cache-Control", "no-store", "Acme-Cache-Control", "max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.2 with no class fields configured, CDN-Cache-Control is ignored", policy: rfc.Policy{TargetedHeaders: []string{}}, resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}},
		{name: "RFC 9213 §2.2 empty lists obey none", policy: rfc.Policy{OwnTargetedHeaders: []string{}, TargetedHeaders: []string{}}, resp: []string{"Cache-Control", "no-store", "Edged-Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=60"}},
		// RFC 9213 §2.1: targeted fields are Structured Field
		// Dictionaries (RFC 8941/9651).
		{name: "RFC 9213 §2.1 an upper-case key fails the SF parse: the field is ignored, Cache-Control applies", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "Max-Age=60"}},
		{name: "RFC 9213 §2.1 a field that fails to parse (trailing &&&&) is ignored: Cache-Control no-store applies", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60, &&&&"}},
		{name: "RFC 9213 §2.1 a field that fails to parse is ignored: Cache-Control's shorter max-age applies", resp: []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=600 &&&&"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.1 a trailing comma fails the field", resp: []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=600,"}, advance: 20 * time.Second},
		{name: "RFC 9213 §2.2 a field that fails to parse gives way to the next targeted field", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60 &&&&", "Surrogate-Control", "max-age=600"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.1 max-age as a String is not used (no explicit freshness)", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", `max-age="10000"`}, advance: 30 * time.Second},
		{name: "RFC 9213 §2.1 max-age as a Decimal is not used", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age=60.5"}, advance: 30 * time.Second},
		{name: "RFC 9213 §2.1 a negative max-age is not used", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age=-1"}, advance: 30 * time.Second},
		{name: "RFC 9213 §2.1 no-store=?0 is no no-store", resp: []string{"CDN-Cache-Control", "no-store=?0, max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.1 parameters are ignored", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60;foo=bar"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §2.1 SF whitespace and field lines: two lines combined", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "public", "CDN-Cache-Control", "max-age=60"}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9213 §3.1 a valid field of unknown directives still replaces Cache-Control", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "none"}, advance: 30 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts{policy: tc.policy}, func(w http.ResponseWriter, r *http.Request, n int) {
				for i := 0; i+1 < len(tc.resp); i += 2 {
					w.Header().Add(tc.resp[i], tc.resp[i+1])
				}
				io.WriteString(w, "v"+strconv.Itoa(n))
			})
			e.get("/t")
			e.advance(tc.advance)
			r := e.get("/t")
			if tc.fresh {
				wantHit(t, r)
				wantBody(t, r, "v1")
				e.wantHits("/t", 1)
			} else {
				if r.CS.hit() {
					t.Errorf("served from the cache: %v", r)
				}
				wantBody(t, r, "v2")
				e.wantHits("/t", 2)
			}
		})
	}
}

// TestTargetedStripped checks that only the targeted fields aimed at edged
// itself are removed from responses to clients (unless the site keeps
// them), while CDN-Cache-Control and Surrogate-Control are forwarded for the
// caches downstream (RFC 9213 §2.2: a field not aimed at a cache is passed
// through; CDNs forward CDN-Cache-Control), and that Cache-Control reaches
// the client untouched.
func TestTargetedStripped(t *testing.T) {
	all := []string{"Cache-Control", "public, max-age=5", "Edged-Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=30", "Surrogate-Control", "max-age=20"}
	cases := []struct {
		name   string
		o      opts
		resp   []string
		absent []string
		kept   map[string]string
	}{
		{name: "RFC 9213 §2.2 by default Edged-Cache-Control is removed, CDN-Cache-Control and Surrogate-Control forwarded", resp: all,
			absent: []string{"Edged-Cache-Control"},
			kept:   map[string]string{"Cache-Control": "public, max-age=5", "CDN-Cache-Control": "max-age=30", "Surrogate-Control": "max-age=20"}},
		{name: "RFC 9213 §2.2 CDN-Cache-Control is forwarded even when it governs edged", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"},
			kept: map[string]string{"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60"}},
		{name: "RFC 9213 §2.2 a field that failed to parse is forwarded as sent", resp: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=60, &&&&"},
			kept: map[string]string{"Cache-Control": "max-age=60", "CDN-Cache-Control": "max-age=60, &&&&"}},
		{name: "KeepTargetedHeaders forwards edged's own fields too", o: opts{keepTargeted: true}, resp: all,
			kept: map[string]string{"Cache-Control": "public, max-age=5", "Edged-Cache-Control": "max-age=60", "CDN-Cache-Control": "max-age=30", "Surrogate-Control": "max-age=20"}},
		{name: "a site whose own field is CDN-Cache-Control removes it", o: opts{policy: rfc.Policy{OwnTargetedHeaders: []string{"CDN-Cache-Control"}, TargetedHeaders: []string{"Surrogate-Control"}}}, resp: all,
			absent: []string{"CDN-Cache-Control"},
			kept:   map[string]string{"Edged-Cache-Control": "max-age=60", "Surrogate-Control": "max-age=20"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o, respond(200, "x", tc.resp...))
			for i, r := range []result{e.get("/t"), e.get("/t")} {
				if i == 1 {
					wantHit(t, r)
				}
				for _, name := range tc.absent {
					if v := r.Header.Values(name); len(v) > 0 {
						t.Errorf("response %d carries %s: %q", i+1, name, v)
					}
				}
				for name, v := range tc.kept {
					if got := r.Header.Get(name); got != v {
						t.Errorf("response %d: %s = %q, want %q", i+1, name, got, v)
					}
				}
			}
		})
	}
}

// TestTargetedTTL checks that Cache-Status reports the lifetime the
// targeted field gave (RFC 9213 §2.2, RFC 9211 §2.7).
func TestTargetedTTL(t *testing.T) {
	e := newEnv(t, opts{}, respond(200, "x", "Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=300"))
	r := e.get("/t")
	if ttl, ok := r.CS.ttl(); !ok || ttl != 300 {
		t.Errorf("ttl = %d %v, want 300 (%v)", ttl, ok, r)
	}
}
