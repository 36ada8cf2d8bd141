package cluster_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb/cluster"
)

// TestAdmit: a key is admitted from its HotThreshold-th miss within a
// window, not before.
func TestAdmit(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		misses    int
		want      []bool // Admit's answer at each miss
	}{
		{"seen once, default threshold", 0, 1, []bool{false}},
		{"seen 4 times, default threshold", 0, 5, []bool{false, false, false, true, true}},
		{"threshold 1 admits at once", 1, 2, []bool{true, true}},
		{"threshold 2", 2, 3, []bool{false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c := newStatic(t, cluster.Config{Name: "a", Static: abc, HotThreshold: tt.threshold, Registerer: reg})
			admitted := 0
			for i, want := range tt.want {
				if got := c.Admit("https://example.com/hot"); got != want {
					t.Errorf("miss %d: Admit = %v, want %v", i+1, got, want)
				}
				if want {
					admitted++
				}
			}
			if v, _ := testkit.Metric(t, reg, "edged_cluster_replica_admissions_total", "result", "admitted"); int(v) != admitted {
				t.Errorf("admissions{admitted} = %v, want %d", v, admitted)
			}
			if v, _ := testkit.Metric(t, reg, "edged_cluster_replica_admissions_total", "result", "rejected"); int(v) != len(tt.want)-admitted {
				t.Errorf("admissions{rejected} = %v, want %d", v, len(tt.want)-admitted)
			}
		})
	}
}

// TestAdmitAging: counters halve every HotWindow misses, so a key admitted
// long ago and not missed for several windows starts over.
func TestAdmitAging(t *testing.T) {
	const window = 1024
	tests := []struct {
		name    string
		windows int // windows of other keys' misses between the two bursts
		want    bool
	}{
		{"same window", 0, true},
		{"one window later: 7 halved to 3, the next miss makes 4", 1, true},
		{"three windows later: 7 halved to 0, the next miss makes 1", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStatic(t, cluster.Config{Name: "a", Static: abc, HotWindow: window, HotThreshold: 4})
			const key = "https://example.com/once-hot"
			for range 6 {
				c.Admit(key)
			}
			if !c.Admit(key) { // 7 misses: admitted
				t.Fatal("7 misses: not admitted")
			}
			others := keys(16)
			for i := range tt.windows * window {
				c.Admit(others[i%len(others)])
			}
			if got := c.Admit(key); got != tt.want {
				t.Errorf("next miss after %d windows: Admit = %v, want %v", tt.windows, got, tt.want)
			}
		})
	}
}
