package edge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/edge"
)

// Request fields that could change the origin's answer without being part
// of the cache key never reach the origin.
func TestUnkeyedHeadersStripped(t *testing.T) {
	o := newOrigin(t, cacheable("x"))
	base, _ := newEdge(t, edgeOpts{}, o)
	hdr := []string{"X-Forwarded-Host", "evil.example", "X-Original-URL", "/admin", "X-Rewrite-URL", "/admin",
		"X-HTTP-Method-Override", "DELETE", "X-Forwarded-Scheme", "nothttp", "X-Forwarded-Proto", "gopher"}
	get(t, base, "GET", "example.com", "/p", hdr...)
	r := o.lastRequest()
	for i := 0; i < len(hdr); i += 2 {
		if got := r.Header.Get(hdr[i]); got != "" && !(hdr[i] == "X-Forwarded-Proto" && got == "http") {
			t.Errorf("%s reached the origin: %q", hdr[i], got)
		}
	}
	if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want the edge's own http", got)
	}
}

// The origin receives the path the cache key was built from.
func TestOriginPathNormalizedLikeTheKey(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "path="+r.URL.EscapedPath())
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	for _, tt := range []struct{ target, want string }{
		{"/a/../b", "path=/b"},
		{"/%61%2Fb", "path=/a%2Fb"},
		{"/x/./y", "path=/x/y"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET "+tt.target+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
		raw, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.HasSuffix(string(raw), tt.want) {
			t.Errorf("%s: origin saw %q", tt.target, raw[strings.LastIndex(string(raw), "\n")+1:])
		}
	}
}

// A GET with a body has the body dropped: it never reaches the origin and
// cannot make one client's cached answer depend on it.
func TestGetBodyDropped(t *testing.T) {
	var sawBody string
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sawBody = string(b)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok")
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	req, _ := http.NewRequest("GET", base+"/g", strings.NewReader("payload"))
	req.Host = "example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sawBody != "" {
		t.Errorf("the origin received the GET body %q", sawBody)
	}
}

func TestRequestBodyLimit(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "accepted")
	})
	base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.MaxBodyBytes = 10 }}, o)
	for _, chunked := range []bool{false, true} {
		body := io.Reader(strings.NewReader(strings.Repeat("x", 100)))
		if chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
		req, _ := http.NewRequest("POST", base+"/upload", body)
		req.Host = "example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked=%v: %d, want 413", chunked, resp.StatusCode)
		}
	}
	resp, body := get(t, base, "POST", "example.com", "/upload")
	if resp.StatusCode != 200 || body != "accepted" {
		t.Errorf("small POST: %d %q", resp.StatusCode, body)
	}
}

// rawGet sends one GET for target with Host host on a fresh connection,
// exactly as written, and returns the answer's status, body and
// Cache-Status.
func rawGet(t *testing.T, base, host, target string) (int, string, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", target, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", target, host, err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Cache-Status")
}

// No response generated for one request-target is served for another
// (issue 15, point 10). The origin writes the host and request-target it
// received into the body. A cacheless edge tells, for each client
// target, what the origin receives for it; a caching edge, asked for
// every variant (misses, then hits, in two orders), must answer each with
// a body made for exactly that origin target, and must ask the origin
// once per distinct origin target (the key still joins what is the same).
func TestNoResponseServedForAnotherTarget(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "text/plain") // lets the HTTP/1 fast path serve the hits
		io.WriteString(w, r.Host+" "+r.RequestURI)
	}
	hosts := []string{"example.com", "EXAMPLE.com", "example.com:80", "example.com.", "Www.Example.Com"}
	targets := []string{
		"/q", "/q?", "/q?a=1&b=2", "/q?b=2&a=1", "/q?a=1&&b=2", "/q?a=1&b=2&", "/q?&a=1&b=2",
		"/q?a=1&a=2", "/q?a=2&a=1", "/q?A=1&b=2", "/q?a=%31&b=2", "/q?a=1&b=%32",
		"/q?a=~", "/q?a=%7e", "/q?a=%7E", "/q?a=%2f", "/q?a=%2F", "/q?a=/", "/q?a+b", "/q?a%20b",
		"/Q", "/%71", "/%51", "/%71?b=2&a=1", "/x/../q", "/./q", "/q/.", "/q/", "/x/%2e%2e/q", "/x/%2E%2E/q",
		"//q", "/q%2fx", "/q%2Fx", "/q/x", "/q;a=1", "/q%3Ba=1", "/%7euser", "/~user", "/%7Euser",
	}
	type variant struct{ host, target string }
	var variants []variant
	for _, h := range hosts {
		for _, tg := range targets {
			variants = append(variants, variant{h, tg})
		}
	}

	o := newOrigin(t, echo)
	ref, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.CacheDisabled = true }}, o)
	want := make(map[variant]string, len(variants))
	distinct := map[string]bool{}
	for _, v := range variants {
		code, body, _ := rawGet(t, ref, v.host, v.target)
		if code != 200 {
			t.Fatalf("cacheless edge: %s (Host %s): status %d %q", v.target, v.host, code, body)
		}
		want[v], distinct[body] = body, true
	}
	// The example: the two orders are two resources to the origin.
	if a, b := want[variant{"example.com", "/q?a=1&b=2"}], want[variant{"example.com", "/q?b=2&a=1"}]; a == b {
		t.Errorf("the origin received %q for both query orders", a)
	}

	reversed := slices.Clone(variants)
	slices.Reverse(reversed)
	for _, order := range []struct {
		name string
		vs   []variant
	}{{"forward", variants}, {"reverse", reversed}} {
		t.Run(order.name, func(t *testing.T) {
			o := newOrigin(t, echo)
			base, _ := newEdge(t, edgeOpts{}, o)
			for pass := range 2 {
				for _, v := range order.vs {
					code, body, cs := rawGet(t, base, v.host, v.target)
					if code != 200 || body != want[v] {
						t.Errorf("pass %d: %s (Host %s): %d %q (%s), but the origin answers this target with %q",
							pass, v.target, v.host, code, body, cs, want[v])
					}
				}
			}
			if got := o.Total(); got != len(distinct) {
				t.Errorf("the origin was asked %d times for %d distinct targets", got, len(distinct))
			}
		})
	}
}
