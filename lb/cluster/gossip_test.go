package cluster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb/cluster"
)

// detectTimeout bounds the wait for a membership change: generous, for a
// loaded machine; the test logs what it measured.
const detectTimeout = 15 * time.Second

// gossipNode is one memberlist node of a test PoP.
type gossipNode struct {
	c *cluster.Cluster
	w *watcher
}

// startGossipNode starts a gossiping node named name on 127.0.0.1 (port 0),
// joining seeds, with a fake peer HTTP address. The test closes it.
func startGossipNode(t *testing.T, name, addr string, seeds ...string) *gossipNode {
	t.Helper()
	w := newWatcher()
	c, err := cluster.New(cluster.Config{
		Name:     name,
		Addr:     addr,
		Gossip:   &cluster.Gossip{BindAddr: "127.0.0.1:0", Join: seeds},
		OnChange: w.onChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &gossipNode{c: c, w: w}
}

// TestGossipFailover runs three memberlist nodes: they converge and agree
// on every key's owner; one crashes (Close, no leave) and the other two
// drop it, moving exactly the keys it owned; a node of the same name at a
// new port joins and exactly those keys move back.
func TestGossipFailover(t *testing.T) {
	a := startGossipNode(t, "a", "127.0.0.1:10001")
	b := startGossipNode(t, "b", "127.0.0.1:10002", a.c.GossipAddr())
	c := startGossipNode(t, "c", "127.0.0.1:10003", a.c.GossipAddr())
	for _, n := range []*gossipNode{a, b, c} {
		n.w.waitFor(t, detectTimeout, "a", "b", "c")
	}
	if got := b.c.Live(); !slices.Contains(got, cluster.Member{Name: "c", Addr: "127.0.0.1:10003"}) {
		t.Errorf("b.Live() = %v: want c with its peer HTTP address from the node meta", got)
	}

	ks := keys(2000)
	before := owners(a.c, ks)
	for _, n := range []*gossipNode{b, c} {
		if got := owners(n.c, ks); !slices.Equal(got, before) {
			t.Fatalf("%s disagrees with a on key owners", n.c.Self())
		}
	}

	start := time.Now()
	c.c.Close() // a crash: no leave message
	a.w.waitFor(t, detectTimeout, "a", "b")
	b.w.waitFor(t, detectTimeout, "a", "b")
	t.Logf("crash of c detected by a and b after %v", time.Since(start))

	during := owners(a.c, ks)
	if got := owners(b.c, ks); !slices.Equal(got, during) {
		t.Fatal("a and b disagree on key owners without c")
	}
	for i := range ks {
		if moved, wasC := during[i] != before[i], before[i] == "c"; moved != wasC {
			t.Fatalf("key %q: owner %s → %s; only c's keys may move", ks[i], before[i], during[i])
		}
	}

	c2 := startGossipNode(t, "c", "127.0.0.1:10013", b.c.GossipAddr())
	for _, n := range []*gossipNode{a, b, c2} {
		n.w.waitFor(t, detectTimeout, "a", "b", "c")
	}
	// A node back under its name may flap once more (a stale "dead" about
	// its old incarnation still gossiping until it refutes it): wait for
	// the views to settle, then compare.
	for _, n := range []*gossipNode{a, b, c2} {
		if !testkit.Poll(detectTimeout, func() bool { return slices.Equal(owners(n.c, ks), before) }) {
			t.Errorf("%s: after c's restart, key owners differ from before its crash", n.c.Self())
		}
	}
	if got := a.c.Live(); !slices.Contains(got, cluster.Member{Name: "c", Addr: "127.0.0.1:10013"}) {
		t.Errorf("a.Live() = %v: want c at its new peer address", got)
	}
}

// TestGossipLeave: a node that leaves gracefully is dropped by the others
// at once, and then owns nothing and knows no one.
func TestGossipLeave(t *testing.T) {
	a := startGossipNode(t, "a", "127.0.0.1:10001")
	b := startGossipNode(t, "b", "127.0.0.1:10002", a.c.GossipAddr())
	c := startGossipNode(t, "c", "127.0.0.1:10003", a.c.GossipAddr())
	for _, n := range []*gossipNode{a, b, c} {
		n.w.waitFor(t, detectTimeout, "a", "b", "c")
	}
	start := time.Now()
	if err := b.c.Leave(time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	a.w.waitFor(t, detectTimeout, "a", "c")
	c.w.waitFor(t, detectTimeout, "a", "c")
	t.Logf("leave of b seen by a and c after %v", time.Since(start))
	for _, k := range keys(200) {
		if p, ok := b.c.Owner(k); ok {
			t.Fatalf("after Leave, b.Owner(%q) = %s, true", k, p)
		}
	}
	if live := b.c.Live(); len(live) != 0 {
		t.Errorf("after Leave, b.Live() = %v, want none", live)
	}
}

// TestGossipJoinRetries: a node whose seed is not up yet keeps trying, and
// joins once the seed starts.
func TestGossipJoinRetries(t *testing.T) {
	a := startGossipNode(t, "a", "127.0.0.1:10001")
	seed := a.c.GossipAddr()
	a.c.Close()
	b := startGossipNode(t, "b", "127.0.0.1:10002", seed)
	b.w.waitFor(t, detectTimeout, "b")

	w := newWatcher()
	a2, err := cluster.New(cluster.Config{
		Name: "a", Addr: "127.0.0.1:10001",
		Gossip:   &cluster.Gossip{BindAddr: seed},
		OnChange: w.onChange,
	})
	if err != nil {
		t.Skipf("seed port %s taken meanwhile: %v", seed, err)
	}
	t.Cleanup(func() { a2.Close() })
	b.w.waitFor(t, detectTimeout, "a", "b")
	w.waitFor(t, detectTimeout, "a", "b")
}
