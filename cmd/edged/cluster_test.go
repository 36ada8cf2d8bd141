package main

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// popNode is one in-process node of a test PoP.
type popNode struct {
	name string
	l    listening
	stop func()
}

// clusterYAML is a node's configuration: memory only, gossip on loopback,
// joining join (if set), plus extra.
func clusterYAML(name, join, extra string) string {
	y := "log:\n  access: false\ncache:\n  disk:\n    enabled: false\ncluster:\n  listen: 127.0.0.1:0\n  node: " + name +
		"\n  gossip:\n    listen: 127.0.0.1:0\n"
	if join != "" {
		y += "    join: [\"" + join + "\"]\n"
	}
	return y + extra
}

// clusterView is GET /cluster's answer.
type clusterView struct {
	Node    string `json:"node"`
	Joined  bool   `json:"joined"`
	Members []struct {
		Name string `json:"name"`
	} `json:"members"`
	OwnerShare float64 `json:"owner_share"`
	Owner      string  `json:"owner"`
}

func getCluster(t *testing.T, admin, key string) clusterView {
	t.Helper()
	u := "http://" + admin + "/cluster"
	if key != "" {
		u += "?key=" + key
	}
	resp, body := fetch(t, u)
	var v clusterView
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET /cluster: %d %s", resp.StatusCode, body)
	}
	return v
}

// startPoP starts n nodes that gossip on loopback, each with extra in its
// configuration, in front of originURL, and waits until each sees all.
func startPoP(t *testing.T, n int, originURL, extra string) []*popNode {
	t.Helper()
	nodes := make([]*popNode, n)
	join := ""
	for i := range nodes {
		name := fmt.Sprintf("pop-%c", 'a'+i)
		l, _, stop := runDaemon(t, "-config", writeConfig(t, clusterYAML(name, join, extra)), "-origin", originURL)
		t.Cleanup(stop)
		nodes[i] = &popNode{name: name, l: l, stop: stop}
		if join == "" {
			join = l.Gossip
		}
	}
	for _, nd := range nodes {
		waitMembers(t, nd.l.Admin, n)
	}
	return nodes
}

func waitMembers(t *testing.T, admin string, n int) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, func() bool {
		v := getCluster(t, admin, "")
		return v.Joined && len(v.Members) == n
	}, fmt.Sprintf("%s to see %d members", admin, n))
}

func TestPoPOneCacheAcrossNodes(t *testing.T) {
	o := newSizedOrigin(t)
	nodes := startPoP(t, 3, o.URL, "")
	// Each node owns about a third of the key space.
	for _, nd := range nodes {
		if v := getCluster(t, nd.l.Admin, ""); v.OwnerShare < 0.1 || v.OwnerShare > 0.6 {
			t.Errorf("%s owns %.2f of the key space", nd.name, v.OwnerShare)
		}
	}
	// Every node agrees on every key's owner.
	for i := range 30 {
		key := fmt.Sprintf("http://cdn.example/obj/k%d-100", i)
		owner := getCluster(t, nodes[0].l.Admin, key).Owner
		for _, nd := range nodes[1:] {
			if o2 := getCluster(t, nd.l.Admin, key).Owner; o2 != owner {
				t.Fatalf("%s: owner %s at %s, %s at %s", key, owner, nodes[0].name, o2, nd.name)
			}
		}
	}
	// A cold object asked for at every node at once: one origin fetch.
	o.Hold()
	var wg sync.WaitGroup
	for range 3 {
		for _, nd := range nodes {
			wg.Go(func() {
				if resp, b := fetchHost(t, "http://"+nd.l.Edge+"/obj/cold-5000", "cdn.example"); resp.StatusCode != 200 || b != string(body("/obj/cold-5000", 5000)) {
					t.Errorf("%s: %d, wrong body", nd.name, resp.StatusCode)
				}
			})
		}
	}
	o.Await(t, "/obj/cold-5000", 1)
	owner := getCluster(t, nodes[0].l.Admin, "http://cdn.example/obj/cold-5000").Owner
	var ownerNode *popNode
	for _, nd := range nodes {
		if nd.name == owner {
			ownerNode = nd
		}
	}
	// Every request waits on the one fill before the origin answers: the
	// owner's collapsed waiters are its own two others and the other
	// nodes' peer fetches (one per node: each coalesced its own first).
	testkit.Eventually(t, 20*time.Second, func() bool {
		_, m := fetch(t, "http://"+ownerNode.l.Admin+"/metrics")
		return metricOr0(m, "edged_cache_coalesced_waiters_total") >= 4
	}, "the peer fetches to join the owner's fill")
	o.Release()
	wg.Wait()
	if n := o.Hits("/obj/cold-5000"); n != 1 {
		t.Fatalf("origin fetched the cold object %d times, want 1", n)
	}
	// Through a peer: the owner's member first, then this node's fwd=peer.
	for _, nd := range nodes {
		if nd == ownerNode {
			continue
		}
		resp, _ := fetchHost(t, "http://"+nd.l.Edge+"/obj/cold-5000", "cdn.example")
		cs := resp.Header.Values("Cache-Status")
		if len(cs) != 2 || !strings.HasPrefix(cs[0], owner+"; hit") || !strings.HasPrefix(cs[1], nd.name+"; fwd=peer; fwd-status=200") {
			t.Errorf("%s: Cache-Status %q", nd.name, cs)
		}
		if resp.Header.Get("Age") == "" {
			t.Errorf("%s: no Age", nd.name)
		}
	}
	// The long tail is stored once in the PoP: 30 objects, one fetch each,
	// asked for once at every node.
	for i := range 30 {
		p := fmt.Sprintf("/obj/tail%d-2000", i)
		for _, nd := range nodes {
			fetchHost(t, "http://"+nd.l.Edge+p, "cdn.example")
		}
		if n := o.Hits(p); n != 1 {
			t.Errorf("%s: %d origin fetches, want 1", p, n)
		}
	}
	var replicas float64
	for _, nd := range nodes {
		_, m := fetch(t, "http://"+nd.l.Admin+"/metrics")
		replicas += metricOr0(m, `edged_cluster_replica_admissions_total{result="admitted"}`)
	}
	if replicas != 0 {
		t.Errorf("%v replicas made of keys asked for once per node (hot_threshold 4)", replicas)
	}
}

