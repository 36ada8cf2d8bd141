package edge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
)

// hintsOrigin sends 102 Processing, then 103 Early Hints with a Link and a
// field of its own, then (after gate, when set, is closed) its final 200,
// cacheable for GET, without either field: any Link or X-Hint on a final
// response came from the 103.
func hintsOrigin(gate <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusProcessing)
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.Header().Set("X-Hint", "interim")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Del("X-Hint")
		if gate != nil {
			<-gate
		}
		if r.Method == http.MethodGet {
			w.Header().Set("Cache-Control", "public, max-age=600")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "final")
	}
}

// seen1xx is a 1xx response a client saw.
type seen1xx struct {
	code int
	hdr  http.Header
}

// doTraced sends method path to the edge through client and returns the
// final response, its body and the 1xx responses seen before it.
func doTraced(t *testing.T, client *http.Client, base, method, path string) (*http.Response, string, []seen1xx) {
	t.Helper()
	resp, body, seen, err := traced(client, base, method, path)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body, seen
}

// traced is doTraced reporting its error, for goroutines other than the
// test's.
func traced(client *http.Client, base, method, path string) (*http.Response, string, []seen1xx, error) {
	var mu sync.Mutex
	var seen []seen1xx
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, seen1xx{code, http.Header(hdr).Clone()})
			return nil
		},
	})
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return nil, "", nil, err
	}
	req.Host = "example.com"
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mu.Lock()
	defer mu.Unlock()
	return resp, string(b), seen, err
}

// clientFor returns a client speaking proto to the edge: "HTTP/1.1" or
// "HTTP/2" (prior knowledge, h2c).
func clientFor(t *testing.T, proto string) *http.Client {
	var p http.Protocols
	if proto == "HTTP/2" {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// The origin's 102 and 103 reach HTTP/1.1 and HTTP/2 clients before the
// final response, as a proxy must forward them (RFC 9110 §15.2), on a
// cache fill and on a pass-through; they are never stored, and their
// fields reach neither the final response nor the stored one.
func TestInterimResponsesForwarded(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(proto+" "+method, func(t *testing.T) {
				o := newOrigin(t, hintsOrigin(nil))
				base, _ := newEdge(t, edgeOpts{h2c: true}, o)
				client := clientFor(t, proto)
				resp, body, seen := doTraced(t, client, base, method, "/hints")
				if want := map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto]; resp.ProtoMajor != want {
					t.Fatalf("the client spoke %s, want %s", resp.Proto, proto)
				}
				if resp.StatusCode != 200 || body != "final" {
					t.Fatalf("final response %d %q", resp.StatusCode, body)
				}
				if len(seen) != 2 || seen[0].code != 102 || seen[1].code != 103 {
					t.Fatalf("1xx seen: %v, want 102 then 103", seen)
				}
				if got := seen[1].hdr.Get("Link"); got != "</app.css>; rel=preload; as=style" || seen[1].hdr.Get("X-Hint") != "interim" {
					t.Errorf("103 fields: %v", seen[1].hdr)
				}
				for _, name := range []string{"Link", "X-Hint", "Cache-Status", "Cache-Control"} {
					if v := seen[0].hdr.Get(name); v != "" {
						t.Errorf("102 carries %s: %q", name, v)
					}
				}
				for _, name := range []string{"Link", "X-Hint"} {
					if v := resp.Header.Get(name); v != "" {
						t.Errorf("the final response carries the 103's %s: %q", name, v)
					}
				}
				if method != http.MethodGet {
					return
				}
				resp, body, seen = doTraced(t, client, base, method, "/hints")
				if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") || body != "final" || len(seen) != 0 {
					t.Errorf("hit: %q %q, 1xx %v; want a hit with no 1xx", resp.Header.Get("Cache-Status"), body, seen)
				}
				for _, name := range []string{"Link", "X-Hint"} {
					if v := resp.Header.Get(name); v != "" {
						t.Errorf("the stored response carries the 103's %s: %q", name, v)
					}
				}
			})
		}
	}
}

