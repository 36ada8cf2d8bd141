package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// healthSite is a configuration with one site over two origins named a and
// b, with the given health_check keys (already indented under it).
func healthSite(a, b, healthCheck string) string {
	return "log:\n  access: false\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n" +
		"      - url: " + a + "\n        name: a\n      - url: " + b + "\n        name: b\n" +
		"    upstream:\n      health_check:\n" + healthCheck
}

// checkerGoroutines counts the goroutines running lb health checks.
func checkerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/edged-proxy/edged/lb.startHealthChecks ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// An origin failing its health checks gets no client request, the metric
// says so, and reloads (which replace the pools) leave no checker behind.
func TestHealthCheckThroughEdged(t *testing.T) {
	origin := func(name string, healthStatus int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				w.WriteHeader(healthStatus)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := origin("origin-a", 200), origin("origin-b", 503)
	testkit.Eventually(t, 30*time.Second, func() bool { return checkerGoroutines() == 0 }, "earlier tests' checkers to end")
	path := writeConfig(t, healthSite(a.URL, b.URL, "        enabled: true\n        path: /healthz\n        interval: 10ms\n        timeout: 60s\n        fall: 1\n"))
	l, out := startDaemon(t, "-config", path)
	unhealthy := `edged_upstream_healthy{pool="s",shard="b"} 0`
	testkit.Eventually(t, 30*time.Second, func() bool {
		_, m := fetch(t, "http://"+l.Admin+"/metrics")
		return strings.Contains(m, unhealthy)
	}, unhealthy)
	for i := range 40 {
		if _, body := fetchHost(t, fmt.Sprintf("http://%s/k%d", l.Edge, i), "cdn.example"); body != "origin-a" {
			t.Fatalf("request %d answered by %q, want origin-a (b fails its checks)", i, body)
		}
	}
	if !strings.Contains(out.String(), `"msg":"upstream shard failed its health checks","pool":"s","shard":"b","reason":"bad_status"`) {
		t.Errorf("no warning for b in the log:\n%s", out.String())
	}

	for i := 1; i <= 3; i++ {
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		testkit.Eventually(t, 30*time.Second, func() bool {
			return strings.Count(out.String(), "configuration reloaded") == i
		}, fmt.Sprintf("reload %d", i))
	}
	testkit.Eventually(t, 30*time.Second, func() bool { return checkerGoroutines() == 2 },
		"two checkers (one per origin) after three reloads")
}

// -check-config and starting report a bad health_check value as
// FILE:LINE: key.path: message.
func TestCheckConfigHealthCheck(t *testing.T) {
	// Line 13 is the first key under health_check.
	for _, c := range []struct {
		name, keys string
		want       string // "" means valid
	}{
		{"good", "        expected_status: \"200,204,300-399\"\n        path: /healthz?full=1\n        host: origin.example:8080\n", ""},
		{"bad status range", "        expected_status: \"2xx\"\n",
			`:13: sites[0].upstream.health_check.expected_status: "2xx" is not a status code (100 to 599)`},
		{"reversed range", "        enabled: true\n        expected_status: 399-200\n",
			`:14: sites[0].upstream.health_check.expected_status: range "399-200" ends before it starts`},
		{"relative path", "        path: healthz\n", `:13: sites[0].upstream.health_check.path: "healthz" must start with /`},
		{"bad host", "        host: \"a b\"\n", `:13: sites[0].upstream.health_check.host: invalid Host "a b"`},
		{"method", "        method: POST\n", `:13: sites[0].upstream.health_check.method: must be GET or HEAD`},
		{"a further pool's", "        path: /healthz\n    pools:\n      - name: p\n        origins:\n          - url: http://127.0.0.1:3\n" +
			"        upstream:\n          health_check:\n            expected_status: 200-\n",
			`:20: sites[0].pools[0].upstream.health_check.expected_status: "200-" is not a status code`},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeConfig(t, healthSite("http://127.0.0.1:1", "http://127.0.0.1:2", c.keys))
			checkConfigAt(t, file, c.want)
		})
	}
}
