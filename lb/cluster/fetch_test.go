package cluster_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb/cluster"
	"github.com/edged-proxy/edged/lb/ketama"
)

// peerServer is an httptest server on 127.0.0.1 standing in for a peer,
// counting the connections it accepted.
type peerServer struct {
	*httptest.Server
	conns atomic.Int32
}

func newPeerServer(t *testing.T, h http.HandlerFunc) *peerServer {
	t.Helper()
	s := &peerServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// addr is the server's host:port.
func (s *peerServer) addr() string { return s.Listener.Addr().String() }

// fetch sends GET target with the client's host to peer and returns the
// response's body.
func fetch(t *testing.T, c *cluster.Cluster, peer, target string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "client.example"
	resp, err := c.Fetch(peer, req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// TestFetch: the request reaches the peer with the caller's Host and
// headers (no Accept-Encoding added), any status is a success, and
// connections are reused across fetches.
func TestFetch(t *testing.T) {
	type seen struct{ host, uri, ae, proto string }
	got := make(chan seen, 10)
	srv := newPeerServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.RequestURI, r.Header.Get("Accept-Encoding"), r.Proto}
		w.Header().Set("Content-Encoding", "gzip") // must come back as sent
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "not gzip at all")
	})
	reg := prometheus.NewRegistry()
	c := newStatic(t, cluster.Config{Name: "a", Registerer: reg,
		Static: []cluster.Member{{Name: "a"}, {Name: "b", Addr: srv.addr()}}})
	for i := range 3 {
		resp, body, err := fetch(t, c, "b", "/objects/1?v=2")
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusNotFound || body != "not gzip at all" || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("fetch %d: %d %q %v: want the peer's response untouched", i, resp.StatusCode, body, resp.Header)
		}
		s := <-got
		if s != (seen{"client.example", "/objects/1?v=2", "", "HTTP/1.1"}) {
			t.Errorf("fetch %d: peer saw %+v", i, s)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("3 fetches opened %d connections, want 1 (keep-alive)", n)
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_peer_fetches_total", "peer", "b", "result", "ok"); v != 3 {
		t.Errorf("fetches{b,ok} = %v, want 3", v)
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_peer_fetch_duration_seconds", "peer", "b"); v != 3 {
		t.Errorf("fetch duration samples = %v, want 3", v)
	}
}

// refusedAddr returns a 127.0.0.1 address that refuses connections for
// the rest of the test (testkit.RefusedAddr).
func refusedAddr(t *testing.T) string {
	t.Helper()
	return testkit.RefusedAddr(t)
}

// fakeClock is a settable Config.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestFetchRefusedEjects: a peer refusing connections is ejected from this
// node's ring for EjectFor, then owns its keys again.
func TestFetchRefusedEjects(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	c := newStatic(t, cluster.Config{Name: "a", Registerer: reg, Now: clock.now, EjectFor: 5 * time.Second,
		Static: []cluster.Member{{Name: "a"}, {Name: "b", Addr: refusedAddr(t)}}})
	ring, _ := ketama.New([]ketama.Member{{Name: "a"}, {Name: "b"}})
	var bKeys []string
	for _, k := range keys(200) {
		if ring.Lookup(k) == "b" {
			bKeys = append(bKeys, k)
		}
	}
	if p, ok := c.Owner(bKeys[0]); !ok || p != "b" {
		t.Fatalf("Owner = %q, %v before the failure, want b", p, ok)
	}
	if _, _, err := fetch(t, c, "b", "/x"); err == nil {
		t.Fatal("fetch from a refusing peer succeeded")
	}
	for _, k := range bKeys {
		if p, ok := c.Owner(k); ok {
			t.Fatalf("b ejected, Owner(%q) = %s", k, p)
		}
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_peer_ejections_total", "peer", "b"); v != 1 {
		t.Errorf("ejections{b} = %v, want 1", v)
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_peer_fetches_total", "peer", "b", "result", "error"); v != 1 {
		t.Errorf("fetches{b,error} = %v, want 1", v)
	}
	clock.advance(5*time.Second - time.Nanosecond)
	if _, ok := c.Owner(bKeys[0]); ok {
		t.Fatal("b back before EjectFor passed")
	}
	clock.advance(time.Nanosecond)
	for _, k := range bKeys {
		if p, ok := c.Owner(k); !ok || p != "b" {
			t.Fatalf("after EjectFor, Owner(%q) = %q, %v, want b", k, p, ok)
		}
	}
	if len(c.Live()) != 2 {
		t.Errorf("Live() = %v: ejection is local, membership keeps b", c.Live())
	}
}

