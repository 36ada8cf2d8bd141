package lb_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
