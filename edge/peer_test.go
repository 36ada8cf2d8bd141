package edge_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
	"github.com/edged-proxy/edged/purge/selector"
)

// testCluster is a PoP's membership as a test fixes it: the owner of
// every key is owner, unless that is self. Its fetches are real HTTP to
// the peers' listeners (package lb/cluster, tested with the real
// membership engine in cmd/edged, does the same over gossip).
type testCluster struct {
	self  string
	owner atomic.Pointer[string]
	// ownerOf, when set, names each key's owner instead of owner.
	ownerOf atomic.Pointer[func(string) string]
	addrs   map[string]string // peer name → peer listener address
	hot     atomic.Bool       // Admit's answer
	admits  atomic.Int32
	tr      *http.Transport
}

func newTestCluster(self string) *testCluster {
	c := &testCluster{self: self, addrs: map[string]string{}, tr: &http.Transport{DisableCompression: true}}
	c.setOwner(self)
	return c
}

func (c *testCluster) setOwner(name string) { c.owner.Store(&name) }
func (c *testCluster) Self() string         { return c.self }
func (c *testCluster) Owner(key string) (string, bool) {
	o := *c.owner.Load()
	if f := c.ownerOf.Load(); f != nil {
		o = (*f)(key)
	}
	return o, o != c.self
}

// setOwnerOf makes f decide every key's owner (over setOwner's).
func (c *testCluster) setOwnerOf(f func(key string) string) { c.ownerOf.Store(&f) }
func (c *testCluster) Admit(string) bool                    { c.admits.Add(1); return c.hot.Load() }
func (c *testCluster) Fetch(peer string, req *http.Request) (*http.Response, error) {
	addr, ok := c.addrs[peer]
	if !ok {
		return nil, fmt.Errorf("unknown peer %q", peer)
	}
	req.URL.Scheme, req.URL.Host = "http", addr
	return c.tr.RoundTrip(req)
}

// peerNode is one node of a test PoP: a cache, a Handler, a client
// listener and a peer listener.
type peerNode struct {
	name     string
	client   string // base URL of the client listener
	peerAddr string
	cache    *cache.Cache
	cluster  *testCluster
	reg      *prometheus.Registry
}

func newPeerNode(t testing.TB, name, originURL, token string, now func() time.Time) *peerNode {
	t.Helper()
	return newPeerNodeSite(t, name, originURL, token, now, nil)
}