// On the wire: an HTTP/1.1 client gets each 1xx head, then the final
// response; an HTTP/1.0 client, which may not understand them, gets
// none (RFC 9110 §15.2).
func TestInterimResponsesOnTheWire(t *testing.T) {
	for _, tt := range []struct {
		version string
		want    []string // the status lines, in order
	}{
		{"HTTP/1.1", []string{"HTTP/1.1 102 Processing", "HTTP/1.1 103 Early Hints", "HTTP/1.1 200 OK"}},
		{"HTTP/1.0", []string{"HTTP/1.0 200 OK"}},
	} {
		t.Run(tt.version, func(t *testing.T) {
			o := newOrigin(t, hintsOrigin(nil))
			base, _ := newEdge(t, edgeOpts{}, o)
			c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testkit.AwaitTimeout))
			io.WriteString(c, "GET /wire "+tt.version+"\r\nHost: example.com\r\nConnection: close\r\n\r\n")
			raw, _ := io.ReadAll(c)
			var lines []string
			for _, l := range strings.Split(string(raw), "\r\n") {
				if strings.HasPrefix(l, "HTTP/1.") {
					lines = append(lines, l)
				}
			}
			if strings.Join(lines, "|") != strings.Join(tt.want, "|") {
				t.Errorf("status lines %q, want %q\n%s", lines, tt.want, raw)
			}
		})
	}
}

// Only the client whose request started a fill gets its 1xx; clients
// that join the fill get the final response alone.
func TestInterimOnlyToTheFillLeader(t *testing.T) {
	gate := make(chan struct{})
	o := newOrigin(t, hintsOrigin(gate))
	reg := prometheus.NewRegistry()
	base, _ := newEdge(t, edgeOpts{reg: reg}, o)
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // a failed wait must not leave the origin's handler held
	type result struct {
		body string
		seen []seen1xx
		err  error
	}
	leader, joiner := make(chan result, 1), make(chan result, 1)
	send := func(to chan<- result, client *http.Client) {
		_, body, seen, err := traced(client, base, "GET", "/shared")
		to <- result{body, seen, err}
	}
	go send(leader, clientFor(t, "HTTP/1.1"))
	o.Await(t, "/shared", 1)
	go send(joiner, clientFor(t, "HTTP/1.1"))
	testkit.Eventually(t, testkit.AwaitTimeout, func() bool {
		n, _ := testkit.Metric(t, reg, "edged_cache_coalesced_waiters_total")
		return n == 1
	}, "the second request joining the fill")
	release()
	l, j := <-leader, <-joiner
	if l.err != nil || j.err != nil {
		t.Fatalf("leader: %v; joiner: %v", l.err, j.err)
	}
	if l.body != "final" || len(l.seen) != 2 {
		t.Errorf("leader: %q, 1xx %v; want the final body after 102 and 103", l.body, l.seen)
	}
	if j.body != "final" || len(j.seen) != 0 {
		t.Errorf("joiner: %q, 1xx %v; want the final body alone", j.body, j.seen)
	}
	if n := o.Hits("/shared"); n != 1 {
		t.Errorf("origin asked %d times, want 1", n)
	}
}

// stallListener's connections from one remote address block their writes
// until released: a client that reads nothing, with full buffers.
type stallListener struct {
	net.Listener
	addr    chan string   // the remote address to stall, sent once
	stalled chan struct{} // closed when a write stalls
	release chan struct{}
	once    sync.Once
}

func (l *stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, l: l}, nil
}

type stallConn struct {
	net.Conn
	l *stallListener
}

func (c *stallConn) Write(p []byte) (int, error) {
	select {
	case a := <-c.l.addr:
		if a != c.RemoteAddr().String() {
			c.l.addr <- a
			break
		}
		c.l.once.Do(func() { close(c.l.stalled) })
		<-c.l.release
	default:
	}
	return c.Conn.Write(p)
}

// A client that reads nothing stalls only itself: the 1xx it is sent is
// written on its own goroutine, so the fill it started completes and a
// second client is answered (without the 1xx writer apart, the fill's
// origin reader would wait on the stalled client, and the second client
// with it, until the fill timeout).
func TestInterimDoesNotHoldTheFill(t *testing.T) {
	o := newOrigin(t, hintsOrigin(nil))
	sl := &stallListener{addr: make(chan string, 1), stalled: make(chan struct{}), release: make(chan struct{})}
	base, _ := newEdge(t, edgeOpts{listener: func(ln net.Listener) net.Listener { sl.Listener = ln; return sl }}, o)
	t.Cleanup(func() { close(sl.release) }) // runs before the server closes
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sl.addr <- c.LocalAddr().String()
	io.WriteString(c, "GET /stall HTTP/1.1\r\nHost: example.com\r\n\r\n")
	select {
	case <-sl.stalled:
	case <-time.After(testkit.AwaitTimeout):
		t.Fatal("the first client was never written to")
	}
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/stall", nil)
		req.Host = "example.com"
		resp, err := (&http.Client{Timeout: 2 * testkit.AwaitTimeout}).Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	select {
	case got := <-done:
		if got != "final" {
			t.Errorf("second client: %q", got)
		}
	case <-time.After(testkit.AwaitTimeout):
		t.Fatal("the second client waited on the stalled first one")
	}
}
