package lb_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/lb"
)

// rawOrigin is an origin on a real socket that answers the requests of each
// connection, in order, with the raw responses given (one per request, the
// last repeated), keeping the connection open. It reports how many
// connections it accepted.
func rawOrigin(t *testing.T, ln net.Listener, responses ...string) (accepted func() int) {
	t.Helper()
	conns := make(chan struct{}, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- struct{}{}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, responses[min(i, len(responses)-1)]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return func() int { return len(conns) }
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// rawResp is a raw HTTP/1.1 response with the field lines given (CRLF
// added) and the body "ok".
func rawResp(status string, fields ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("Content-Length: 2\r\n\r\nok")
	return b.String()
}

// getAll sends n GETs in turn through p and returns each response's
// Cache-Control and Pragma lines.
func getAll(t *testing.T, p *lb.Pool, scheme string, n int) (cc, pragma [][]string) {
	t.Helper()
	for range n {
		req, _ := http.NewRequest("GET", scheme+"://site.example/r", nil)
		resp, err := p.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cc = append(cc, resp.Header["Cache-Control"])
		pragma = append(pragma, resp.Header["Pragma"])
	}
	return cc, pragma
}

// TestPragmaNotTurnedIntoCacheControlFromOrigin checks that the pool hands
// on the fields the origin sent and no others: Go's HTTP/1 client adds
// "Cache-Control: no-cache" to a response with "Pragma: no-cache" and no
// Cache-Control, and the pool removes exactly that invention, never a
// Cache-Control the origin sent (RFC 9111 §5.4: Pragma has no meaning in
// a response; RFC 9110 §3.7: an intermediary forwards what it received).
func TestPragmaNotTurnedIntoCacheControlFromOrigin(t *testing.T) {
	tests := []struct {
		name       string
		responses  []string
		wantCC     [][]string // per request
		wantPragma []string   // of every response
	}{
		{name: "Pragma alone: nothing added",
			responses: []string{rawResp("200 OK", "Pragma: no-cache")}, wantCC: [][]string{nil}, wantPragma: []string{"no-cache"}},
		{name: "Pragma and Cache-Control: no-cache both kept",
			responses: []string{rawResp("200 OK", "Pragma: no-cache", "Cache-Control: no-cache")}, wantCC: [][]string{{"no-cache"}}, wantPragma: []string{"no-cache"}},
		{name: "Cache-Control before Pragma kept",
			responses: []string{rawResp("200 OK", "Cache-Control: no-cache", "Pragma: no-cache")}, wantCC: [][]string{{"no-cache"}}, wantPragma: []string{"no-cache"}},
		{name: "lower-case cache-control kept",
			responses: []string{rawResp("200 OK", "pragma: no-cache", "cache-control: no-cache")}, wantCC: [][]string{{"no-cache"}}, wantPragma: []string{"no-cache"}},
		{name: "empty Cache-Control kept as sent",
			responses: []string{rawResp("200 OK", "Pragma: no-cache", "Cache-Control:")}, wantCC: [][]string{{""}}, wantPragma: []string{"no-cache"}},
		{name: "another Cache-Control kept",
			responses: []string{rawResp("200 OK", "Pragma: no-cache", "Cache-Control: max-age=60")}, wantCC: [][]string{{"max-age=60"}}, wantPragma: []string{"no-cache"}},
		{name: "Pragma with more members: Go adds nothing",
			responses: []string{rawResp("200 OK", "Pragma: no-cache, x")}, wantCC: [][]string{nil}, wantPragma: []string{"no-cache, x"}},
		{name: "a 404 with Pragma alone",
			responses: []string{rawResp("404 Not Found", "Pragma: no-cache")}, wantCC: [][]string{nil}, wantPragma: []string{"no-cache"}},
		{name: "bare LF line endings",
			responses: []string{"HTTP/1.1 200 OK\nPragma: no-cache\nContent-Length: 2\n\nok"}, wantCC: [][]string{nil}, wantPragma: []string{"no-cache"}},
		{name: "an interim 103's Cache-Control is not the final response's",
			responses: []string{"HTTP/1.1 103 Early Hints\r\nCache-Control: no-cache\r\nLink: </s.css>; rel=preload\r\n\r\n" + rawResp("200 OK", "Pragma: no-cache")},
			wantCC:    [][]string{nil}, wantPragma: []string{"no-cache"}},
		{name: "one connection, alternating responses",
			responses:  []string{rawResp("200 OK", "Pragma: no-cache", "Cache-Control: no-cache"), rawResp("200 OK", "Pragma: no-cache"), rawResp("200 OK", "Pragma: no-cache", "Cache-Control: no-cache"), rawResp("200 OK", "Pragma: no-cache")},
			wantCC:     [][]string{{"no-cache"}, nil, {"no-cache"}, nil},
			wantPragma: []string{"no-cache"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenTCP(t)
			accepted := rawOrigin(t, ln, tc.responses...)
			p := newPool(t, lb.Config{Shards: []lb.Shard{{URL: "http://" + ln.Addr().String()}}})
			cc, pragma := getAll(t, p, "http", len(tc.wantCC))
			for i := range tc.wantCC {
				if !slices.Equal(cc[i], tc.wantCC[i]) {
					t.Errorf("response %d: Cache-Control %q, want %q", i+1, cc[i], tc.wantCC[i])
				}
				if !slices.Equal(pragma[i], tc.wantPragma) {
					t.Errorf("response %d: Pragma %q, want %q", i+1, pragma[i], tc.wantPragma)
				}
			}
			if n := accepted(); n != 1 {
				t.Errorf("the origin accepted %d connections, want 1 (one keep-alive connection)", n)
			}
		})
	}
}

// TestPragmaNotTurnedIntoCacheControlOverTLS is the same over TLS, where the
// pool does the handshake itself to see the plaintext, and with HTTP/2,
// where Go invents nothing and the connection is the transport's own.
func TestPragmaNotTurnedIntoCacheControlOverTLS(t *testing.T) {
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	tlsCfg, roots := cert.TLS.Clone(), cert.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	cert.Close()
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "example.com"}

	t.Run("HTTP/1.1", func(t *testing.T) {
		cfg := tlsCfg.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		ln := tls.NewListener(listenTCP(t), cfg)
		rawOrigin(t, ln, rawResp("200 OK", "Pragma: no-cache"), rawResp("200 OK", "Pragma: no-cache", "Cache-Control: no-cache"))
		for _, proto := range []string{"http1", "h2"} { // h2 offered, http/1.1 chosen
			p := newPool(t, lb.Config{Shards: []lb.Shard{{URL: "https://" + ln.Addr().String()}}, Protocol: proto, TLSClientConfig: clientTLS})
			cc, _ := getAll(t, p, "https", 2)
			if cc[0] != nil || !slices.Equal(cc[1], []string{"no-cache"}) {
				t.Errorf("%s: Cache-Control %q, want none, then the origin's no-cache", proto, cc)
			}
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Pragma", "no-cache")
			w.Header().Set("X-Proto", r.Proto)
		}))
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		rootsH2 := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		p := newPool(t, lb.Config{Shards: []lb.Shard{{URL: srv.URL}}, Protocol: "h2", TLSClientConfig: &tls.Config{RootCAs: rootsH2}})
		req, _ := http.NewRequest("GET", "https://site.example/", nil)
		resp, err := p.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.Header.Get("X-Proto") != "HTTP/2.0" {
			t.Errorf("answered over %s (origin saw %q), want HTTP/2", resp.Proto, resp.Header.Get("X-Proto"))
		}
		if v, ok := resp.Header["Cache-Control"]; ok {
			t.Errorf("Cache-Control %q over HTTP/2", v)
		}
	})
}