// newPeerNodeSite is newPeerNode with site, when set, adjusting the site.
func newPeerNodeSite(t testing.TB, name, originURL, token string, now func() time.Time, site func(*edge.Site)) *peerNode {
	t.Helper()
	pool, err := lb.NewPool(lb.Config{Name: "test", Shards: []lb.Shard{{Name: "o", URL: originURL, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, FillTimeout: time.Minute, Registerer: reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &edge.Site{Name: "test", Hosts: []string{"example.com"}, Origin: pool}
	if site != nil {
		site(s)
	}
	m, err := edge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cl := newTestCluster(name)
	h, err := edge.New(edge.Config{Sites: []*edge.Site{s}, Cache: c, Cluster: cl, PeerToken: token, Metrics: m, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	n := &peerNode{name: name, cache: c, cluster: cl, reg: reg}
	for _, peer := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveTest(t, h, ln, edge.ServerConfig{Peer: peer})
		if peer {
			n.peerAddr = ln.Addr().String()
		} else {
			n.client = "http://" + ln.Addr().String()
		}
	}
	return n
}

// pop links nodes: each knows every other's peer address.
func pop(nodes ...*peerNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.cluster.addrs[b.name] = b.peerAddr
			}
		}
	}
}

// ownedByB starts nodes edged-a and edged-b of one PoP in front of
// originURL, both taking edged-b for the owner of every key.
func ownedByB(t *testing.T, originURL string, now func() time.Time) (a, b *peerNode) {
	t.Helper()
	a = newPeerNode(t, "edged-a", originURL, "", now)
	b = newPeerNode(t, "edged-b", originURL, "", now)
	pop(a, b)
	a.cluster.setOwner("edged-b")
	b.cluster.setOwner("edged-b")
	return a, b
}

// get sends a GET for path on example.com to base with the fields given
// ("Name: value"), and returns the response and its body.
func peerGet(t *testing.T, base, path string, fields ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "example.com"
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func cacheableOrigin(t testing.TB) *origin {
	var n atomic.Int32
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		w.Header().Set("Surrogate-Key", "t1")
		fmt.Fprintf(w, "body %s v%d", r.URL.Path, v)
	})
}

func TestPeerFetchAsksTheOwnerOnce(t *testing.T) {
	o := cacheableOrigin(t)
	a, b := ownedByB(t, o.URL, nil)

	resp, body := peerGet(t, a.client, "/x")
	if resp.StatusCode != 200 || body != "body /x v1" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	// RFC 9211 order: the owner's member first, then the asking node's.
	if got, want := resp.Header.Values("Cache-Status"), []string{"edged-b; fwd=uri-miss; fwd-status=200; stored; ttl=300", "edged-a; fwd=peer; fwd-status=200; ttl=300"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("Cache-Status = %q, want %q", got, want)
	}
	if v := resp.Header.Values("Via"); len(v) != 1 || strings.Count(v[0], "edged") != 1 {
		t.Errorf("Via = %q, want one edged member, as from a single node", v)
	}
	for _, f := range []string{"Edged-Peer", "Edged-Peer-Age", "Edged-Peer-Addr"} {
		if v := resp.Header.Get(f); v != "" {
			t.Errorf("%s reached the client: %q", f, v)
		}
	}
	// Not hot at a: the second request asks b again, which hits.
	resp, body = peerGet(t, a.client, "/x")
	if body != "body /x v1" || !strings.HasPrefix(resp.Header.Values("Cache-Status")[0], "edged-b; hit") {
		t.Fatalf("second: %q %q", body, resp.Header.Values("Cache-Status"))
	}
	// b's own client hits b's copy.
	if resp, body = peerGet(t, b.client, "/x"); body != "body /x v1" || resp.Header.Get("Cache-Status") != "edged-b; hit; ttl=300" {
		t.Fatalf("at the owner: %q %q", body, resp.Header.Values("Cache-Status"))
	}
	if n := o.hits("/x"); n != 1 {
		t.Fatalf("origin fetches = %d, want 1", n)
	}
	if req := o.lastRequest(); req.Header.Get("Edged-Peer") != "" || req.Header.Get("Edged-Peer-Addr") != "" {
		t.Errorf("the origin saw peer fields: %v", req.Header)
	}
	for _, c := range []string{"miss", "hit"} {
		if v, _ := testkit.Metric(t, b.reg, "edged_peer_requests_total", "site", "test", "cache", c); v != 1 {
			t.Errorf("edged_peer_requests_total{cache=%q} at b = %v, want 1", c, v)
		}
	}
	if v, _ := testkit.Metric(t, a.reg, "edged_requests_total", "site", "test", "cache", "miss"); v != 2 {
		t.Errorf("edged_requests_total{cache=miss} at a = %v, want 2 (client requests only)", v)
	}
	if v, _ := testkit.Metric(t, b.reg, "edged_requests_total", "site", "test", "cache", "hit"); v != 1 {
		t.Errorf("edged_requests_total{cache=hit} at b = %v, want 1 (its own client's hit, not the peer fetches)", v)
	}
}

func TestPeerReplicaWhenHot(t *testing.T) {
	o := cacheableOrigin(t)
	a, _ := ownedByB(t, o.URL, nil)
	a.cluster.hot.Store(true)
	resp, _ := peerGet(t, a.client, "/hot")
	if cs := resp.Header.Values("Cache-Status"); len(cs) != 2 || !strings.Contains(cs[1], "fwd=peer; fwd-status=200; stored") {
		t.Fatalf("Cache-Status = %q, want a replica stored", cs)
	}
	resp, body := peerGet(t, a.client, "/hot")
	cs := resp.Header.Values("Cache-Status")
	if body != "body /hot v1" || len(cs) != 2 || !strings.HasPrefix(cs[1], "edged-a; hit") {
		t.Fatalf("replica: %q %q", body, cs)
	}
	if n := a.cluster.admits.Load(); n != 1 {
		t.Errorf("Admit asked %d times, want once (for the one peer fill)", n)
	}
	// Age comes through the hop: b's copy was stored first.
	if resp.Header.Get("Age") == "" {
		t.Error("no Age on the replica's hit")
	}
	if n := o.hits("/hot"); n != 1 {
		t.Fatalf("origin fetches = %d, want 1", n)
	}
}

// The peer hop changes nothing a client receives but Cache-Status: the
// same ranges, conditionals and fields as from the node that owns the key.
func TestPeerHopIsTransparent(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("Date", "Sat, 05 Dec 2026 12:00:00 GMT")
		w.Header().Set("Last-Modified", "Sat, 05 Dec 2026 11:00:00 GMT")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "0123456789abcdef")
	})
	a, b := ownedByB(t, o.URL, nil)
	cases := []struct {
		name   string
		fields []string
	}{
		{"plain", nil},
		{"range", []string{"Range: bytes=2-5"}},
		{"suffix range", []string{"Range: bytes=-3"}},
		{"unsatisfiable", []string{"Range: bytes=99-"}},
		{"if-none-match", []string{"If-None-Match: \"e1\""}},
		{"if-none-match other", []string{"If-None-Match: \"zz\""}},
		{"if-modified-since", []string{"If-Modified-Since: Sat, 05 Dec 2026 11:30:00 GMT"}},
		{"if-range match", []string{"Range: bytes=0-1", "If-Range: \"e1\""}},
		{"if-range other", []string{"Range: bytes=0-1", "If-Range: \"x\""}},
		{"vary other", []string{"Accept-Language: fr"}},
	}
	// Warm b for every variant first, so both answers below are b's hits.
	for _, tc := range cases {
		peerGet(t, b.client, "/t", tc.fields...)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			direct, db := peerGet(t, b.client, "/t", tc.fields...)
			via, vb := peerGet(t, a.client, "/t", tc.fields...)
			if direct.StatusCode != via.StatusCode || db != vb {
				t.Fatalf("via peer %d %q, direct %d %q", via.StatusCode, vb, direct.StatusCode, db)
			}
			for _, hd := range []http.Header{direct.Header, via.Header} {
				for _, f := range []string{"Cache-Status", "Age", "Date"} {
					hd.Del(f)
				}
			}
			if fmt.Sprint(direct.Header) != fmt.Sprint(via.Header) {
				t.Errorf("fields differ:\nvia peer %v\ndirect   %v", via.Header, direct.Header)
			}
		})
	}
}