// A node killed under load: the others answer every request meanwhile
// (from the origin for its keys), drop it, and only its keys move; when
// it returns, only those move back.
func TestPoPNodeKilledAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a PoP node as a subprocess")
	}
	o := newSizedOrigin(t)
	nodes := startPoP(t, 2, o.URL, "")
	childCfg := writeConfig(t, clusterYAML("pop-z", nodes[0].l.Gossip, ""))
	ch := startChild(t, "-config", childCfg, "-origin", o.URL)
	for _, nd := range nodes {
		waitMembers(t, nd.l.Admin, 3)
	}
	const nkeys = 300
	owners := func() []string {
		out := make([]string, nkeys)
		for i := range out {
			out[i] = getCluster(t, nodes[0].l.Admin, fmt.Sprintf("http://cdn.example/obj/m%d-100", i)).Owner
		}
		return out
	}
	before := owners()
	// Warm every key through both in-process nodes.
	for i := range nkeys {
		for _, nd := range nodes {
			fetchHost(t, "http://"+nd.l.Edge+fmt.Sprintf("/obj/m%d-100", i), "cdn.example")
		}
	}
	// Load on the two survivors while the third is killed.
	stopLoad := make(chan struct{})
	var failures, requests int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := w; ; i += 4 {
				select {
				case <-stopLoad:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+nodes[i%2].l.Edge+fmt.Sprintf("/obj/m%d-100", i%nkeys), nil)
				req.Host = "cdn.example"
				resp, err := client.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					resp.Body.Close()
				}
				mu.Lock()
				requests++
				if !ok {
					failures++
				}
				mu.Unlock()
			}
		})
	}
	ch.cmd.Process.Signal(syscall.SIGKILL)
	ch.cmd.Wait()
	killed := time.Now()
	for _, nd := range nodes {
		waitMembers(t, nd.l.Admin, 2)
	}
	t.Logf("the dead node left both views %v after the kill", time.Since(killed).Round(time.Millisecond))
	close(stopLoad)
	wg.Wait()
	if failures > 0 {
		t.Errorf("%d of %d requests failed while a node died", failures, requests)
	}
	after := owners()
	for i := range before {
		switch {
		case before[i] == "pop-z" && after[i] == "pop-z":
			t.Errorf("key %d still owned by the dead node", i)
		case before[i] != "pop-z" && after[i] != before[i]:
			t.Errorf("key %d moved from %s to %s, though its owner lives", i, before[i], after[i])
		}
	}
	// It returns under the same name: exactly its keys move back.
	ch = startChild(t, "-config", childCfg, "-origin", o.URL)
	defer func() { ch.cmd.Process.Signal(syscall.SIGTERM); ch.cmd.Wait() }()
	for _, nd := range nodes {
		waitMembers(t, nd.l.Admin, 3)
	}
	// Its return may flap once (a stale "dead" of its old incarnation
	// gossiping until it refutes it): wait for the owners to settle.
	var back []string
	if !testkit.Poll(20*time.Second, func() bool { back = owners(); return slices.Equal(back, before) }) {
		for i := range before {
			if back[i] != before[i] {
				t.Errorf("key %d: owner %s after the return, %s before the kill", i, back[i], before[i])
			}
		}
	}
}

