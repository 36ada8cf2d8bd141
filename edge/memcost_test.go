package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	simorigin "github.com/edged-proxy/edged/loadtest/origin"
)

// The memory tier's budget is the heap its entries take: what
// edged_memory_bytes says the stored objects cost is, within a tenth,
// what the process's live heap grew by when they were stored and served
// once from memory (the entry, its header, the tier's own records and
// the edge's encoded response head). A budget that undercounts lets the
// heap outgrow the soft memory limit set from it (cmd/edged), and the
// collector then runs nearly without pause. Measured end to end: a real
// origin, the pool, the cache and the edge.
//
// The heap is the process's, so the measurement runs in a process of its
// own: in the package's, what earlier tests leave behind (a retired
// pool's drain, a closing cache) is freed while it measures.
func TestMemoryCostMatchesHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills thousands of objects")
	}
	if os.Getenv("EDGED_MEMCOST_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryCostMatchesHeap$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "EDGED_MEMCOST_CHILD=1")
		out, err := cmd.CombinedOutput()
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.Contains(line, "memcost_test.go") {
				t.Log(strings.TrimSpace(line))
			}
		}
		if err != nil {
			t.Fatalf("the measuring process: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestMemoryCostMatchesHeap") {
			t.Fatalf("the measuring process did not run the test:\n%s", out)
		}
		return
	}
	sim, err := simorigin.New(simorigin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	// A header-heavy response with a small body, as an API or a CDN's
	// image origin sends (and no Vary, which adds entries of its own).
	wide := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600, stale-while-revalidate=60")
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Etag", `"`+strings.Repeat("e", 32)+`"`)
		h.Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		h.Set("Server", "origin/1.2.3")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Timing-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		h.Set("Surrogate-Key", "api v2 item-"+r.URL.Path[1:])
		h.Set("X-Request-Id", fmt.Sprintf("%032x", len(r.URL.Path)))
		h.Set("X-Amz-Meta-Owner", "team-a")
		io.WriteString(w, strings.Repeat("j", 100))
	}))
	t.Cleanup(wide.Close)

	for _, tc := range []struct {
		name string
		base string
		path string // %d is the object's number
	}{
		{"1KiB from the origin simulator", simSrv.URL, "/obj/s%d?size=1KiB"},
		{"100B with 12 fields", wide.URL, "/w%d"},
		{"16KiB from the origin simulator", simSrv.URL, "/obj/b%d?size=16KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			base, _, _ := buildEdge(t, edgeOpts{reg: reg, cacheBytes: 1 << 30}, tc.base)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			t.Cleanup(client.CloseIdleConnections)
			fetch := func(i int) {
				t.Helper()
				req, _ := http.NewRequest("GET", base+fmt.Sprintf(tc.path, i), nil)
				req.Host = "example.com"
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			// Warm up what every request allocates once (pools, buffers,
			// connections), then measure n more objects.
			const warm, n = 200, 3000
			for i := range warm {
				fetch(i)
				fetch(i)
			}
			heap0, cost0 := liveHeap(), metricValue(t, reg, "edged_memory_bytes")
			for i := warm; i < warm+n; i++ {
				fetch(i) // the fill
				fetch(i) // a hit from memory, which encodes the head once
			}
			if got := metricValue(t, reg, "edged_memory_objects"); got != warm+n {
				t.Fatalf("%v objects in memory, want %d (the budget is too small for the test)", got, warm+n)
			}
			heap, cost := liveHeap()-heap0, metricValue(t, reg, "edged_memory_bytes")-cost0
			ratio := float64(heap) / cost
			t.Logf("per object: heap %.0f B, cost %.0f B (heap/cost %.2f)", float64(heap)/n, cost/n, ratio)
			// Over the cost is the danger; under it wastes the budget.
			// net/http's HTTP/1 server serves hits through the general
			// path, which encodes no head to keep, so it stays under.
			low := 0.9
			if os.Getenv("EDGED_TEST_HTTP1") == "net/http" {
				low = 0.75
			}
			if ratio < low || ratio > 1.1 {
				t.Errorf("the live heap grew %.2f× what the memory tier counted (%.0f B against %.0f B an object); want %.2f–1.1", ratio, float64(heap)/n, cost/n, low)
			}
		})
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
