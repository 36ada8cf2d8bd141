package edge_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/logbuf"
	"github.com/edged-proxy/edged/lb"
)

// daemonEdge builds the edge as the daemon wires it for a hit: metrics on a
// registry, a buffered access log (to io.Discard), a write timeout, and the
// daemon's server stack (connection limits, strict reader, net/http). It
// returns the handler and the address of a listener serving it.
func daemonEdge(b *testing.B) (http.Handler, string) { return daemonEdgeSize(b, 1024) }

// daemonEdgeSize is daemonEdge with objects of size bytes.
func daemonEdgeSize(b *testing.B, size int) (http.Handler, string) {
	return daemonEdgeRules(b, size, nil)
}

// benchRules are 20 rules of simple conditions, as a site might have: the
// hit path evaluates them all, and the one matching /hot only sets what
// is stored, so hits stay on the fast path.
func benchRules(b *testing.B) *rules.Set {
	var specs []rules.Spec
	for i := range 16 {
		specs = append(specs, rules.Spec{Name: "section-" + strconv.Itoa(i),
			Match: rules.Match{Paths: []string{"/section-" + strconv.Itoa(i) + "/*"}}, Cache: rules.Cache{TTL: time.Minute}})
	}
	specs = append(specs,
		rules.Spec{Name: "assets", Match: rules.Match{Paths: []string{"*.css", "*.js"}}, Cache: rules.Cache{TTL: time.Hour}},
		rules.Spec{Name: "logged-in", Match: rules.Match{Cookies: []string{"session"}}, Cache: rules.Cache{Bypass: true}},
		rules.Spec{Name: "debug", Match: rules.Match{Query: []string{"debug"}}, Cache: rules.Cache{Bypass: true}},
		rules.Spec{Name: "hot", Match: rules.Match{Paths: []string{"/hot"}}, Cache: rules.Cache{MaxTTL: time.Hour}},
	)
	set, err := rules.Compile(specs, rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// daemonEdgeRules is daemonEdgeSize with the site's rules set to set.
func daemonEdgeRules(b *testing.B, size int, set *rules.Set) (http.Handler, string) {
	body := strings.Repeat("x", size)
	return daemonEdgeFor(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"5b02e2c74be91827"`)
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		w.Header().Set("Accept-Ranges", "bytes")
		io.WriteString(w, body)
	}, func(s *edge.Site) { s.Rules = set })
}

// daemonEdgeFor builds the edge as the daemon wires it (see daemonEdge) in
// front of an origin serving with origin, its site adjusted by site.
func daemonEdgeFor(b *testing.B, origin http.HandlerFunc, site func(*edge.Site)) (http.Handler, string) {
	o := httptest.NewServer(origin)
	b.Cleanup(o.Close)
	pool, err := lb.NewPool(lb.Config{Name: "bench", Shards: []lb.Shard{{Name: "o", URL: o.URL, Weight: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, FillTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	m, err := edge.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	access := logbuf.New(io.Discard, 0, 0)
	b.Cleanup(func() { access.Close() })
	st := &edge.Site{Name: "bench", Hosts: []string{"*"}, Origin: pool}
	site(st)
	h, err := edge.New(edge.Config{Sites: []*edge.Site{st}, Cache: c, Metrics: m, AccessLog: access,
		WriteTimeout: time.Minute, StripResponseHeaders: []string{"Surrogate-Key", "Cache-Tag"}})
	if err != nil {
		b.Fatal(err)
	}
	return h, serve(b, h, m)
}

// serve runs h behind the daemon's listener stack on 127.0.0.1, with the
// HTTP/1 server EDGED_TEST_HTTP1 names.
func serve(b *testing.B, h http.Handler, m *edge.Metrics) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ln = edge.LimitListener(ln, edge.ConnLimits{MaxConns: 16384, MaxConnsPerIP: 512})
	serveTest(b, h, ln, edge.ServerConfig{Metrics: m})
	return ln.Addr().String()
}

// rawGet sends GET path over a keep-alive connection and reads the whole
// response, as cheaply as a client can (wrk-style), returning the status.
type rawClient struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
}

func dialRaw(b *testing.B, addr, path string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &rawClient{c: c, r: bufio.NewReaderSize(c, 16<<10),
		req: []byte("GET " + path + " HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n\r\n")}
}

func (rc *rawClient) get() (int, error) {
	if _, err := rc.c.Write(rc.req); err != nil {
		return 0, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	n := -1
	for {
		line, err = rc.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	_, err = rc.r.Discard(n)
	return status, err
}

// BenchmarkHitServer measures 1 KiB memory-tier hits end to end over 64
// keep-alive loopback connections, one request in flight on each, against
// the bare net/http fixed-response server (the ceiling of any net/http
// handler) in the same run. Client cost is included and equal for both:
// compare the two lines, not the absolute figures.
func BenchmarkHitServer(b *testing.B) {
	benchServer(b, 64, 1024)
}

// BenchmarkLargeHitServer is BenchmarkHitServer for 1 MiB hits over 16
// connections, where the edge sends the response head and the body in one
// writev (strict.Conn.Gather) and bare net/http in two writes.
func BenchmarkLargeHitServer(b *testing.B) {
	benchServer(b, 16, 1<<20)
}

func benchServer(b *testing.B, conns, size int) {
	run := func(b *testing.B, addr, path string) {
		var mu sync.Mutex
		clients := make([]*rawClient, 0, conns)
		for range conns {
			rc := dialRaw(b, addr, path)
			if st, err := rc.get(); err != nil || st != 200 {
				b.Fatalf("warm-up: status %d, %v", st, err)
			}
			clients = append(clients, rc)
		}
		b.Cleanup(func() {
			for _, rc := range clients {
				rc.c.Close()
			}
		})
		b.ReportAllocs()
		b.SetBytes(int64(size))
		b.SetParallelism((conns + 1) / 2)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			rc := clients[len(clients)-1]
			clients = clients[:len(clients)-1]
			mu.Unlock()
			for pb.Next() {
				if st, err := rc.get(); err != nil || st != 200 {
					b.Errorf("status %d, %v", st, err)
					return
				}
			}
		})
	}
	b.Run("edged", func(b *testing.B) {
		_, addr := daemonEdgeSize(b, size)
		run(b, addr, "/hot")
	})
	if size <= 1024 {
		b.Run("edged-20-rules", func(b *testing.B) {
			_, addr := daemonEdgeRules(b, size, benchRules(b))
			run(b, addr, "/hot")
		})
	}
	b.Run("bare-net-http", func(b *testing.B) {
		body := bytes.Repeat([]byte("x"), size)
		hdr := http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {strconv.Itoa(size)}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dst := w.Header()
			for k, v := range hdr {
				dst[k] = v
			}
			w.Write(body)
		})}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		run(b, ln.Addr().String(), "/hot")
	})
}

// BenchmarkHitHandlerDaemon is BenchmarkHitHandler with the daemon's
// metrics, access log and write timeout, on one goroutine.
func BenchmarkHitHandlerDaemon(b *testing.B) {
	h, _ := daemonEdge(b)
	req := httptest.NewRequest("GET", "http://bench.example/hot", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	w := &discardWriter{h: make(http.Header, 16)}
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}