// A purge issued at one node removes the owner's copy and every replica.
func TestPoPPurgeReachesReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS server and a PoP")
	}
	ns := startNATS(t)
	o := newSizedOrigin(t)
	var nodes []*popNode
	join := ""
	for i := range 3 {
		name := fmt.Sprintf("pop-%c", 'a'+i)
		extra := fmt.Sprintf("  hot_threshold: 1\npurge:\n  node: %s\n  tokens: [{name: t, token: %s}]\n  nats:\n    url: %s\n", name, testToken, ns.ClientURL())
		l, _, stop := runDaemon(t, "-config", writeConfig(t, clusterYAML(name, join, extra)), "-origin", o.URL)
		t.Cleanup(stop)
		nodes = append(nodes, &popNode{name: name, l: l, stop: stop})
		if join == "" {
			join = l.Gossip
		}
	}
	for _, nd := range nodes {
		waitMembers(t, nd.l.Admin, 3)
	}
	const p = "/obj/purged-1000"
	for _, nd := range nodes { // hot_threshold 1: every node keeps a copy
		fetchHost(t, "http://"+nd.l.Edge+p, "cdn.example")
	}
	// only-if-cached: 200 from a node's own copy, 504 when it has none
	// (it asks neither a peer nor the origin).
	hitAt := func(nd *popNode) bool {
		req, _ := http.NewRequest("GET", "http://"+nd.l.Edge+p, nil)
		req.Host = "cdn.example"
		req.Header.Set("Cache-Control", "only-if-cached")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	for _, nd := range nodes {
		if !hitAt(nd) {
			t.Fatalf("%s has no copy before the purge", nd.name)
		}
	}
	if code, out := postPurge(t, nodes[0].l.Admin, testToken, `{"urls":["http://cdn.example`+p+`"]}`); code != 200 {
		t.Fatalf("purge: %d %v", code, out)
	}
	fetches := o.Hits(p)
	for _, nd := range nodes[1:] {
		// The fleet delivers in the background (node a applied it as it
		// answered): wait until the others have.
		testkit.Eventually(t, 30*time.Second, func() bool {
			_, m := fetch(t, "http://"+nd.l.Admin+"/metrics")
			return metricOr0(m, "edged_purge_fleet_applied_total") >= 1
		}, nd.name+" to apply the purge")
	}
	for _, nd := range nodes {
		if hitAt(nd) {
			t.Errorf("%s kept a copy after the purge", nd.name)
		}
	}
	for _, nd := range nodes {
		fetchHost(t, "http://"+nd.l.Edge+p, "cdn.example")
	}
	if n := o.Hits(p) - fetches; n != 1 {
		t.Errorf("after the purge the PoP fetched the object %d times, want 1 (the owner's; the others through it)", n)
	}
}

func TestPoPStaticPeersAndSecret(t *testing.T) {
	o := newSizedOrigin(t)
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Static lists name fixed peer addresses: reserve two.
	addrs := []string{freeAddr(t), freeAddr(t)}
	peers := fmt.Sprintf("  peers:\n    - {name: s-a, address: %q}\n    - {name: s-b, address: %q}\n", addrs[0], addrs[1])
	var nodes []*popNode
	for i, name := range []string{"s-a", "s-b"} {
		y := "log:\n  access: false\ncache:\n  disk:\n    enabled: false\ncluster:\n  listen: " + addrs[i] + "\n  node: " + name + "\n  secret_file: " + key + "\n" + peers
		l, _, stop := runDaemon(t, "-config", writeConfig(t, y), "-origin", o.URL)
		t.Cleanup(stop)
		nodes = append(nodes, &popNode{name: name, l: l, stop: stop})
	}
	for i := range 20 {
		p := fmt.Sprintf("/obj/st%d-300", i)
		for _, nd := range nodes {
			if resp, _ := fetchHost(t, "http://"+nd.l.Edge+p, "cdn.example"); resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d", nd.name, p, resp.StatusCode)
			}
		}
		if n := o.Hits(p); n != 1 {
			t.Errorf("%s: %d origin fetches, want 1", p, n)
		}
	}
	// The peer listener refuses a fetch without the token.
	req, _ := http.NewRequest("GET", "http://"+nodes[0].l.Peer+"/obj/st1-300", nil)
	req.Host = "cdn.example"
	req.Header.Set("Edged-Peer", "intruder")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a peer fetch without the token: %d, want 403", resp.StatusCode)
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metricOr0 is the value of the series named (with its labels) in the
// metrics text, or 0 when it is not there yet.
func metricOr0(metrics, name string) float64 {
	for line := range strings.SplitSeq(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func TestPoPSecretFileChecked(t *testing.T) {
	key := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString([]byte("short"))), 0o600)
	cfg := writeConfig(t, "cluster:\n  listen: 127.0.0.1:0\n  node: x\n  gossip:\n    listen: 127.0.0.1:0\n  secret_file: "+key+"\n")
	err := run(t.Context(), []string{"-check-config", cfg}, new(syncBuffer), new(syncBuffer), nil)
	if err == nil || !strings.Contains(err.Error(), "cluster.secret_file: "+key+": the key is 5 bytes, want 16, 24 or 32") {
		t.Fatalf("err = %v", err)
	}
}

