package lb_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

// BenchmarkPoolDo measures one request through a pool to a loopback origin
// (4 KiB body, read to its end), with the circuit-breaking limits and the
// body idle timeout at their defaults and turned off, to show what they
// cost per request next to a real exchange.
func BenchmarkPoolDo(b *testing.B) {
	body := strings.Repeat("x", 4<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	b.Cleanup(srv.Close)
	for _, bc := range []struct {
		name string
		cfg  lb.Config
	}{
		{"defaults", lb.Config{}},
		{"no limits, no body idle", lb.Config{MaxPendingPerShard: -1, MaxInFlightPerShard: -1, BodyIdleTimeout: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := bc.cfg
			cfg.Shards = []lb.Shard{{URL: srv.URL}}
			p, err := lb.NewPool(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.CloseIdleConnections)
			req, _ := http.NewRequest("GET", srv.URL+"/obj", nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, _, err := p.Do(req, "k")
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// BenchmarkOriginRoundTrip puts the pool's exchange (net/http's transport:
// a write loop and a read loop goroutine per connection, a hand-off to
// each per request) next to the least a client can do on the same kept-
// alive connection: write the request, read the head and the body in the
// caller's goroutine. The gap is what an origin client on edged's own
// HTTP/1 code could save per fill (docs/benchmarks.md, cold ramp). The
// minimal client (testkit.RoundTrips) is a ceiling for the measurement
// only: it parses nothing but Content-Length.
func BenchmarkOriginRoundTrip(b *testing.B) {
	for _, size := range []int{1 << 10, 50 << 10} {
		body := strings.Repeat("x", size)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		}))
		b.Cleanup(srv.Close)
		b.Run(fmt.Sprintf("%dKiB/pool", size>>10), func(b *testing.B) {
			p, err := lb.NewPool(lb.Config{Shards: []lb.Shard{{URL: srv.URL}}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.CloseIdleConnections)
			req, _ := http.NewRequest("GET", srv.URL+"/obj", nil)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				resp, _, err := p.Do(req, "k")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		b.Run(fmt.Sprintf("%dKiB/minimal", size>>10), func(b *testing.B) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			br := bufio.NewReaderSize(c, 64<<10)
			b.SetBytes(int64(size))
			testkit.RoundTrips(b, c, br, []byte("GET /obj HTTP/1.1\r\nHost: origin\r\n\r\n"))
		})
	}
}
