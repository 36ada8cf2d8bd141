package conformance_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// csSyntax is a simplified RFC 8941 List member: a token (edged) followed by
// parameters whose keys are lower-case keys and whose values are integers,
// tokens or strings.
var csSyntax = regexp.MustCompile(`^edged(;\s?[a-z*][a-z0-9_.*-]*(=(-?[0-9]{1,15}|[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_` + "`" + `|~-]*|"([^"\\]|\\["\\])*"))?)*$`)

// wantCS checks the edged member's syntax and the given parameters; a value
// of "*" only requires presence, "-" requires absence.
func wantCS(t *testing.T, r result, params map[string]string) {
	t.Helper()
	raw := r.Header.Get("Cache-Status")
	if len(r.Header.Values("Cache-Status")) != 1 {
		t.Errorf("Cache-Status lines: %q", r.Header.Values("Cache-Status"))
	}
	if r.CS.first != "edged" {
		t.Errorf("first Cache-Status member %q, want edged (%q)", r.CS.first, raw)
	}
	if !csSyntax.MatchString(raw) {
		t.Errorf("Cache-Status %q is not a valid RFC 9211 / RFC 8941 member", raw)
	}
	if r.CS.hit() && r.CS.has("fwd") && !strings.HasPrefix(r.CS.get("detail"), "origin-") {
		// Only a stale response served because the origin failed says
		// both (docs/caching.md, RFC 9211).
		t.Errorf("Cache-Status has both hit and fwd: %q", raw)
	}
	for k, v := range params {
		switch v {
		case "*":
			if !r.CS.has(k) {
				t.Errorf("Cache-Status %q lacks %s", raw, k)
			}
		case "-":
			if r.CS.has(k) {
				t.Errorf("Cache-Status %q has %s", raw, k)
			}
		default:
			if got, ok := r.CS.params[k]; !ok || got != v {
				t.Errorf("Cache-Status %q: %s=%q, want %q", raw, k, got, v)
			}
		}
	}
}

