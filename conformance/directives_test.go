package conformance_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRequestDirectives stores a response (max-age=100, ETag), moves the
// clock, and sends a request with directives (RFC 9111 §5.2.1, §5.4).
func TestRequestDirectives(t *testing.T) {
	cases := []struct {
		name    string
		cc      string // response Cache-Control
		advance time.Duration
		hdr     []string
		hit     bool   // served from the cache
		fwd     string // expected fwd when not a hit
	}{
		{name: "§5.2.1.1 max-age=0 forces revalidation", advance: 5 * time.Second, hdr: []string{"Cache-Control", "max-age=0"}, fwd: "request"},
		{name: "§5.2.1.1 max-age larger than the age: hit", advance: 20 * time.Second, hdr: []string{"Cache-Control", "max-age=30"}, hit: true},
		{name: "§5.2.1.1 max-age smaller than the age: origin", advance: 40 * time.Second, hdr: []string{"Cache-Control", "max-age=30"}, fwd: "request"},
		{name: "§5.2.1.4 no-cache forces revalidation", advance: 5 * time.Second, hdr: []string{"Cache-Control", "no-cache"}, fwd: "request"},
		{name: "§5.2 request directives are case-insensitive (NO-CACHE)", advance: 5 * time.Second, hdr: []string{"Cache-Control", "NO-CACHE"}, fwd: "request"},
		{name: "§5.4 Pragma: no-cache without Cache-Control acts as no-cache", advance: 5 * time.Second, hdr: []string{"Pragma", "no-cache"}, fwd: "request"},
		{name: "§5.4 Pragma is ignored when Cache-Control is present", advance: 5 * time.Second, hdr: []string{"Pragma", "no-cache", "Cache-Control", "max-age=600"}, hit: true},
		{name: "§5.2.1.2 max-stale=30: stale by 10 s is served", advance: 110 * time.Second, hdr: []string{"Cache-Control", "max-stale=30"}, hit: true},
		{name: "§5.2.1.2 max-stale=30: stale by 40 s is not", advance: 140 * time.Second, hdr: []string{"Cache-Control", "max-stale=30"}, fwd: "stale"},
		{name: "§5.2.1.2 max-stale without a value accepts any staleness", advance: 100 * time.Hour, hdr: []string{"Cache-Control", "max-stale"}, hit: true},
		{name: "§5.2.1.2 max-stale does not apply to must-revalidate", cc: "max-age=100, must-revalidate", advance: 110 * time.Second, hdr: []string{"Cache-Control", "max-stale=30"}, fwd: "stale"},
		{name: "§5.2.1.2 max-stale does not apply to s-maxage (§5.2.2.10)", cc: "s-maxage=100", advance: 110 * time.Second, hdr: []string{"Cache-Control", "max-stale=30"}, fwd: "stale"},
		{name: "§5.2.1.2 max-stale does not bypass response no-cache", cc: "max-age=100, no-cache", advance: 5 * time.Second, hdr: []string{"Cache-Control", "max-stale"}, fwd: "stale"},
		{name: "§5.2.1.3 min-fresh=30 with 40 s left: hit", advance: 60 * time.Second, hdr: []string{"Cache-Control", "min-fresh=30"}, hit: true},
		{name: "§5.2.1.3 min-fresh=30 with 20 s left: origin", advance: 80 * time.Second, hdr: []string{"Cache-Control", "min-fresh=30"}, fwd: "request"},
		{name: "§5.2.1.7 only-if-cached with a fresh entry: served", advance: 5 * time.Second, hdr: []string{"Cache-Control", "only-if-cached"}, hit: true},
		{name: "§5.2.1.7 only-if-cached with max-stale and a stale entry: served", advance: 110 * time.Second, hdr: []string{"Cache-Control", "only-if-cached, max-stale=60"}, hit: true},
		{name: "§5.2.1 unknown request directives are ignored", advance: 5 * time.Second, hdr: []string{"Cache-Control", "foo, bar=baz"}, hit: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := tc.cc
			if cc == "" {
				cc = "max-age=100"
			}
			e := newEnv(t, opts{}, validatingOrigin(cc, `"d"`, "", "payload"))
			e.get("/d")
			e.advance(tc.advance)
			r := e.get("/d", tc.hdr...)
			wantStatus(t, r, 200)
			wantBody(t, r, "payload")
			if tc.hit {
				wantHit(t, r)
				e.wantHits("/d", 1)
				return
			}
			wantFwd(t, r, tc.fwd)
			e.wantHits("/d", 2)
			// The origin is asked to validate what is stored.
			if got := e.origin.last(t, "/d").Header.Get("If-None-Match"); got != `"d"` {
				t.Errorf("origin got If-None-Match %q, want \"d\"", got)
			}
		})
	}
}

