package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// The soft memory limit follows the disk tier: the memory tier's budget,
// 256 MiB, and diskObjectHeap for each object on disk, so that a disk of
// many small objects does not pin the heap at a limit its index alone
// fills.
func TestMemoryLimitFollowsDiskObjects(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // the daemon's own limit, whatever the environment says
	prevLimit := debug.SetMemoryLimit(-1)
	prevEvery := memoryLimitEvery
	memoryLimitEvery = 10 * time.Millisecond
	t.Cleanup(func() { memoryLimitEvery = prevEvery; debug.SetMemoryLimit(prevLimit) })

	o := newSizedOrigin(t)
	const mem = 32 << 20
	cfg := writeConfig(t, fmt.Sprintf("cache:\n  memory:\n    max_bytes: %d\n", mem)+alwaysAdmit)
	l, _ := startDaemon(t, "-config", cfg, "-origin", o.URL)
	if got, want := debug.SetMemoryLimit(-1), int64(mem+256<<20); got != want {
		t.Errorf("limit at start %d, want %d", got, want)
	}
	const n = 200
	for i := range n {
		fetchHost(t, fmt.Sprintf("http://%s/obj/m%d-100", l.Edge, i), "cdn.example")
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		return diskObjects(t, l.Admin) == n && debug.SetMemoryLimit(-1) == int64(mem+256<<20+n*diskObjectHeap)
	}, fmt.Sprintf("%d objects on disk and a limit of %d", n, int64(mem+256<<20+n*diskObjectHeap)))
}

func diskObjects(t *testing.T, admin string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return int64(metricValue(t, string(b), "edged_disk_objects"))
}