// TestBoundedLoads: with many fetches held at one peer, a Cluster with
// BalanceFactor sends that peer's keys elsewhere; with factor 0 it never
// does.
func TestBoundedLoads(t *testing.T) {
	tests := []struct {
		factor        float64
		wantOverflows bool
	}{{0, false}, {1.25, true}}
	for _, tt := range tests {
		t.Run("factor "+strconvF(tt.factor), func(t *testing.T) {
			arrived := make(chan struct{}, 100)
			b := newPeerServer(t, func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done() // held until the fetch is cancelled
			})
			c3 := newPeerServer(t, func(w http.ResponseWriter, r *http.Request) {})
			reg := prometheus.NewRegistry()
			c := newStatic(t, cluster.Config{Name: "a", BalanceFactor: tt.factor, Registerer: reg,
				Static: []cluster.Member{{Name: "a"}, {Name: "b", Addr: b.addr()}, {Name: "c", Addr: c3.addr()}}})

			const held = 8
			var wg sync.WaitGroup
			release := make(chan struct{})
			for range held {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, "/hold", nil)
					ctx, cancel := contextWithRelease(release)
					defer cancel()
					if resp, err := c.Fetch("b", req.WithContext(ctx)); err == nil {
						resp.Body.Close()
					}
				})
			}
			for range held {
				<-arrived
			}
			ring, _ := ketama.New([]ketama.Member{{Name: "a"}, {Name: "b"}, {Name: "c"}})
			bKeys, moved := 0, 0
			for _, k := range keys(1000) {
				if ring.Lookup(k) != "b" {
					continue
				}
				bKeys++
				if p, ok := c.Owner(k); !ok || p != "b" {
					moved++
				}
			}
			close(release)
			wg.Wait()
			if tt.wantOverflows && moved != bKeys {
				t.Errorf("%d of b's %d keys moved with b over its bound, want all", moved, bKeys)
			}
			if !tt.wantOverflows && moved != 0 {
				t.Errorf("%d of b's %d keys moved without bounded loads, want none", moved, bKeys)
			}
			v, _ := testkit.Metric(t, reg, "edged_cluster_balance_overflows_total")
			if int(v) != moved {
				t.Errorf("balance_overflows_total = %v, want %d", v, moved)
			}
		})
	}
}

// contextWithRelease returns a context cancelled when release closes.
func contextWithRelease(release <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-release:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func strconvF(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// TestFetchKeepsConnectionsAcrossRebuilds: a ring rebuild (here, another
// peer's ejection) keeps the staying peers' pools: no new connection.
func TestFetchKeepsConnectionsAcrossRebuilds(t *testing.T) {
	srv := newPeerServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := newStatic(t, cluster.Config{Name: "a",
		Static: []cluster.Member{{Name: "a"}, {Name: "b", Addr: srv.addr()}, {Name: "c", Addr: refusedAddr(t)}}})
	if _, _, err := fetch(t, c, "b", "/1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fetch(t, c, "c", "/1"); err == nil {
		t.Fatal("fetch from a refusing peer succeeded")
	}
	if _, _, err := fetch(t, c, "b", "/2"); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("b saw %d connections across c's ejection, want 1", n)
	}
}
