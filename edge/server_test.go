package edge_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/testkit"
)

// Both HTTP/1 servers put each protocol where it belongs: HTTP/1.x on the
// chosen HTTP/1 server, HTTP/2 (ALPN h2, h2c prior knowledge when enabled)
// on net/http, with Request.TLS on TLS connections, a 505 for prior
// knowledge when h2c is off, and connections that never carried a request
// counted as unused.
func TestServerProtocols(t *testing.T) {
	tlsCfg, roots := testTLS(t, "h2", "http/1.1")

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
		if r.TLS != nil {
			io.WriteString(w, " tls")
		}
	})
	for _, mode := range []string{edge.HTTP1Edged, edge.HTTP1NetHTTP} {
		t.Run(strings.ReplaceAll(mode, "/", ""), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := edge.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: mode, H2C: true, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			plain, tlsLn := listen(t), listen(t)
			go srv.Serve(plain)
			go srv.ServeTLS(tlsLn, tlsCfg)
			t.Cleanup(func() { srv.Close() })

			get := func(tr http.RoundTripper, url string) string {
				t.Helper()
				resp, err := (&http.Client{Transport: tr}).Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			var h2c http.Protocols
			h2c.SetUnencryptedHTTP2(true)
			var h2 http.Protocols
			h2.SetHTTP2(true)
			var h11 http.Protocols
			h11.SetHTTP1(true)
			clientTLS := &tls.Config{RootCAs: roots, ServerName: "example.com"}
			for _, c := range []struct {
				name string
				tr   http.RoundTripper
				url  string
				want string
			}{
				{"http/1.1", &http.Transport{}, "http://" + plain.Addr().String(), "HTTP/1.1"},
				{"h2c", &http.Transport{Protocols: &h2c}, "http://" + plain.Addr().String(), "HTTP/2.0"},
				{"tls http/1.1", &http.Transport{Protocols: &h11, TLSClientConfig: clientTLS}, "https://" + tlsLn.Addr().String(), "HTTP/1.1 tls"},
				{"tls h2", &http.Transport{Protocols: &h2, TLSClientConfig: clientTLS}, "https://" + tlsLn.Addr().String(), "HTTP/2.0 tls"},
			} {
				if got := get(c.tr, c.url); got != c.want {
					t.Errorf("%s: got %q, want %q", c.name, got, c.want)
				}
			}

			// A connection that sends nothing and closes is unused.
			before, _ := testkit.Metric(t, reg, "edged_client_connections_unused_total")
			nc, err := net.Dial("tcp", plain.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			nc.Close()
			testkit.Eventually(t, 5*time.Second, func() bool {
				v, _ := testkit.Metric(t, reg, "edged_client_connections_unused_total")
				return v == before+1
			}, "the unused connection counted")
		})
	}

	// Without h2c, prior knowledge is refused with 505 by both.
	for _, mode := range []string{edge.HTTP1Edged, edge.HTTP1NetHTTP} {
		srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: mode})
		if err != nil {
			t.Fatal(err)
		}
		ln := listen(t)
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		line, _ := bufio.NewReader(nc).ReadString('\n')
		nc.Close()
		if !strings.HasPrefix(line, "HTTP/1.1 505 ") {
			t.Errorf("%s: prior knowledge without h2c: %q, want a 505", mode, line)
		}
	}
	if _, err := edge.NewServer(h, edge.ServerConfig{HTTP1: "nginx"}); err == nil {
		t.Error("an unknown HTTP/1 server was accepted")
	}
}

