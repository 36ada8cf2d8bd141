package edge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/lb"
)

// rawRequest sends one request line (method and target as written, Host
// example.com or, for CONNECT, the target's authority; an empty body) on a
// fresh connection and reads the answer.
func rawRequest(t *testing.T, base, method, target string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host := "example.com"
	if method == http.MethodConnect {
		host = target
	}
	if _, err := io.WriteString(c, method+" "+target+" HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp, string(b)
}

// A site forwards the methods it allows and no other (RFC 9110 §9.1:
// methods are case-sensitive; §15.5.6 405 with Allow for a method edged
// knows, §15.6.2 501 for one it does not). CONNECT is never forwarded and
// TRACE is not by default.
func TestMethods(t *testing.T) {
	const defaultAllow = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"
	tests := []struct {
		site    []string // Site.Methods; nil: the default
		method  string
		target  string
		want    int
		allow   string // the Allow field of a 405
		reached bool   // the origin got the request
	}{
		{nil, "GET", "/m", 200, "", true},
		{nil, "HEAD", "/m", 200, "", true},
		{nil, "POST", "/m", 200, "", true},
		{nil, "PUT", "/m", 200, "", true},
		{nil, "DELETE", "/m", 200, "", true},
		{nil, "OPTIONS", "/m", 200, "", true},
		{nil, "PATCH", "/m", 200, "", true},
		{nil, "TRACE", "/m", 405, defaultAllow, false},
		{nil, "CONNECT", "example.com:443", 405, defaultAllow, false},
		{nil, "get", "/m", 501, "", false},
		{nil, "Get", "/m", 501, "", false},
		{nil, "post", "/m", 501, "", false},
		{nil, "PROPFIND", "/m", 501, "", false},
		{nil, "BREW", "/m", 501, "", false},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, "TRACE", "/m", 200, "", true},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, "PROPFIND", "/m", 200, "", true},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, "POST", "/m", 405, "GET, HEAD, TRACE, PROPFIND", false},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, "CONNECT", "example.com:443", 405, "GET, HEAD, TRACE, PROPFIND", false},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, "MKCOL", "/m", 501, "", false},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, "propfind", "/m", 501, "", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.site, ",")+"/"+tt.method, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin saw "+r.Method) })
			base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.Methods = tt.site }}, o)
			resp, body := rawRequest(t, base, tt.method, tt.target)
			if resp.StatusCode != tt.want {
				t.Errorf("%s: status %d %q, want %d", tt.method, resp.StatusCode, body, tt.want)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("%s: Allow %q, want %q", tt.method, got, tt.allow)
			}
			if reached := o.Total() > 0; reached != tt.reached {
				t.Errorf("%s: the origin got %d requests, want reached=%v", tt.method, o.Total(), tt.reached)
			}
			if tt.reached && tt.method != "HEAD" && body != "origin saw "+tt.method {
				t.Errorf("%s: body %q", tt.method, body)
			}
		})
	}
}

// A method that differs from GET only in case is an unknown method: it
// is answered 501 without reaching the origin, so it cannot invalidate the
// stored response as a successful unsafe request would (RFC 9111 §4.4).
func TestLowercaseMethodDoesNotInvalidate(t *testing.T) {
	o := newOrigin(t, cacheable("x"))
	base, _ := newEdge(t, edgeOpts{}, o)
	get(t, base, "GET", "example.com", "/inv")
	if resp, _ := rawRequest(t, base, "get", "/inv"); resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("get: %d, want 501", resp.StatusCode)
	}
	resp, _ := get(t, base, "GET", "example.com", "/inv")
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit") || o.Hits("/inv") != 1 {
		t.Errorf("after get: Cache-Status %q, %d origin requests; want a hit and 1", cs, o.Hits("/inv"))
	}
}

// A site's method list is checked when the handler is built.
func TestSiteMethodsChecked(t *testing.T) {
	c, err := cache.New(cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pool, err := lb.NewPool(lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		methods []string
		ok      bool
	}{
		{nil, true},
		{[]string{"GET", "HEAD"}, true},
		{[]string{"GET", "HEAD", "TRACE", "PROPFIND"}, true},
		{[]string{}, false},
		{[]string{"GET"}, false},
		{[]string{"get", "head"}, false},
		{[]string{"GET", "HEAD", "CONNECT"}, false},
		{[]string{"GET", "HEAD", "PURGE"}, false},
		{[]string{"GET", "HEAD", "BAD METHOD"}, false},
		{[]string{"GET", "HEAD", ""}, false},
	} {
		site := &edge.Site{Name: "s", Hosts: []string{"example.com"}, Origin: pool, Methods: tt.methods}
		_, err := edge.New(edge.Config{Sites: []*edge.Site{site}, Cache: c})
		if (err == nil) != tt.ok {
			t.Errorf("Methods %q: err = %v, want ok=%v", tt.methods, err, tt.ok)
		}
	}
}

// CONNECT over HTTP/2 (RFC 9113 §8.5) is refused as over HTTP/1: 405,
// never a tunnel, never at the origin.
func TestConnectOverHTTP2(t *testing.T) {
	o := newOrigin(t, nil)
	base, _ := newEdge(t, edgeOpts{h2c: true}, o)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodConnect, base, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "example.com:443"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Errorf("CONNECT over %s: %d, Allow %q; want HTTP/2 405 with Allow", resp.Proto, resp.StatusCode, resp.Header.Get("Allow"))
	}
	if n := o.Total(); n != 0 {
		t.Errorf("the origin got %d requests", n)
	}
}