func TestPeerUnreachableFallsBackToOrigin(t *testing.T) {
	o := cacheableOrigin(t)
	a := newPeerNode(t, "edged-a", o.URL, "", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // connections to it are refused
	a.cluster.addrs["edged-gone"] = dead
	a.cluster.setOwner("edged-gone")
	resp, body := peerGet(t, a.client, "/y")
	if resp.StatusCode != 200 || body != "body /y v1" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged-a; fwd=uri-miss; fwd-status=200; stored") {
		t.Errorf("Cache-Status = %q, want this node's own fill", cs)
	}
	if v, _ := testkit.Metric(t, a.reg, "edged_peer_fallbacks_total", "reason", "unreachable"); v != 1 {
		t.Errorf("unreachable fallbacks = %v, want 1", v)
	}
}

func TestPeerTokenRefusalFallsBack(t *testing.T) {
	o := cacheableOrigin(t)
	a := newPeerNode(t, "edged-a", o.URL, "token-a-aaaaaaaaaaaa", nil)
	b := newPeerNode(t, "edged-b", o.URL, "token-b-bbbbbbbbbbbb", nil)
	pop(a, b)
	a.cluster.setOwner("edged-b")
	resp, body := peerGet(t, a.client, "/z")
	if resp.StatusCode != 200 || body != "body /z v1" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if v, _ := testkit.Metric(t, a.reg, "edged_peer_fallbacks_total", "reason", "refused"); v != 1 {
		t.Errorf("refused fallbacks = %v, want 1", v)
	}
	// The peer listener answers only peer fetches with the token.
	for _, tc := range []struct {
		fields []string
		want   int
	}{
		{nil, 400},
		{[]string{"Edged-Peer: x"}, 403},
		{[]string{"Edged-Peer: x", "Edged-Peer-Token: token-a-aaaaaaaaaaaa"}, 403},
		{[]string{"Edged-Peer: x", "Edged-Peer-Token: token-b-bbbbbbbbbbbb"}, 200},
	} {
		if resp, _ := peerGet(t, "http://"+b.peerAddr, "/z", tc.fields...); resp.StatusCode != tc.want {
			t.Errorf("%q: %d, want %d", tc.fields, resp.StatusCode, tc.want)
		}
	}
}

