package edge_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/lb"
)

// servedBy adds X-Served-By to every response. It implements only the
// Hooks interface, so with it every request of the edge takes the general
// path, cache hits included: ResponseFilter needs the header map.
type servedBy struct{ edge.DefaultHooks }

func (servedBy) ResponseFilter(_ *edge.Session, _ int, h http.Header) { h.Set("X-Served-By", "edge-1") }

// fastServedBy adds the same field and also implements edge.FastHooks, so
// fresh cache hits stay on the fast path of edged's HTTP/1 loop: FastHit
// appends the field to the encoded response head.
type fastServedBy struct{ servedBy }

func (fastServedBy) FastHit(_ *edge.FastRequest, _ int, extra []byte) ([]byte, bool) {
	return append(extra, "X-Served-By: edge-1\r\n"...), true
}

// Custom hooks and the HTTP/1 fast path: the same response field added by
// hooks that take the general path for every request and by hooks that
// let cache hits stay on the fast path. Both answers carry the field; only
// the second edge answers its hit on the fast path.
func ExampleFastHooks() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	for _, hooks := range []edge.Hooks{servedBy{}, fastServedBy{}} {
		addr, reg, stop := exampleEdge(origin.URL, hooks)
		var got string
		// A miss, then hits. (The first hit may still find the fill
		// finishing and take the general path: ask a few times.)
		for i := 0; i < 10 && counter(reg, "edged_fast_path_responses_total") == 0; i++ {
			resp, err := http.Get("http://" + addr + "/greeting")
			if err != nil {
				log.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got = resp.Header.Get("X-Served-By") + "; " + resp.Header.Get("Cache-Status")
		}
		fmt.Printf("%T: %s; on the fast path: %v\n", hooks, got, counter(reg, "edged_fast_path_responses_total") > 0)
		stop()
	}
	// Output:
	// edge_test.servedBy: edge-1; edged; hit; ttl=60; on the fast path: false
	// edge_test.fastServedBy: edge-1; edged; hit; ttl=60; on the fast path: true
}

// exampleEdge serves an edge for origin with hooks on a loopback port.
func exampleEdge(origin string, hooks edge.Hooks) (addr string, reg *prometheus.Registry, stop func()) {
	pool, err := lb.NewPool(lb.Config{Name: "example", Shards: []lb.Shard{{Name: "o", URL: origin, Weight: 1}}})
	if err != nil {
		log.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxBytes: 16 << 20, FillTimeout: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	m, _ := edge.NewMetrics(reg)
	site := &edge.Site{Name: "example", Hosts: []string{"*"}, Origin: pool}
	h, err := edge.New(edge.Config{Sites: []*edge.Site{site}, Cache: c, Hooks: hooks, Metrics: m})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := edge.NewServer(h, edge.ServerConfig{}) // server.http1: edged
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String(), reg, func() { srv.Close(); c.Close(); pool.CloseIdleConnections() }
}

// counter reads a counter without labels from reg.
func counter(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
