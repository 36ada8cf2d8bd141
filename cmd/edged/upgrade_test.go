package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// A zero-downtime upgrade under steady load: SIGUSR2 starts a new process
// that takes the listening socket over, the old one drains and exits, and
// no client request fails. The disk tier moves to the new process.
func TestZeroDowntimeUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("runs edged as subprocesses")
	}
	o := newSizedOrigin(t)
	pidFile := filepath.Join(t.TempDir(), "edged.pid")
	t.Setenv("EDGED_PID_FILE", pidFile)
	data := t.TempDir()
	cfg := writeConfig(t, "log:\n  access: false\n")
	c := startChild(t, "-config", cfg, "-origin", o.URL, "-data", data)
	oldPID := c.cmd.Process.Pid
	fetchHost(t, "http://"+c.edge+"/obj/warm-4000", "cdn.example")

	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+c.edge+"/obj/k"+strconv.Itoa((w*1000+i)%50)+"-2000", nil)
				req.Host = "cdn.example"
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = &statusErr{resp.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		})
	}
	// Upgrade under steady load: once the old process has answered a good
	// number of requests.
	testkit.Eventually(t, 20*time.Second, func() bool { return ok.Load() >= 100 }, "100 requests answered before the upgrade")
	if err := syscall.Kill(oldPID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.cmd.Process.Wait(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the old process exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit after the upgrade")
	}
	before := ok.Load()
	// The new process keeps serving: let it answer a good number of
	// requests under the same load (checked below).
	testkit.Poll(20*time.Second, func() bool { return ok.Load() >= before+100 })
	close(stop)
	wg.Wait()

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("no PID file from the new process: %v", err)
	}
	newPID, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	defer syscall.Kill(newPID, syscall.SIGTERM)
	if newPID == oldPID || newPID == 0 {
		t.Fatalf("PID file says %d (old %d)", newPID, oldPID)
	}
	if failed.Load() != 0 {
		t.Log(c.log.String())
		t.Errorf("%d of %d requests failed across the upgrade (first: %v)", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() == before {
		t.Error("no request succeeded after the old process exited")
	}
	// The new process took the disk tier over and warmed its memory from
	// it: the warm object, which no request asked of the new process, was
	// copied into memory by the warm start, and is a hit.
	testkit.Eventually(t, 20*time.Second, func() bool {
		_, m := fetch(t, "http://"+c.admin+"/metrics")
		return metricValue(t, m, "edged_disk_warm_start_seconds") > 0
	}, "the new process's warm start to finish")
	_, m := fetch(t, "http://"+c.admin+"/metrics")
	if n := metricValue(t, m, "edged_disk_warm_start_objects_total"); n < 1 {
		t.Errorf("the new process's warm start copied %v objects, want the warm one at least", n)
	}
	diskBytes := func(m string) float64 {
		if !strings.Contains(m, `edged_hit_bytes_total{tier="disk"} `) {
			return 0 // no disk hit yet
		}
		return metricValue(t, m, `edged_hit_bytes_total{tier="disk"}`)
	}
	before = int64(diskBytes(m)) // the load has stopped: only our request from here
	if !testkit.Poll(10*time.Second, func() bool { return isHit(t, c.edge, "/obj/warm-4000") }) {
		t.Fatal("the new process never served the old disk tier's object")
	}
	if _, m = fetch(t, "http://"+c.admin+"/metrics"); int64(diskBytes(m)) != before {
		t.Errorf("the warm object came from disk (%v disk hit bytes, %d before): the warm start did not copy it", diskBytes(m), before)
	}
	if failed.Load() == 0 {
		t.Logf("%d requests across the upgrade, none failed", ok.Load())
	}
	syscall.Kill(newPID, syscall.SIGTERM)
	// Not our child, so not waitable: poll until it is gone (best effort).
	testkit.Poll(10*time.Second, func() bool { return syscall.Kill(newPID, 0) != nil })
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return "status " + strconv.Itoa(e.code) }