// A peer fetch ends at the first peer, whatever it believes about
// ownership: nodes that disagree never bounce a request between them.
func TestPeerFetchIsNeverForwarded(t *testing.T) {
	o := cacheableOrigin(t)
	a := newPeerNode(t, "edged-a", o.URL, "", nil)
	b := newPeerNode(t, "edged-b", o.URL, "", nil)
	pop(a, b)
	a.cluster.setOwner("edged-b") // a says b owns it ...
	b.cluster.setOwner("edged-a") // ... and b says a does
	resp, body := peerGet(t, a.client, "/loop")
	if resp.StatusCode != 200 || body != "body /loop v1" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := o.hits("/loop"); n != 1 {
		t.Fatalf("origin fetches = %d, want 1", n)
	}
	if _, found := testkit.Metric(t, a.reg, "edged_peer_requests_total", "site", "test"); found {
		t.Error("a answered a peer fetch: b forwarded it")
	}
}

// A purge applied at the asking node that its owner has not applied yet
// must not be undone by the owner's copy.
func TestPeerCopyOlderThanALocalPurgeIsRefused(t *testing.T) {
	o := cacheableOrigin(t)
	var clock atomic.Int64 // the PoP's clock, in nanoseconds from now
	base := time.Now()
	now := func() time.Time { return base.Add(time.Duration(clock.Load())) }
	a, _ := ownedByB(t, o.URL, now)
	a.cluster.hot.Store(true)
	if _, body := peerGet(t, a.client, "/p"); body != "body /p v1" {
		t.Fatal(body)
	}
	// The purge reaches a only (b lags): a drops its replica.
	if _, err := a.cache.Purge(context.Background(), selector.Selector{URLs: []string{"http://example.com/p"}}); err != nil {
		t.Fatal(err)
	}
	resp, body := peerGet(t, a.client, "/p")
	if body != "body /p v2" {
		t.Fatalf("after the purge at a: %q (Cache-Status %q), want the origin's new version", body, resp.Header.Values("Cache-Status"))
	}
	if v, _ := testkit.Metric(t, a.reg, "edged_peer_fallbacks_total", "reason", "purged"); v != 1 {
		t.Errorf("purged fallbacks = %v, want 1", v)
	}
	// A copy the owner fetched after the purge is taken.
	a.cache.Purge(context.Background(), selector.Selector{URLs: []string{"http://example.com/p2"}})
	clock.Add(int64(time.Second))
	if _, body := peerGet(t, a.client, "/p2"); body != "body /p2 v3" {
		t.Fatalf("p2: %q", body)
	}
	if v, _ := testkit.Metric(t, a.reg, "edged_peer_fallbacks_total", "reason", "purged"); v != 1 {
		t.Errorf("purged fallbacks = %v after a post-purge copy, want still 1", v)
	}
}