// Every series a PoP node exports is documented in docs/metrics.md (or,
// for the purge series, docs/purge.md).
func TestMetricsDocumented(t *testing.T) {
	o := newSizedOrigin(t)
	nodes := startPoP(t, 2, o.URL, "")
	for i := range 10 {
		for _, nd := range nodes {
			fetchHost(t, "http://"+nd.l.Edge+fmt.Sprintf("/obj/doc%d-100", i), "cdn.example")
		}
	}
	var docs string
	for _, f := range []string{"metrics.md", "purge.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", f))
		if err != nil {
			t.Fatal(err)
		}
		docs += string(b)
	}
	_, m := fetch(t, "http://"+nodes[0].l.Admin+"/metrics")
	seen := map[string]bool{}
	for line := range strings.SplitSeq(m, "\n") {
		name, ok := strings.CutPrefix(line, "# TYPE ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		if !strings.HasPrefix(name, "edged_") || seen[name] {
			continue
		}
		seen[name] = true
		if !strings.Contains(docs, "`"+name+"`") && !strings.Contains(docs, "`"+name+"{") {
			t.Errorf("%s is exported but not documented in docs/metrics.md", name)
		}
	}
	if len(seen) < 20 {
		t.Fatalf("only %d edged_ series exported: %v", len(seen), seen)
	}
}

// A PoP on real gossip serving a sliced site: the slices of one large
// object are owned across the nodes (each by the owner of its own ring
// key), and the origin serves each slice once for the PoP whichever node
// the clients ask.
func TestPoPSlicesSpread(t *testing.T) {
	const size, nSlices = 4 << 20, 16 // 256 KiB slices
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	var mu sync.Mutex
	ranges := map[string]int{}
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges[r.Header.Get("Range")]++
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer o.Close()
	site := fmt.Sprintf("sites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n    cache:\n      slice: 256KiB\n", o.URL)
	var nodes []*popNode
	join := ""
	for _, name := range []string{"pop-a", "pop-b"} {
		l, _, stop := runDaemon(t, "-config", writeConfig(t, clusterYAML(name, join, site)))
		t.Cleanup(stop)
		nodes = append(nodes, &popNode{name: name, l: l, stop: stop})
		join = cmp.Or(join, l.Gossip)
	}
	for _, nd := range nodes {
		waitMembers(t, nd.l.Admin, len(nodes))
	}
	for _, nd := range nodes {
		resp, b := fetchHost(t, "http://"+nd.l.Edge+"/big", "cdn.example")
		if resp.StatusCode != 200 || b != string(data) {
			t.Fatalf("%s: %d with %d bytes, want the %d-byte object", nd.name, resp.StatusCode, len(b), size)
		}
	}
	mu.Lock()
	if len(ranges) != nSlices {
		t.Errorf("the origin was asked for %d different ranges, want the %d slices: %v", len(ranges), nSlices, ranges)
	}
	for rng, n := range ranges {
		if n != 1 {
			t.Errorf("the origin served %q %d times, want once for the PoP", rng, n)
		}
	}
	mu.Unlock()
	// pop-b filled the slices it owns for pop-a's request; pop-a answered
	// pop-b's request for the slices it owns from its own store.
	for i, c := range []string{"hit", "miss"} {
		_, m := fetch(t, "http://"+nodes[i].l.Admin+"/metrics")
		if n := metricOr0(m, `edged_peer_requests_total{cache="`+c+`",site="s"}`); n == 0 || n == nSlices {
			t.Errorf("%s answered %v of the %d slices as their owner (%s): the slices are not spread", nodes[i].name, n, nSlices, c)
		}
	}
}