// TestOnlyIfCachedMiss checks §5.2.1.7: 504 when nothing usable is stored.
func TestOnlyIfCachedMiss(t *testing.T) {
	t.Run("§5.2.1.7 only-if-cached on an empty cache: 504", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		r := e.get("/o", "Cache-Control", "only-if-cached")
		wantStatus(t, r, http.StatusGatewayTimeout)
		e.wantHits("/o", 0)
		if !r.CS.present {
			t.Errorf("504 without edged Cache-Status: %v", r)
		}
	})
	t.Run("§5.2.1.7 only-if-cached with a stale entry: 504", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		e.get("/o")
		e.advance(2 * time.Minute)
		r := e.get("/o", "Cache-Control", "only-if-cached")
		wantStatus(t, r, http.StatusGatewayTimeout)
		e.wantHits("/o", 1)
	})
	t.Run("§5.2.1.7 only-if-cached with another variant stored: 504", func(t *testing.T) {
		e := newEnv(t, opts{}, varyOrigin("Accept-Language"))
		e.get("/o", "Accept-Language", "en")
		r := e.get("/o", "Accept-Language", "fr", "Cache-Control", "only-if-cached")
		wantStatus(t, r, http.StatusGatewayTimeout)
		e.wantHits("/o", 1)
	})
}

// TestRequestNoStore checks §5.2.1.5: the response to a no-store request is
// not stored.
func TestRequestNoStore(t *testing.T) {
	t.Run("§5.2.1.5 no-store request on a miss: not stored", func(t *testing.T) {
		e := newEnv(t, opts{}, numbered("v", "Cache-Control", "max-age=100"))
		r := e.get("/n", "Cache-Control", "no-store")
		wantBody(t, r, "v1")
		if r.CS.has("stored") {
			t.Errorf("stored despite request no-store: %v", r)
		}
		r = e.get("/n")
		wantBody(t, r, "v2")
		wantFwd(t, r, "uri-miss")
	})
	t.Run("§5.2.1.5 no-store with no-cache on a stored entry: does not replace it", func(t *testing.T) {
		e := newEnv(t, opts{}, numbered("v", "Cache-Control", "max-age=100"))
		e.get("/n")
		r := e.get("/n", "Cache-Control", "no-store, no-cache")
		wantBody(t, r, "v2")
		if r.CS.has("stored") {
			t.Errorf("stored despite request no-store: %v", r)
		}
		r = e.get("/n")
		wantHit(t, r)
		wantBody(t, r, "v1")
	})
}

// TestRequestNoCacheRefreshes checks that a forced revalidation that gets a
// new 200 updates the stored entry for later requests (§5.2.1.4, §4.3.3).
func TestRequestNoCacheRefreshes(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=100")
		io.WriteString(w, "v"+strconv.Itoa(n))
	})
	e.get("/n")
	r := e.get("/n", "Cache-Control", "no-cache")
	wantFwd(t, r, "request")
	wantBody(t, r, "v2")
	r = e.get("/n")
	wantHit(t, r)
	wantBody(t, r, "v2")
}

// TestResponsePragmaNotInvented checks that a response's Pragma: no-cache,
// which has no meaning in a response (RFC 9111 §5.4 defines it for
// requests), neither makes edged revalidate nor reaches the client as a
// Cache-Control the origin did not send, though Go's HTTP/1 client turns it
// into "Cache-Control: no-cache" when reading the origin's response; and
// that a Cache-Control: no-cache the origin did send is obeyed and
// forwarded. The answers are read as bytes: Go's client would invent the
// field again on this side.
func TestResponsePragmaNotInvented(t *testing.T) {
	cases := []struct {
		name   string
		resp   []string
		hit    bool
		wantCC bool
	}{
		{name: "§5.4 Pragma: no-cache with Expires: stored and fresh, no Cache-Control added", resp: []string{"Pragma", "no-cache", "Expires", httpDate(epoch.Add(time.Hour))}, hit: true},
		{name: "§5.4 Pragma: no-cache with Last-Modified: heuristic freshness", resp: []string{"Pragma", "no-cache", "Last-Modified", httpDate(epoch.Add(-100 * time.Hour))}, hit: true},
		{name: "§5.2.2.4 Pragma and Cache-Control: no-cache: revalidated, both forwarded", resp: []string{"Pragma", "no-cache", "Cache-Control", "no-cache", "Expires", httpDate(epoch.Add(time.Hour))}, wantCC: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts{}, numbered("v", tc.resp...))
			for i := range 2 {
				head := strings.ToLower(e.rawHead("/p"))
				if got := strings.Contains(head, "\r\ncache-control:"); got != tc.wantCC {
					t.Errorf("response %d has Cache-Control: %v, want %v\n%s", i+1, got, tc.wantCC, head)
				}
				if !strings.Contains(head, "\r\npragma: no-cache\r\n") {
					t.Errorf("response %d lacks the origin's Pragma\n%s", i+1, head)
				}
				if hit := strings.Contains(head, "\r\ncache-status: edged; hit"); i == 1 && hit != tc.hit {
					t.Errorf("second response hit=%v, want %v\n%s", hit, tc.hit, head)
				}
			}
		})
	}
}

// rawHead sends a GET for path on a new connection and returns the
// response head as received, without Go's client reading it.
func (e *env) rawHead(path string) string {
	e.t.Helper()
	c, err := net.Dial("tcp", e.host)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+e.host+"\r\nConnection: close\r\n\r\n"); err != nil {
		e.t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		e.t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(b), "\r\n\r\n")
	return head + "\r\n"
}