// TestCacheStatus checks the RFC 9211 Cache-Status parameters edged sends
// for each way a request can be answered.
func TestCacheStatus(t *testing.T) {
	t.Run("RFC 9211 §2.2 §2.3 §2.5 §2.7 miss: fwd=uri-miss, fwd-status, stored, ttl", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		wantCS(t, e.get("/x"), map[string]string{"fwd": "uri-miss", "fwd-status": "200", "stored": "", "ttl": "60", "hit": "-", "collapsed": "-", "key": "-"})
	})
	t.Run("RFC 9211 §2.1 §2.7 hit: hit, ttl, no fwd, no fwd-status", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		e.get("/x")
		e.advance(15 * time.Second)
		wantCS(t, e.get("/x"), map[string]string{"hit": "", "ttl": "45", "fwd": "-", "fwd-status": "-", "stored": "-"})
	})
	t.Run("RFC 9211 §2.2 vary-miss", func(t *testing.T) {
		e := newEnv(t, opts{}, varyOrigin("Accept-Language"))
		e.get("/x", "Accept-Language", "en")
		wantCS(t, e.get("/x", "Accept-Language", "fr"), map[string]string{"fwd": "vary-miss", "fwd-status": "200", "stored": ""})
	})
	t.Run("RFC 9211 §2.2 §2.3 stale revalidated: fwd=stale, fwd-status=304", func(t *testing.T) {
		e := newEnv(t, opts{}, validatingOrigin("max-age=10", `"a"`, "", "p"))
		e.get("/x")
		e.advance(20 * time.Second)
		wantCS(t, e.get("/x"), map[string]string{"fwd": "stale", "fwd-status": "304", "ttl": "10"})
	})
	t.Run("RFC 9211 §2.2 stale refetched: fwd=stale, fwd-status=200, stored", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		e.get("/x")
		e.advance(2 * time.Minute)
		wantCS(t, e.get("/x"), map[string]string{"fwd": "stale", "fwd-status": "200", "stored": ""})
	})
	t.Run("RFC 9211 §2.2 request directives: fwd=request", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		e.get("/x")
		wantCS(t, e.get("/x", "Cache-Control", "no-cache"), map[string]string{"fwd": "request", "fwd-status": "200"})
	})
	t.Run("RFC 9211 §2.2 site not cacheable: fwd=bypass", func(t *testing.T) {
		e := newEnv(t, opts{disabled: true}, nil)
		e.get("/x")
		wantCS(t, e.get("/x"), map[string]string{"fwd": "bypass", "fwd-status": "200", "stored": "-", "hit": "-"})
		e.wantHits("/x", 2)
	})
	t.Run("RFC 9211 §2.2 unsafe method: fwd=method", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(201, "made"))
		wantCS(t, e.do(http.MethodPost, "/x"), map[string]string{"fwd": "method", "fwd-status": "201", "stored": "-"})
	})
	t.Run("RFC 9211 §2.8 not storable: detail names the reason", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "p", "Cache-Control", "no-store"))
		wantCS(t, e.get("/x"), map[string]string{"fwd": "uri-miss", "fwd-status": "200", "stored": "-", "detail": "no-store"})
	})
	t.Run("RFC 9211 §2.3 fwd-status is the origin's status (404)", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(404, "nope", "Cache-Control", "max-age=60"))
		r := e.get("/x")
		wantStatus(t, r, 404)
		wantCS(t, r, map[string]string{"fwd": "uri-miss", "fwd-status": "404", "stored": ""})
		wantCS(t, e.get("/x"), map[string]string{"hit": ""})
	})
	t.Run("RFC 9211 §2.6 collapsed on waiters of one fill", func(t *testing.T) {
		g := testkit.NewGate(t)
		var e *env
		e = newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			g.Wait(r.Context())
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "p")
		})
		t.Cleanup(g.Open)
		const n = 8
		var wg sync.WaitGroup
		res := make([]result, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { res[i], errs[i] = e.try(context.Background(), http.MethodGet, "/x") })
		}
		e.origin.Await(t, "/x", 1)
		e.awaitJoined(n - 1)
		g.Open()
		wg.Wait()
		stored, collapsed, hits := 0, 0, 0
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if res[i].CS.has("stored") {
				stored++
			}
			if res[i].CS.has("collapsed") {
				collapsed++
				wantCS(t, res[i], map[string]string{"fwd": "uri-miss", "stored": "-"})
			}
			if res[i].CS.hit() {
				hits++ // arrived after the fill: fine
			}
		}
		if stored != 1 || collapsed < 1 || collapsed+hits != n-1 {
			t.Errorf("stored=%d collapsed=%d hits=%d, want 1 stored and the other %d collapsed (or hits)", stored, collapsed, hits, n-1)
		}
		e.wantHits("/x", 1)
	})
	t.Run("RFC 9211 §2.4 key when CacheStatusKey is on", func(t *testing.T) {
		e := newEnv(t, opts{statusKey: true}, nil)
		r := e.get("/k?q=1")
		wantCS(t, r, map[string]string{"key": "*"})
		if k := r.CS.get("key"); !strings.Contains(k, "/k") || !strings.Contains(k, "q=1") {
			t.Errorf("key %q does not name the URL", k)
		}
		wantCS(t, e.get("/k?q=1"), map[string]string{"hit": "", "key": r.CS.get("key")})
	})
	t.Run("RFC 9211 §2 origin unreachable on a miss: edged member, fwd=uri-miss", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		e.closeOrigin()
		r := e.get("/x")
		wantStatus(t, r, http.StatusBadGateway)
		wantCS(t, r, map[string]string{"fwd": "uri-miss", "stored": "-", "fwd-status": "-"})
	})
	t.Run("RFC 9211 §2.1 §2.2 §2.3 §2.8 stale served on an origin error: hit, fwd=stale, fwd-status, detail", func(t *testing.T) {
		e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10")
			io.WriteString(w, "p")
		})
		e.get("/x")
		e.advance(time.Minute)
		wantCS(t, e.get("/x"), map[string]string{"hit": "", "fwd": "stale", "fwd-status": "503", "ttl": "-50", "detail": "origin-error", "stored": "-"})
	})
	t.Run("RFC 9211 §2.2 origin unreachable with a stale entry that may not stand in: fwd=stale", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "p", "Cache-Control", "max-age=10, must-revalidate"))
		e.get("/x")
		e.advance(time.Minute)
		e.closeOrigin()
		r := e.get("/x")
		wantStatus(t, r, http.StatusGatewayTimeout)
		wantCS(t, r, map[string]string{"fwd": "stale", "hit": "-", "fwd-status": "-"})
	})
	t.Run("RFC 9211 §2 only-if-cached 504 has the edged member", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		r := e.get("/x", "Cache-Control", "only-if-cached")
		wantStatus(t, r, http.StatusGatewayTimeout)
		wantCS(t, r, map[string]string{"hit": "-", "fwd-status": "-"})
	})
	t.Run("RFC 9211 §2.1 conditional 304 from the cache is a hit", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "p", "Cache-Control", "max-age=60", "ETag", `"a"`))
		e.get("/x")
		r := e.get("/x", "If-None-Match", `"a"`)
		wantStatus(t, r, 304)
		wantCS(t, r, map[string]string{"hit": "", "ttl": "60"})
	})
	t.Run("RFC 9211 §2 an upstream Cache-Status member is kept, edged's appended after it", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "p", "Cache-Control", "max-age=60", "Cache-Status", "OriginCache; hit"))
		for i, r := range []result{e.get("/x"), e.get("/x")} {
			v := strings.Join(r.Header.Values("Cache-Status"), ", ")
			up, own := strings.Index(v, "OriginCache; hit"), strings.Index(v, "edged")
			if up < 0 || own < up {
				t.Errorf("response %d: Cache-Status %q, want the upstream member first, then edged", i+1, v)
			}
		}
	})
}
