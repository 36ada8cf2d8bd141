package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// SIGHUP re-reads the configuration: a valid one swaps the sites in, an
// invalid one is rejected and the running one stays.
func TestReloadOnSIGHUP(t *testing.T) {
	named := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, name)
		}))
	}
	a, b := named("origin-a"), named("origin-b")
	defer a.Close()
	defer b.Close()
	site := func(url string) string {
		return fmt.Sprintf("log:\n  access: false\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n", url)
	}
	path := writeConfig(t, site(a.URL))
	l, out := startDaemon(t, "-config", path)
	body := func() string {
		_, b := fetchHost(t, "http://"+l.Edge+"/who", "cdn.example")
		return b
	}
	if got := body(); got != "origin-a" {
		t.Fatalf("before reload: %q", got)
	}
	// The reload runs in the daemon's signal loop, which exports no event:
	// poll what it changes.
	waitFor := func(cond func() bool, what string) {
		t.Helper()
		if !testkit.Poll(10*time.Second, cond) {
			t.Fatalf("%s did not happen:\n%s", what, out.String())
		}
	}
	os.WriteFile(path, []byte(site(b.URL)), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(func() bool { return body() == "origin-b" }, "the reload to origin-b")

	os.WriteFile(path, []byte("sites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: ftp://nope\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(func() bool { return strings.Contains(out.String(), "reload rejected") }, "the rejection")
	if !strings.Contains(out.String(), "origins[0].url") {
		t.Errorf("the rejection does not say what is wrong:\n%s", out.String())
	}
	if got := body(); got != "origin-b" {
		t.Errorf("after a bad reload: %q, want the running origin-b", got)
	}
}
