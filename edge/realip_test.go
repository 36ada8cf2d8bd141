package edge_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

// syncBuffer is an access log the test reads while the edge writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// clients returns the client field of every access-log line so far.
func (s *syncBuffer) clients(t *testing.T) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct{ Client string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access line %q: %v", line, err)
		}
		out = append(out, rec.Client)
	}
	return out
}

// realEdge is an edge for the client-address tests: a site whose rule
// answers 403 "client {client_ip}" to 203.0.113.0/24 and forwards the
// rest to an origin that echoes the X-Forwarded-For it got.
type realEdge struct {
	addr   string
	log    *syncBuffer
	reg    *prometheus.Registry
	origin *testkit.Origin
}

type realEdgeOpts struct {
	trusted []string // Config.TrustedProxies
	field   string   // Config.ClientIPHeader
	proxy   edge.ProxyProtocol
	limits  edge.ConnLimits
	tls     *tls.Config
}

func newRealEdge(t *testing.T, o realEdgeOpts) *realEdge {
	t.Helper()
	origin := testkit.NewOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "xff="+strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
	}))
	pool, err := lb.NewPool(lb.Config{Name: "o", Shards: []lb.Shard{{Name: "o", URL: origin.URL, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.CloseIdleConnections)
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, FillTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := prometheus.NewRegistry()
	m, err := edge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	site := &edge.Site{Name: "s", Hosts: []string{"example.com"}, Origin: pool}
	withRules(t, rules.Spec{Name: "block", Match: rules.Match{Clients: []string{"203.0.113.0/24"}},
		Respond: rules.Respond{Status: 403, Body: "client {client_ip}"}})(site)
	log := &syncBuffer{}
	h, err := edge.New(edge.Config{Sites: []*edge.Site{site}, Cache: c, Metrics: m, AccessLog: log, TrustedProxies: o.trusted, ClientIPHeader: o.field})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's stack: PROXY protocol at the bottom, then the limits.
	o.proxy.OnReject = m.ProxyRejected
	pln, err := edge.ListenProxyProtocol(ln, o.proxy)
	if err != nil {
		t.Fatal(err)
	}
	lim := o.limits
	lim.OnRefuse = m.Refused
	srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: os.Getenv("EDGED_TEST_HTTP1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	lln := edge.LimitListener(pln, lim)
	if o.tls != nil {
		go srv.ServeTLS(lln, o.tls)
	} else {
		go srv.Serve(lln)
	}
	return &realEdge{addr: ln.Addr().String(), log: log, reg: reg, origin: origin}
}

// wantClients waits for the access log to have a line per client in
// want, in any order (each request's line is written once its answer
// is sent, so connections may overtake each other).
func (e *realEdge) wantClients(t *testing.T, want []string) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, func() bool { return len(e.log.clients(t)) >= len(want) }, "the access log")
	got := e.log.clients(t)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("access log clients %q, want %q", got, want)
	}
}

// dialFrom connects to addr from the loopback address from (127.0.0.2
// and the like are distinct clients).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang fails the test
	return c
}

// proxyHeader is the PROXY protocol header (version 1 or 2) of a TCP
// connection from src.
func proxyHeader(t *testing.T, version byte, src string) []byte {
	t.Helper()
	sa, err := net.ResolveTCPAddr("tcp", src)
	if err != nil {
		t.Fatal(err)
	}
	da := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 443}
	if sa.IP.To4() == nil {
		da = &net.TCPAddr{IP: net.ParseIP("2001:db8::443"), Port: 443}
	}
	b, err := proxyproto.HeaderProxyFromAddrs(version, sa, da).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exchange sends prefix then a GET of path (with extra header lines) on
