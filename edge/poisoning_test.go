package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/edge"
)

// reflectFields is an origin that writes every request field it received
// into its (cacheable) body, one "Name: value" line each, sorted.
func reflectFields(w http.ResponseWriter, r *http.Request) {
	var lines []string
	for k, vv := range r.Header {
		lines = append(lines, k+": "+strings.Join(vv, ", "))
	}
	slices.Sort(lines)
	w.Header().Set("Cache-Control", "public, max-age=600")
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, strings.Join(lines, "\n"))
}

// No request field of the unkeyed families can poison a stored response
// (issue 15, point 12): an origin that reflects every request field into
// its body is sent each attack field (its name as written, in other
// cases and with '_' for '-'); neither the answer to the attacker nor the
// stored response a clean request then gets carries the attacker's value.
func TestUnkeyedHeaderFamiliesCannotPoison(t *testing.T) {
	attacks := []string{
		"X-Forwarded-Host", "x-forwarded-host", "X_Forwarded_Host", "X-FORWARDED-HOST",
		"X-Forwarded-Scheme", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Server",
		"X-Forwarded-Prefix", "X-Forwarded-Path", "X-Forwarded-Uri", "X-Forwarded-Ssl", "X-Forwarded-Protocol",
		"X_Forwarded_For", "x_forwarded_for",
		"X-Original-URL", "X-Original-Host", "X-Original-Method", "X_Original_URL",
		"X-Rewrite-URL", "X-Rewrite-Path", "X-Override-URL", "X-Override-Host",
		"Forwarded", "forwarded",
		"X-Real-IP", "x-real-ip", "X_Real_IP", "X-Host", "X-Custom-IP-Authorization",
		"X-HTTP-Method", "X-HTTP-Method-Override", "X-Method-Override", "x_http_method_override",
	}
	o := newOrigin(t, reflectFields)
	base, _ := newEdge(t, edgeOpts{}, o)
	for i, name := range attacks {
		t.Run(name, func(t *testing.T) {
			evil := fmt.Sprintf("evil%d.attacker.test", i)
			target := fmt.Sprintf("/poison/%d", i)
			code, body, _ := rawGetFields(t, base, "example.com", target, name+": "+evil+"\r\n")
			if code != 200 || strings.Contains(body, evil) {
				t.Fatalf("the attacker got %d, and the origin saw %s:\n%s", code, name, body)
			}
			code, body, cs := rawGet(t, base, "example.com", target)
			if code != 200 || !strings.HasPrefix(cs, "edged; hit") || strings.Contains(body, evil) {
				t.Errorf("the next client got %d (%s):\n%s", code, cs, body)
			}
		})
	}

	// What edged sets itself is its own: the client's X-Forwarded-For
	// chain is kept and extended, X-Forwarded-Proto is replaced; fields
	// outside the families reach the origin.
	_, body, _ := rawGetFields(t, base, "example.com", "/own",
		"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: gopher\r\nX-Requested-With: XMLHttpRequest\r\nX-Forwardedness: 1\r\n")
	for _, want := range []string{"X-Forwarded-For: 192.0.2.1, 127.0.0.1", "X-Forwarded-Proto: http", "X-Requested-With: XMLHttpRequest", "X-Forwardedness: 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the origin did not see %q:\n%s", want, body)
		}
	}
}

// A site's own list takes names and families, and replaces the default.
func TestUnkeyedHeadersSiteList(t *testing.T) {
	o := newOrigin(t, reflectFields)
	base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.UnkeyedHeaders = []string{"X-Debug-*", "X-Tenant", "X-Forwarded-For"} }}, o)
	_, body, _ := rawGetFields(t, base, "example.com", "/site",
		"X-Debug-Level: 9\r\nx_debug_trace: 1\r\nX-Tenant: a\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Host: kept.test\r\n")
	for _, gone := range []string{"X-Debug-Level", "X_debug_trace", "X-Tenant", "192.0.2.1"} {
		if strings.Contains(body, gone) {
			t.Errorf("%s reached the origin:\n%s", gone, body)
		}
	}
	for _, want := range []string{"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Host: kept.test"} {
		if !strings.Contains(body, want) {
			t.Errorf("the origin did not see %q:\n%s", want, body)
		}
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
	return rawGetFields(t, base, host, target, "")
}

// rawGetFields is rawGet with extra field lines ("Name: value\r\n"),
// sent byte for byte.
func rawGetFields(t *testing.T, base, host, target, fields string) (int, string, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\n"+fields+"Connection: close\r\n\r\n"); err != nil {
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