// testTLS returns a server TLS configuration with httptest's certificate
// (for example.com and 127.0.0.1) offering the ALPN protocols protos, and
// the pool that trusts it.
func testTLS(t testing.TB, protos ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	cert := httptest.NewUnstartedServer(nil) // borrow httptest's certificate
	cert.StartTLS()
	defer cert.Close()
	cfg := cert.TLS.Clone()
	cfg.NextProtos = protos
	return cfg, cert.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// pragmaOriginHead sends GET /p with Pragma: no-cache through an edge on
// the HTTP/1 server mode and returns the request head the origin got, in
// lower case. The origin reads raw bytes: a net/http origin would invent
// Cache-Control on its side.
func pragmaOriginHead(t *testing.T, mode string) string {
	t.Helper()
	oln := listen(t)
	t.Cleanup(func() { oln.Close() })
	heads := make(chan string, 1)
	go func() {
		c, err := oln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		heads <- head.String()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	}()
	addr, _ := diffEdgeTB(t, "http://"+oln.Addr().String(), mode, time.Now)
	out := testkit.Exchange(t, addr, "GET /p HTTP/1.1\r\nHost: www.example.com\r\nPragma: no-cache\r\n\r\n", []string{"GET"})
	if len(out) != 1 || !strings.HasPrefix(out[0], "HTTP/1.1 200") {
		t.Fatalf("answer: %q", out)
	}
	return strings.ToLower(<-heads)
}

// edged's loop forwards what the client sent: a request's Pragma: no-cache
// reaches the origin without the Cache-Control: no-cache that net/http's
// server invents for it.
func TestPragmaNotTurnedIntoCacheControl(t *testing.T) {
	head := pragmaOriginHead(t, edge.HTTP1Edged)
	if !strings.Contains(head, "\r\npragma: no-cache\r\n") || strings.Contains(head, "cache-control") {
		t.Errorf("the origin got\n%s\nwant the client's Pragma alone", head)
	}
}

// Under server.http1: net/http the request side is net/http's: its server
// turns a request's Pragma: no-cache without Cache-Control into
// Cache-Control: no-cache before edged sees the request, and a request
// forwarded to the origin carries both. This is a documented departure
// (docs/caching.md, RFC 9111 §5.4): the two mean the same to a cache, edged
// decides the same either way, and the default server does not do it. The
// test pins the behaviour so that a change in net/http shows up here.
func TestPragmaUnderNetHTTPGainsCacheControl(t *testing.T) {
	head := pragmaOriginHead(t, edge.HTTP1NetHTTP)
	if !strings.Contains(head, "\r\npragma: no-cache\r\n") || !strings.Contains(head, "\r\ncache-control: no-cache\r\n") {
		t.Errorf("the origin got\n%s\nwant Pragma and net/http's Cache-Control (if net/http stopped adding it, update docs/caching.md)", head)
	}
}

// A new connection that sends nothing is closed at FirstByteTimeout (on
// the TLS listener both before the handshake and after it), one whose
// request is arriving slowly only at ReadHeaderTimeout, and a keep-alive
// connection between requests at IdleTimeout: on both HTTP/1 servers, over
// cleartext and TLS.
func TestFirstByteTimeout(t *testing.T) {
	const firstByte, header = 200 * time.Millisecond, 10 * time.Second
	tlsCfg, roots := testTLS(t, "http/1.1")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	// closedWithin reports whether the server closed c within d (a read
	// returns EOF or a reset rather than timing out).
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		ne, timedOut := err.(net.Error)
		return !(timedOut && ne.Timeout())
	}
	// trickle writes a byte of a header field every firstByte/2 for five
	// first-byte timeouts: a slow client, still sending.
	trickle := func(c net.Conn) {
		io.WriteString(c, "X-Slow: ")
		tick := time.NewTicker(firstByte / 2)
		defer tick.Stop()
		for range 10 {
			<-tick.C
			c.Write([]byte{'a'})
		}
		io.WriteString(c, "\r\n\r\n")
	}
	for _, mode := range []string{edge.HTTP1Edged, edge.HTTP1NetHTTP} {
		t.Run(strings.ReplaceAll(mode, "/", ""), func(t *testing.T) {
			srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: mode, FirstByteTimeout: firstByte, ReadHeaderTimeout: header})
			if err != nil {
				t.Fatal(err)
			}
			plain, tlsLn := listen(t), listen(t)
			go srv.Serve(plain)
			go srv.ServeTLS(tlsLn, tlsCfg)
			t.Cleanup(func() { srv.Close() })
			for _, overTLS := range []bool{false, true} {
				dial := func() net.Conn {
					t.Helper()
					if overTLS {
						c, err := tls.Dial("tcp", tlsLn.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "example.com"})
						if err != nil {
							t.Fatal(err)
						}
						return c
					}
					c, err := net.Dial("tcp", plain.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					return c
				}
				name := map[bool]string{false: "cleartext", true: "tls"}[overTLS]
				t.Run(name, func(t *testing.T) {
					silent := dial()
					defer silent.Close()
					if !closedWithin(silent, header/2) {
						t.Error("a silent connection was still open at half the header timeout")
					}
					if overTLS { // silent before its handshake, too
						raw, err := net.Dial("tcp", tlsLn.Addr().String())
						if err != nil {
							t.Fatal(err)
						}
						defer raw.Close()
						if !closedWithin(raw, header/2) {
							t.Error("a connection that sent no ClientHello was still open at half the header timeout")
						}
					}

					slow := dial()
					defer slow.Close()
					io.WriteString(slow, "GET /slow HTTP/1.1\r\nHost: example.com\r\n")
					trickle(slow)
					br := bufio.NewReader(slow)
					slow.SetReadDeadline(time.Now().Add(header))
					if line, err := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 200 ") {
						t.Errorf("a request trickled over five first-byte timeouts: %q, %v; want a 200", line, err)
					}

					idle := dial()
					defer idle.Close()
					io.WriteString(idle, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
					resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					if closedWithin(idle, 5*firstByte) {
						t.Error("a keep-alive connection was closed between requests at the first-byte timeout")
					}
				})
			}
		})
	}
}

// Shutdown closes at once the connections that have not begun a request,
// while a request in flight goes on to its answer, on both HTTP/1
// servers. (Regression: net/http counts a connection that has sent no
// request as busy for 5 s, so Shutdown waited that long for it.)
func TestShutdownClosesWaitingConnections(t *testing.T) {
	for _, mode := range []string{edge.HTTP1Edged, edge.HTTP1NetHTTP} {
		t.Run(strings.ReplaceAll(mode, "/", ""), func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-release
				io.WriteString(w, "done")
			})
			srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: mode})
			if err != nil {
				t.Fatal(err)
			}
			ln := listen(t)
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			dial := func(send string) net.Conn {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				io.WriteString(c, send)
				return c
			}
			silent, half := dial(""), dial("GET / HTTP/1.1\r\n")
			busy := dial("GET /busy HTTP/1.1\r\nHost: example.com\r\n\r\n")
			<-started // accepted after the other two: all three are the server's
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(context.Background()) }()
			for name, c := range map[string]net.Conn{"silent": silent, "half a head": half} {
				c.SetReadDeadline(time.Now().Add(3 * time.Second)) // within net/http's 5 s
				if _, err := io.Copy(io.Discard, c); err != nil {
					t.Errorf("%s connection: %v; want it closed while a request is in flight", name, err)
				}
			}
			close(release)
			resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
			if err != nil {
				t.Fatalf("the request in flight: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "done" {
				t.Errorf("the request in flight got %q", b)
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}
