package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// After a restart the small objects the last run served are memory hits
// once the warm start has run (cache.disk.warm_start, on by default); one
// too large for memory stays on disk. With warm_start off they are served
// from disk.
func TestRestartWarmsMemory(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		yaml                 string
		wantObjects          float64
		wantMemory, wantDisk float64
	}{
		{"on", smallMemory, 2, 1000 + 50000, 300000},
		{"off", smallMemory + "  disk:\n    warm_start: false\n", 0, 0, 1000 + 50000 + 300000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newSizedOrigin(t)
			data := t.TempDir()
			cfg := writeConfig(t, tc.yaml)
			paths := []string{"/obj/a-1000", "/obj/b-50000", "/obj/c-300000"}
			l, _, stop := runDaemon(t, "-config", cfg, "-origin", o.URL, "-data", data)
			for _, p := range paths {
				fetchHost(t, "http://"+l.Edge+p, "cdn.example")
			}
			stop()

			l, _, stop = runDaemon(t, "-config", cfg, "-origin", o.URL, "-data", data)
			defer stop()
			metrics := func() string { _, m := fetch(t, "http://"+l.Admin+"/metrics"); return m }
			if tc.wantObjects > 0 {
				testkit.Eventually(t, 20*time.Second, func() bool {
					return metricValue(t, metrics(), "edged_disk_warm_start_seconds") > 0
				}, "the warm start to finish")
			}
			if n := metricValue(t, metrics(), "edged_disk_warm_start_objects_total"); n != tc.wantObjects {
				t.Errorf("warm start promoted %v objects, want %v", n, tc.wantObjects)
			}
			for _, p := range paths {
				resp, b := fetchHost(t, "http://"+l.Edge+p, "cdn.example")
				if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit") || b != string(body(p, len(b))) {
					t.Errorf("%s after restart: Cache-Status %q, want a hit with the right body", p, cs)
				}
			}
			m := metrics()
			for tier, want := range map[string]float64{"memory": tc.wantMemory, "disk": tc.wantDisk} {
				if got := metricValue(t, m, fmt.Sprintf("edged_hit_bytes_total{tier=%q}", tier)); got != want {
					t.Errorf("hit bytes from %s: %v, want %v", tier, got, want)
				}
			}
		})
	}
}
