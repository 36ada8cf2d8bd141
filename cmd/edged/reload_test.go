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

// SIGHUP changes a site's address lists and rate limit: a denied client
// is let in, a new limit applies at once, and a bad CIDR is rejected at
// its key with the running lists kept.
func TestReloadChangesClientLimits(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "origin")
	}))
	defer o.Close()
	site := func(extra string) string {
		return fmt.Sprintf("log:\n  access: false\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n%s", o.URL, extra)
	}
	path := writeConfig(t, site("    clients:\n      deny: [127.0.0.0/8]\n"))
	l, out := startDaemon(t, "-config", path)
	status := func() int {
		resp, _ := fetchHost(t, "http://"+l.Edge+"/x", "cdn.example")
		return resp.StatusCode
	}
	if s := status(); s != http.StatusForbidden {
		t.Fatalf("denied client: %d, want 403", s)
	}
	os.WriteFile(path, []byte(site("    clients:\n      deny: [10.0.0.0/8]\n    rate_limit:\n      rate: 1\n      per: 1h\n      burst: 2\n")), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if !testkit.Poll(10*time.Second, func() bool { return status() == http.StatusOK }) {
		t.Fatalf("the reload did not let the client in:\n%s", out.String())
	}
	// The poll's 403s were refused before the limit, uncharged: its 200
	// took the first token of two.
	if s := status(); s != http.StatusOK {
		t.Fatalf("second request within the burst: %d", s)
	}
	if s := status(); s != http.StatusTooManyRequests {
		t.Errorf("over the reloaded limit: %d, want 429", s)
	}
	os.WriteFile(path, []byte(site("    clients:\n      deny: [127.0.0.0/33]\n")), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if !testkit.Poll(10*time.Second, func() bool { return strings.Contains(out.String(), "reload rejected") }) {
		t.Fatalf("the bad CIDR was not rejected:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "sites[0].clients.deny[0]") {
		t.Errorf("the rejection does not name the key:\n%s", out.String())
	}
	if s := status(); s != http.StatusTooManyRequests {
		t.Errorf("after a bad reload: %d, want the running limit's 429", s)
	}
}
