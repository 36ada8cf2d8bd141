package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// An idle edged, run as the real process (zero-downtime upgrades on, as by
// default), exits on SIGTERM well within a second, on both HTTP/1 servers,
// with idle connections of every kind open: a keep-alive connection between
// requests on the edge and on the admin listener, one that has sent
// nothing, one half way through its first head. (Regressions: every stop
// slept a second for an upgrade drain, although no successor existed; and
// under net/http a connection that had sent no request held Shutdown for
// 5 s.) The bound is behaviour, not speed: the process takes some tens of
// milliseconds.
func TestIdleExitsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs edged as a subprocess")
	}
	const bound = time.Second
	// A binary built with -race sleeps a second before it exits, unless
	// told not to (GORACE atexit_sleep_ms, default 1000).
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	o := testkit.NewOrigin(t, nil)
	// A small memory tier: closing it zeroes its admission counters, which
	// takes a few hundred milliseconds for the default 256 MiB under the
	// race detector (a millisecond without).
	cfg := writeConfig(t, "cache:\n  memory:\n    max_bytes: 1MiB\n    max_object_bytes: 64KiB\n")
	for _, server := range []string{"edged", "net/http"} {
		t.Run(strings.ReplaceAll(server, "/", ""), func(t *testing.T) {
			c := startChild(t, "-config", cfg, "-origin", o.URL, "-data", t.TempDir(), "-http1", server)
			keepAlive := func(addr, path string) net.Conn {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { nc.Close() })
				io.WriteString(nc, "GET "+path+" HTTP/1.1\r\nHost: cdn.example\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return nc
			}
			for _, first := range []string{"", "GET /half HTTP/1.1\r\nHost: cdn.example\r\n"} {
				nc, err := net.Dial("tcp", c.edge)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { nc.Close() })
				io.WriteString(nc, first)
			}
			// Accepted in order: once this one is answered, the two above
			// are the server's too.
			keepAlive(c.edge, "/a")
			keepAlive(c.admin, "/healthz")
			exited := make(chan error, 1)
			start := time.Now()
			if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			go func() { exited <- c.cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit: %v\n%s", err, c.log.String())
				}
				t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
			case <-time.After(bound):
				t.Errorf("still running %v after SIGTERM", bound)
				c.cmd.Process.Kill()
				<-exited
			}
		})
	}
}
