package cluster_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/lb/cluster"
)

// Interface guard: *cluster.Cluster is the edge's Cluster seam.
var _ edge.Cluster = (*cluster.Cluster)(nil)

// watcher records the membership a Cluster reports through OnChange and
// lets a test wait for a given one.
type watcher struct {
	mu      sync.Mutex
	live    []cluster.Member
	changed chan struct{}
}

func newWatcher() *watcher { return &watcher{changed: make(chan struct{}, 1)} }

// onChange is the Config.OnChange to give the Cluster.
func (w *watcher) onChange(live []cluster.Member) {
	w.mu.Lock()
	w.live = live
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// names returns the names of the last membership reported.
func (w *watcher) names() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.live {
		out = append(out, m.Name)
	}
	return out
}

// waitFor waits until the reported membership is exactly names (sorted)
// and returns how long that took, failing the test after timeout.
func (w *watcher) waitFor(t *testing.T, timeout time.Duration, names ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !slices.Equal(w.names(), names) {
		select {
		case <-w.changed:
		case <-deadline.C:
			t.Fatalf("membership is %v after %v, want %v", w.names(), timeout, names)
		}
	}
	return time.Since(start)
}

// keys returns n distinct cache keys.
func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://example.com/objects/%d?v=1", i)
	}
	return out
}

// owners returns the owner c computes for each key: a peer's name, or
// c.Self() for the keys c owns.
func owners(c *cluster.Cluster, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if p, ok := c.Owner(k); ok {
			out[i] = p
		} else {
			out[i] = c.Self()
		}
	}
	return out
}
