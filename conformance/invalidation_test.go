package conformance_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// TestInvalidation stores /a, /b and /c, sends an unsafe request to /a and
// checks which of them are still hits (RFC 9111 §4.4).
func TestInvalidation(t *testing.T) {
	cases := []struct {
		name   string
		method string
		allow  bool     // the site forwards method (it is not one of the default methods)
		path   string   // target of the unsafe request; "" means /a
		status int      // its response status
		resp   []string // its response header pairs ("HOST" is replaced by the edge's host)
		gone   []string // paths that must be invalidated
		kept   []string // paths that must still be hits
	}{
		{name: "§4.4 POST 200 invalidates the target URI", method: "POST", status: 200, gone: []string{"/a"}, kept: []string{"/b", "/c"}},
		{name: "§4.4 PUT 201 invalidates the target URI", method: "PUT", status: 201, gone: []string{"/a"}, kept: []string{"/b"}},
		{name: "§4.4 DELETE 204 invalidates the target URI", method: "DELETE", status: 204, gone: []string{"/a"}, kept: []string{"/b"}},
		{name: "§4.4 PATCH 200 invalidates the target URI", method: "PATCH", status: 200, gone: []string{"/a"}, kept: []string{"/b"}},
		{name: "§4.4 an unknown method the site forwards is unsafe and invalidates", method: "FROB", allow: true, status: 200, gone: []string{"/a"}, kept: []string{"/b"}},
		// RFC 9110 §15.6.2: a method the site does not forward is answered
		// 501 by the edge; the origin never answered it, so nothing is
		// invalidated.
		{name: "§4.4 a method the site does not forward (501) does not invalidate", method: "FROB", status: 501, kept: []string{"/a"}},
		{name: "§4.4 methods are case-sensitive: post is not POST (501), no invalidation", method: "post", status: 501, kept: []string{"/a"}},
		{name: "§4.4 a 3xx is a non-error status: invalidates", method: "POST", status: 303, resp: []string{"Location", "/c"}, gone: []string{"/a", "/c"}, kept: []string{"/b"}},
		{name: "§4.4 relative Location is invalidated", method: "POST", status: 201, resp: []string{"Location", "/b"}, gone: []string{"/a", "/b"}, kept: []string{"/c"}},
		{name: "§4.4 absolute same-origin Location is invalidated", method: "POST", status: 201, resp: []string{"Location", "http://HOST/b"}, gone: []string{"/a", "/b"}, kept: []string{"/c"}},
		{name: "§4.4 Content-Location is invalidated", method: "PUT", status: 200, resp: []string{"Content-Location", "/c"}, gone: []string{"/a", "/c"}, kept: []string{"/b"}},
		{name: "§4.4 Location and Content-Location are both invalidated", method: "POST", status: 201, resp: []string{"Location", "/b", "Content-Location", "/c"}, gone: []string{"/a", "/b", "/c"}},
		{name: "§4.4 a Location on another host is not invalidated", method: "POST", status: 201, resp: []string{"Location", "http://other.example/b"}, gone: []string{"/a"}, kept: []string{"/b"}},
		{name: "§4.4 a Content-Location on another host is not invalidated", method: "POST", status: 200, resp: []string{"Content-Location", "http://other.example/c"}, gone: []string{"/a"}, kept: []string{"/c"}},
		{name: "§4.4 a Location with another scheme (other origin) is not invalidated", method: "POST", status: 201, resp: []string{"Location", "https://HOST/b"}, gone: []string{"/a"}, kept: []string{"/b"}},
		{name: "§4.4 POST 404 (error) does not invalidate", method: "POST", status: 404, kept: []string{"/a"}},
		{name: "§4.4 POST 400 (error) does not invalidate", method: "POST", status: 400, kept: []string{"/a"}},
		{name: "§4.4 POST 500 (error) does not invalidate", method: "POST", status: 500, kept: []string{"/a"}},
		{name: "§4.4 an error's Location is not invalidated either", method: "DELETE", status: 409, resp: []string{"Location", "/b"}, kept: []string{"/a", "/b"}},
		{name: "§4.4 OPTIONS is safe: no invalidation", method: "OPTIONS", status: 200, kept: []string{"/a"}},
		{name: "§4.4 the target URI includes the query: /a?x=1 leaves /a", method: "POST", path: "/a?x=1", status: 200, kept: []string{"/a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e *env
			var o opts
			if tc.allow {
				o.methods = []string{"GET", "HEAD", "POST", tc.method}
			}
			e = newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.Method == http.MethodGet {
					w.Header().Set("Cache-Control", "max-age=600")
					io.WriteString(w, r.URL.Path+strconv.Itoa(n))
					return
				}
				for i := 0; i+1 < len(tc.resp); i += 2 {
					w.Header().Add(tc.resp[i], replaceHost(tc.resp[i+1], e.host))
				}
				w.WriteHeader(tc.status)
			})
			for _, p := range []string{"/a", "/b", "/c"} {
				e.get(p)
				wantHit(t, e.get(p))
			}
			path := tc.path
			if path == "" {
				path = "/a"
			}
			r := e.do(tc.method, path)
			wantStatus(t, r, tc.status)
			for _, p := range tc.gone {
				r := e.get(p)
				if r.CS.hit() {
					t.Errorf("%s still served from the cache after %s %d: %v", p, tc.method, tc.status, r)
				}
			}
			for _, p := range tc.kept {
				wantHit(t, e.get(p))
			}
		})
	}
}

func replaceHost(v, host string) string {
	const marker = "HOST"
	for i := 0; i+len(marker) <= len(v); i++ {
		if v[i:i+len(marker)] == marker {
			return v[:i] + host + v[i+len(marker):]
		}
	}
	return v
}

// TestInvalidationTiers checks invalidation with both tiers (§4.4).
func TestInvalidationTiers(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=600")
			io.WriteString(w, long("v")+strconv.Itoa(n))
		})
		e.get("/a")
		wantHit(t, e.get("/a"))
		e.do(http.MethodPut, "/a")
		r := e.get("/a")
		wantFwd(t, r, "uri-miss")
		wantBody(t, r, long("v")+"3")
	})
}