// Concurrent misses at two nodes for a key one of them owns: one origin
// fetch.
func TestPeerConcurrentMissesCoalesce(t *testing.T) {
	var gate sync.WaitGroup
	gate.Add(1)
	var n atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		gate.Wait()
		w.Header().Set("Cache-Control", "max-age=300")
		io.WriteString(w, "cold")
	})
	a := newPeerNode(t, "edged-a", o.URL, "", nil)
	b := newPeerNode(t, "edged-b", o.URL, "", nil)
	c := newPeerNode(t, "edged-c", o.URL, "", nil)
	pop(a, b, c)
	for _, x := range []*peerNode{a, b, c} {
		x.cluster.setOwner("edged-c")
	}
	var wg sync.WaitGroup
	for _, x := range []*peerNode{a, b, c, a, b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body := peerGet(t, x.client, "/cold"); body != "cold" {
				t.Errorf("%s: %q", x.name, body)
			}
		}()
	}
	o.Await(t, "/cold", 1)
	// Every request waits before the origin answers: the second at each
	// node joined that node's flight, and a's and b's peer fetches joined
	// c's fill.
	waiters := func(x *peerNode) float64 {
		v, _ := testkit.Metric(t, x.reg, "edged_cache_coalesced_waiters_total")
		return v
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		return waiters(a) == 1 && waiters(b) == 1 && waiters(c) == 3
	}, "every request waiting on one fill")
	gate.Done()
	wg.Wait()
	if got := n.Load(); got != 1 {
		t.Fatalf("origin fetches = %d, want 1", got)
	}
}

// BenchmarkPeerHit compares a hit through a peer (the owner's hit, one
// loopback hop, not kept here) with a local hit, one client request at a
// time: the difference is what the hop costs.
func BenchmarkPeerHit(b *testing.B) {
	o := newOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(make([]byte, 1024))
	})
	for _, tc := range []struct {
		name  string
		owner string
	}{{"local", "edged-a"}, {"peer", "edged-b"}} {
		b.Run(tc.name, func(b *testing.B) {
			a := newPeerNode(b, "edged-a", o.URL, "", nil)
			p := newPeerNode(b, "edged-b", o.URL, "", nil)
			pop(a, p)
			a.cluster.setOwner(tc.owner)
			p.cluster.setOwner(tc.owner)
			tr := &http.Transport{MaxIdleConnsPerHost: 4}
			defer tr.CloseIdleConnections()
			get := func() {
				req, _ := http.NewRequest(http.MethodGet, a.client+"/bench", nil)
				req.Host = "example.com"
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			get()
			b.ResetTimer()
			for b.Loop() {
				get()
			}
		})
	}
}

// Age counts from the owner's fill across the hop, and on a replica.
func TestPeerAgeAcrossTheHop(t *testing.T) {
	o := cacheableOrigin(t)
	var clock atomic.Int64
	base := time.Now()
	now := func() time.Time { return base.Add(time.Duration(clock.Load())) }
	a, b := ownedByB(t, o.URL, now)
	a.cluster.hot.Store(true)
	peerGet(t, b.client, "/age") // the owner's copy, at 0 s
	clock.Add(int64(30 * time.Second))
	resp, _ := peerGet(t, a.client, "/age")
	if got := resp.Header.Get("Age"); got != "30" {
		t.Errorf("Age through the peer = %q, want 30", got)
	}
	if cs := resp.Header.Values("Cache-Status"); len(cs) != 2 || !strings.HasSuffix(cs[1], "; stored; ttl=270") {
		t.Errorf("Cache-Status = %q, want the replica stored with 270 s left", cs)
	}
	clock.Add(int64(10 * time.Second))
	resp, _ = peerGet(t, a.client, "/age")
	if got := resp.Header.Get("Age"); got != "40" {
		t.Errorf("Age of the replica = %q, want 40", got)
	}
}