// c and reads the response (status, body), or "" with the error.
func exchange(c net.Conn, prefix []byte, path string, extra ...string) (int, string, error) {
	req := "GET " + path + " HTTP/1.1\r\nHost: example.com\r\n" + strings.Join(extra, "") + "\r\n"
	if _, err := c.Write(append(append([]byte(nil), prefix...), req...)); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// A PROXY protocol client's claimed address is the client's everywhere:
// rules and {client_ip}, the access log, X-Forwarded-For to the origin;
// over cleartext and TLS, v1 and v2, IPv4 and IPv6.
func TestProxyProtocolClientAddress(t *testing.T) {
	ca := testkit.NewCA(t, "edge")
	leaf := ca.Issue(t, "example.com")
	for _, tlsOn := range []bool{false, true} {
		var cfg *tls.Config
		if tlsOn {
			cfg = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
		}
		e := newRealEdge(t, realEdgeOpts{proxy: edge.ProxyProtocol{Mode: edge.ProxyProtocolRequired, Timeout: time.Minute}, tls: cfg})
		for _, tc := range []struct {
			version    byte
			src        string
			wantStatus int
			wantBody   string
		}{
			{1, "203.0.113.9:5000", 403, "client 203.0.113.9"},
			{2, "203.0.113.10:5000", 403, "client 203.0.113.10"},
			{1, "198.51.100.7:5000", 200, "xff=198.51.100.7"},
			{2, "[2001:db8::7]:5000", 200, "xff=2001:db8::7"},
		} {
			t.Run(fmt.Sprintf("tls=%v/v%d/%s", tlsOn, tc.version, tc.src), func(t *testing.T) {
				raw := dialFrom(t, "127.0.0.1", e.addr)
				var c net.Conn = raw
				if _, err := raw.Write(proxyHeader(t, tc.version, tc.src)); err != nil {
					t.Fatal(err)
				}
				if tlsOn {
					tc := tls.Client(raw, &tls.Config{ServerName: "example.com", RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}})
					if err := tc.Handshake(); err != nil {
						t.Fatal(err)
					}
					c = tc
				}
				// A path of its own, so the origin answers each case.
				path := "/" + strings.NewReplacer(":", "_", "[", "", "]", "").Replace(tc.src) + fmt.Sprintf("-%v", tlsOn)
				status, body, err := exchange(c, nil, path)
				if err != nil {
					t.Fatal(err)
				}
				if status != tc.wantStatus || body != tc.wantBody {
					t.Errorf("got %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
				}
			})
		}
		want := []string{"203.0.113.9", "203.0.113.10", "198.51.100.7", "2001:db8::7"}
		e.wantClients(t, want)
	}
}

// With the header required, a connection without one, with a garbage
// one, with none in time, or from a peer not trusted is closed before
// any request is read, each counted by reason; the silent one at the
// header timeout, not the server's longer ones.
func TestProxyProtocolRequiredRejects(t *testing.T) {
	e := newRealEdge(t, realEdgeOpts{proxy: edge.ProxyProtocol{Mode: edge.ProxyProtocolRequired, Trusted: []string{"127.0.0.1"}, Timeout: 300 * time.Millisecond}})
	for _, tc := range []struct {
		name, from string
		prefix     string
		send       bool // send a request after the prefix
		reason     string
	}{
		{"no header", "127.0.0.1", "", true, "missing"},
		{"garbage v1", "127.0.0.1", "PROXY TCP4 nonsense\r\n", true, "invalid"},
		{"v1 too long", "127.0.0.1", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n", true, "invalid"},
		{"v2 bad version", "127.0.0.1", "\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + strings.Repeat("\x00", 12), true, "invalid"},
		{"silent", "127.0.0.1", "", false, "timeout"},
		{"half a v1 header", "127.0.0.1", "PROXY TCP4 203.0.113.9", false, "invalid"}, // v1 must come in one read (go-proxyproto)
		{"half a v2 header", "127.0.0.1", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00", false, "timeout"},
		{"untrusted peer with a valid header", "127.0.0.2", string(proxyHeader(t, 1, "203.0.113.9:1")), true, "untrusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := testkit.Metric(t, e.reg, "edged_proxy_protocol_rejected_total", "reason", tc.reason)
			c := dialFrom(t, tc.from, e.addr)
			start := time.Now()
			if _, err := c.Write([]byte(tc.prefix)); err != nil {
				t.Fatal(err)
			}
			if tc.send {
				c.Write([]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"))
			}
			got, err := io.ReadAll(c)
			if len(got) != 0 {
				t.Errorf("the edge answered %q", got)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the connection stayed open for %v", time.Since(start))
			}
			if d := time.Since(start); tc.reason == "timeout" && d > 3*time.Second {
				t.Errorf("closed after %v, want about the 300ms header timeout", d)
			}
			testkit.Eventually(t, 5*time.Second, func() bool {
				n, _ := testkit.Metric(t, e.reg, "edged_proxy_protocol_rejected_total", "reason", tc.reason)
				return n == before+1
			}, "the rejection counted as "+tc.reason)
		})
	}
	if got := e.log.clients(t); len(got) != 0 {
		t.Errorf("requests logged %q, want none", got)
	}
}

// With the header optional, a trusted peer may send one or not, and a
// peer not trusted cannot name its address with one: its bytes are read
// as HTTP (400), and its own address stays the client's.
func TestProxyProtocolOptionalUntrustedCannotSpoof(t *testing.T) {
	e := newRealEdge(t, realEdgeOpts{proxy: edge.ProxyProtocol{Mode: edge.ProxyProtocolOptional, Trusted: []string{"127.0.0.2/32"}, Timeout: time.Minute}})
	for _, tc := range []struct {
		name, from, prefix string
		wantStatus         int
		wantBody, wantLog  string
	}{
		{"trusted with header", "127.0.0.2", string(proxyHeader(t, 2, "203.0.113.9:1")), 403, "client 203.0.113.9", "203.0.113.9"},
		{"trusted without header", "127.0.0.2", "", 200, "xff=127.0.0.2", "127.0.0.2"},
		{"untrusted with header", "127.0.0.3", string(proxyHeader(t, 1, "203.0.113.9:1")), 400, "", "127.0.0.3"},
		{"untrusted with v2 header", "127.0.0.3", string(proxyHeader(t, 2, "203.0.113.9:1")), 400, "", "127.0.0.3"},
		{"untrusted without header", "127.0.0.3", "", 200, "xff=127.0.0.3", "127.0.0.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, tc.from, e.addr)
			status, body, err := exchange(c, []byte(tc.prefix), "/"+strings.ReplaceAll(tc.name, " ", "-"))
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus || tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
			if strings.Contains(body, "203.0.113") && tc.from != "127.0.0.2" {
				t.Errorf("an untrusted peer named its address: %q", body)
			}
		})
	}
	// The 400s of the strict reader are not requests: no access line.
	want := []string{"203.0.113.9", "127.0.0.2", "127.0.0.3"}
	e.wantClients(t, want)
}

// Behind a trusted L7 proxy the client comes from X-Forwarded-For; from
// anyone else the field is ignored (a spoof), and the origin always gets
// the chain as received plus the peer that connected. A cached object's
// hits (the fast path on edged's loop) find the same client.
func TestXForwardedForFromTrustedProxiesOnly(t *testing.T) {
	e := newRealEdge(t, realEdgeOpts{trusted: []string{"127.0.0.2/32", "10.0.0.0/8"}})
	for _, tc := range []struct {
		name, from string
		fields     []string
		wantStatus int
		wantBody   string
		wantLog    string
	}{
		{"untrusted spoof ignored", "127.0.0.3", []string{"X-Forwarded-For: 203.0.113.9\r\n"}, 200, "xff=203.0.113.9, 127.0.0.3", "127.0.0.3"},
		{"trusted: client is the rightmost untrusted", "127.0.0.2", []string{"X-Forwarded-For: 203.0.113.1, 198.51.100.4\r\n"}, 200, "xff=203.0.113.1, 198.51.100.4, 127.0.0.2", "198.51.100.4"},
		{"trusted hops walked", "127.0.0.2", []string{"X-Forwarded-For: 1.2.3.4, 203.0.113.9, 10.1.1.1\r\n"}, 403, "client 203.0.113.9", "203.0.113.9"},
		{"over two lines", "127.0.0.2", []string{"X-Forwarded-For: 1.2.3.4, 203.0.113.9\r\n", "X-Forwarded-For: 10.1.1.1\r\n"}, 403, "client 203.0.113.9", "203.0.113.9"},
		{"malformed: the hop that passed it", "127.0.0.2", []string{"X-Forwarded-For: 203.0.113.9, bogus\r\n"}, 200, "xff=203.0.113.9, bogus, 127.0.0.2", "127.0.0.2"},
		{"trusted, no field", "127.0.0.2", nil, 200, "xff=127.0.0.2", "127.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + strings.ReplaceAll(tc.name, " ", "-")
			for i := range 2 { // a miss, then a hit
				c := dialFrom(t, tc.from, e.addr)
				status, body, err := exchange(c, nil, path, tc.fields...)
				if err != nil {
					t.Fatal(err)
				}
				if status != tc.wantStatus || body != tc.wantBody {
					t.Errorf("request %d: got %d %q, want %d %q", i, status, body, tc.wantStatus, tc.wantBody)
				}
			}
		})
	}
	var want []string
	for _, c := range []string{"127.0.0.3", "198.51.100.4", "203.0.113.9", "203.0.113.9", "127.0.0.2", "127.0.0.2"} {
		want = append(want, c, c)
	}
	e.wantClients(t, want)
}

// Per-address connection caps count the address the PROXY header names:
// two clients behind one balancer each get their own cap, and one client
// at its cap is refused whichever balancer connection it comes on.
func TestProxyProtocolPerIPCapUsesTheClaimedAddress(t *testing.T) {
	e := newRealEdge(t, realEdgeOpts{proxy: edge.ProxyProtocol{Mode: edge.ProxyProtocolRequired, Timeout: time.Minute},
		limits: edge.ConnLimits{MaxConnsPerIP: 1}})
	a := dialFrom(t, "127.0.0.1", e.addr)
	if status, _, err := exchange(a, proxyHeader(t, 2, "198.51.100.1:1"), "/a"); err != nil || status != 200 {
		t.Fatalf("first client: %d, %v", status, err)
	}
	b := dialFrom(t, "127.0.0.1", e.addr)
	if status, _, err := exchange(b, proxyHeader(t, 2, "198.51.100.2:1"), "/b"); err != nil || status != 200 {
		t.Fatalf("second client, same balancer: %d, %v", status, err)
	}
	c := dialFrom(t, "127.0.0.1", e.addr)
	status, body, err := exchange(c, proxyHeader(t, 2, "198.51.100.1:2"), "/c")
	if err != nil || status != 503 || body != "too many connections" {
		t.Errorf("first client's second connection: %d %q %v, want the 503 refusal", status, body, err)
	}
	if n, _ := testkit.Metric(t, e.reg, "edged_refused_connections_total", "reason", "per_ip"); n != 1 {
		t.Errorf("per-IP refusals %v, want 1", n)
	}
}

// With client_ip_header Forwarded, the for= parameters are walked the
// same way: quoted IPv6 with a port, "unknown" stopping at the hop that
// wrote it, and X-Forwarded-For then ignored.
func TestForwardedFromTrustedProxies(t *testing.T) {
	e := newRealEdge(t, realEdgeOpts{trusted: []string{"127.0.0.2", "10.0.0.0/8"}, field: "Forwarded"})
	for _, tc := range []struct {
		name, from, field string
		wantStatus        int
		wantBody          string
	}{
		{"untrusted ignored", "127.0.0.3", "Forwarded: for=203.0.113.9\r\n", 200, "xff=127.0.0.3"},
		{"IPv4 past a trusted hop", "127.0.0.2", "Forwarded: for=203.0.113.9;proto=https, for=10.0.0.5\r\n", 403, "client 203.0.113.9"},
		{"quoted IPv6 and port", "127.0.0.2", "Forwarded: for=\"[2001:db8::9]:4711\"\r\n", 200, "xff=127.0.0.2"},
		{"unknown stops at the hop", "127.0.0.2", "Forwarded: for=203.0.113.9, for=unknown\r\n", 200, "xff=127.0.0.2"},
		{"X-Forwarded-For not read", "127.0.0.2", "X-Forwarded-For: 203.0.113.9\r\n", 200, "xff=203.0.113.9, 127.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, tc.from, e.addr)
			status, body, err := exchange(c, nil, "/"+strings.ReplaceAll(tc.name, " ", "-"), tc.field)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus || body != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	e.wantClients(t, []string{"127.0.0.3", "203.0.113.9", "2001:db8::9", "127.0.0.2", "127.0.0.2"})
}

// The constructors refuse what they cannot honour, naming it.
func TestRealIPConfigErrors(t *testing.T) {
	c, err := cache.New(cache.Config{MaxBytes: 16 << 20, FillTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, tc := range []struct {
		name string
		cfg  edge.Config
		want string
	}{
		{"bad field", edge.Config{Cache: c, ClientIPHeader: "X-Real-IP"}, `ClientIPHeader must be X-Forwarded-For or Forwarded, got "X-Real-IP"`},
		{"bad proxy", edge.Config{Cache: c, TrustedProxies: []string{"10.0.0.0/8", "ten"}}, `TrustedProxies[1]: invalid address or CIDR "ten"`},
	} {
		if _, err := edge.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		cfg  edge.ProxyProtocol
		want string
	}{
		{"unknown mode", edge.ProxyProtocol{Mode: "on"}, `unknown PROXY protocol mode "on"`},
		{"optional trusting everyone", edge.ProxyProtocol{Mode: edge.ProxyProtocolOptional}, "optional needs trusted proxies"},
		{"bad proxy", edge.ProxyProtocol{Mode: edge.ProxyProtocolRequired, Trusted: []string{"x"}}, `Trusted[0]: invalid address or CIDR "x"`},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := edge.ListenProxyProtocol(ln, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
		ln.Close()
	}
}
