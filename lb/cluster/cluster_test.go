package cluster_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb/cluster"
	"github.com/edged-proxy/edged/lb/ketama"
)

// newStatic returns a static-membership Cluster named self over members,
// closed when the test ends.
func newStatic(t testing.TB, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	c, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var abc = []cluster.Member{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"}, {Name: "c", Addr: "127.0.0.1:3"}}

// TestStatic: a static list is the membership, and ownership is the ketama
// ring over its names.
func TestStatic(t *testing.T) {
	reg := prometheus.NewRegistry()
	members := []cluster.Member{abc[2], abc[0], abc[1]} // order does not matter
	c := newStatic(t, cluster.Config{Name: "a", Static: members, Registerer: reg})
	if got := c.Live(); !slices.Equal(got, abc) {
		t.Errorf("Live() = %v, want %v", got, abc)
	}
	if c.GossipAddr() != "" {
		t.Errorf("GossipAddr() = %q in static mode, want empty", c.GossipAddr())
	}
	ring, _ := ketama.New([]ketama.Member{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	peers := 0
	for _, k := range keys(1000) {
		want := ring.Lookup(k)
		p, ok := c.Owner(k)
		if ok != (want != "a") || (ok && p != want) {
			t.Fatalf("Owner(%q) = %q, %v; ring owner is %s", k, p, ok, want)
		}
		if ok {
			peers++
		}
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_lookups_total", "owner", "peer"); int(v) != peers {
		t.Errorf("lookups{owner=peer} = %v, want %d", v, peers)
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_members"); v != 3 {
		t.Errorf("members = %v, want 3", v)
	}
	if v, _ := testkit.Metric(t, reg, "edged_cluster_owner_share"); v < 0.2 || v > 0.47 {
		t.Errorf("owner_share = %v, want about 1/3", v)
	}
}

// TestAlone: a node alone owns every key.
func TestAlone(t *testing.T) {
	tests := []struct {
		name string
		cfg  cluster.Config
	}{
		{"static", cluster.Config{Name: "a", Static: []cluster.Member{{Name: "a"}}}},
		{"gossip, no seeds", cluster.Config{Name: "a", Addr: "127.0.0.1:1", Gossip: &cluster.Gossip{BindAddr: "127.0.0.1:0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			tt.cfg.Registerer = reg
			c := newStatic(t, tt.cfg)
			for _, k := range keys(500) {
				if p, ok := c.Owner(k); ok {
					t.Fatalf("alone, Owner(%q) = %s, true", k, p)
				}
			}
			if got := c.Live(); len(got) != 1 || got[0].Name != "a" {
				t.Errorf("Live() = %v, want a alone", got)
			}
			if v, _ := testkit.Metric(t, reg, "edged_cluster_owner_share"); v != 1 {
				t.Errorf("owner_share = %v alone, want 1", v)
			}
		})
	}
}

// TestUnknownPeer: Fetch refuses a name that is not a live peer, this
// node's own included.
func TestUnknownPeer(t *testing.T) {
	c := newStatic(t, cluster.Config{Name: "a", Static: abc})
	for _, name := range []string{"d", "a", ""} {
		req, _ := http.NewRequest(http.MethodGet, "/x", nil)
		if _, err := c.Fetch(name, req); !errors.Is(err, cluster.ErrUnknownPeer) {
			t.Errorf("Fetch(%q) error = %v, want ErrUnknownPeer", name, err)
		}
	}
}

// TestConfigErrors: New rejects what it cannot run.
func TestConfigErrors(t *testing.T) {
	g := &cluster.Gossip{BindAddr: "127.0.0.1:0"}
	tests := []struct {
		name string
		cfg  cluster.Config
		want string
	}{
		{"no name", cluster.Config{Static: abc}, "Name is required"},
		{"neither", cluster.Config{Name: "a"}, "exactly one"},
		{"both", cluster.Config{Name: "a", Addr: "x:1", Static: abc, Gossip: g}, "exactly one"},
		{"self not listed", cluster.Config{Name: "d", Static: abc}, "does not list"},
		{"duplicate", cluster.Config{Name: "a", Static: append(slices.Clone(abc), abc[1])}, "twice"},
		{"peer without addr", cluster.Config{Name: "a", Static: []cluster.Member{{Name: "a"}, {Name: "b"}}}, "no Addr"},
		{"factor below 1", cluster.Config{Name: "a", Static: abc, BalanceFactor: 0.5}, "BalanceFactor"},
		{"gossip without addr", cluster.Config{Name: "a", Gossip: g}, "Config.Addr"},
		{"bad bind", cluster.Config{Name: "a", Addr: "x:1", Gossip: &cluster.Gossip{BindAddr: "nowhere"}}, "BindAddr"},
		{"bad key", cluster.Config{Name: "a", Addr: "x:1", Gossip: &cluster.Gossip{BindAddr: "127.0.0.1:0", SecretKey: []byte("short")}}, "SecretKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cluster.New(tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestOwnerAllocatesNothing: Owner runs on every miss; cache keys are
// often longer than the 32 bytes a string conversion keeps on the stack.
func TestOwnerAllocatesNothing(t *testing.T) {
	c := newStatic(t, cluster.Config{Name: "a", Static: abc, BalanceFactor: 1.5})
	key := "https://www.example.com/a/rather/long/path/to/an/object.jpg?width=640&format=webp"
	if n := testing.AllocsPerRun(100, func() { c.Owner(key) }); n != 0 {
		t.Errorf("Owner allocates %v times per call, want 0", n)
	}
}
