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

	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/internal/testkit"
)

const adminTok = "0123456789abcdef-admin"

func TestAdminGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	tokens := []config.AdminToken{{Name: "a", Token: adminTok}, {Name: "b", Token: "fedcba9876543210-other"}}
	for _, tc := range []struct {
		name   string
		tokens []config.AdminToken
		remote string
		auth   func(*http.Request)
		want   int
	}{
		{"no tokens, loopback v4", nil, "127.0.0.1:5000", nil, 204},
		{"no tokens, loopback v6", nil, "[::1]:5000", nil, 204},
		{"no tokens, remote", nil, "192.0.2.7:5000", nil, 403},
		{"no tokens, remote with a token", nil, "192.0.2.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminTok) }, 403},
		{"tokens, none presented, even from loopback", tokens, "127.0.0.1:5000", nil, 401},
		{"tokens, bearer", tokens, "192.0.2.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminTok) }, 204},
		{"tokens, second token", tokens, "192.0.2.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer fedcba9876543210-other") }, 204},
		{"tokens, basic password", tokens, "192.0.2.7:5000", func(r *http.Request) { r.SetBasicAuth("anyone", adminTok) }, 204},
		{"tokens, wrong bearer", tokens, "192.0.2.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminTok+"x") }, 401},
		{"tokens, empty bearer", tokens, "192.0.2.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401},
		{"tokens, token as basic user", tokens, "192.0.2.7:5000", func(r *http.Request) { r.SetBasicAuth(adminTok, "") }, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.auth != nil {
				tc.auth(r)
			}
			w := httptest.NewRecorder()
			adminGuard(tc.tokens, ok).ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// What the admin listener serves by default and with admin.* set.
func TestAdminSurface(t *testing.T) {
	type want map[string]int // path → status, without and with the token
	for _, tc := range []struct {
		name  string
		admin string
		anon  want
		token want
	}{
		{"defaults", "", // loopback test client: status open, pprof off
			want{"/": 200, "/status.json": 200, "/debug/pprof/": 404, "/metrics": 200, "/healthz": 200, "/purge/0123456789abcdef0123456789abcdef": 403},
			nil},
		{"status off", "  status: false\n",
			want{"/": 404, "/status.json": 404, "/debug/pprof/": 404, "/metrics": 200}, nil},
		{"tokens and pprof", "  pprof: true\n  tokens:\n    - name: oncall\n      token: " + adminTok + "\n",
			want{"/": 401, "/status.json": 401, "/debug/pprof/": 401, "/metrics": 200, "/healthz": 200},
			want{"/": 200, "/status.json": 200, "/debug/pprof/": 200, "/debug/pprof/cmdline": 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "log:\n  access: false\ncache:\n  disk:\n    enabled: false\nadmin:\n  listen: 127.0.0.1:0\n" + tc.admin
			l, _ := startDaemon(t, "-config", writeConfig(t, cfg))
			get := func(path, token string) int {
				req, _ := http.NewRequest("GET", "http://"+l.Admin+path, nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			for path, code := range tc.anon {
				if got := get(path, ""); got != code {
					t.Errorf("GET %s without a token: %d, want %d", path, got, code)
				}
			}
			for path, code := range tc.token {
				if got := get(path, adminTok); got != code {
					t.Errorf("GET %s with the token: %d, want %d", path, got, code)
				}
			}
		})
	}
}

// edged_config_reloads_total and the last success time follow SIGHUP
// reloads; edged_client_connections_open follows connections opened and
// closed on the edge listener.
func TestOpsMetrics(t *testing.T) {
	o := newSizedOrigin(t)
	site := fmt.Sprintf("log:\n  access: false\ncache:\n  disk:\n    enabled: false\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n", o.URL)
	path := writeConfig(t, site)
	l, out := startDaemon(t, "-config", path)
	metrics := func() string { _, m := fetch(t, "http://"+l.Admin+"/metrics"); return m }
	m := metrics()
	for _, s := range []string{`edged_config_reloads_total{result="ok"} 0`, `edged_config_reloads_total{result="error"} 0`, "edged_client_connections_open 0"} {
		if !strings.Contains(m, s) {
			t.Errorf("at start /metrics lacks %q", s)
		}
	}
	started := metricOr0(m, "edged_config_last_reload_success_timestamp_seconds")
	if now := float64(time.Now().Unix()); started < now-60 || started > now+1 {
		t.Errorf("last reload success %v, want about now (%v)", started, now)
	}

	// A good reload, then a bad one.
	time.Sleep(10 * time.Millisecond) // the timestamp must move on by a visible amount
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testkit.Eventually(t, 10*time.Second, func() bool {
		return metricOr0(metrics(), `edged_config_reloads_total{result="ok"}`) == 1
	}, "the reload to be counted")
	if got := metricOr0(metrics(), "edged_config_last_reload_success_timestamp_seconds"); got <= started {
		t.Errorf("last reload success %v, not after the start's %v", got, started)
	}
	os.WriteFile(path, []byte("sites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: ftp://nope\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testkit.Eventually(t, 10*time.Second, func() bool {
		return metricOr0(metrics(), `edged_config_reloads_total{result="error"}`) == 1
	}, "the rejected reload to be counted")
	if !strings.Contains(out.String(), "reload rejected") {
		t.Errorf("no rejection logged:\n%s", out)
	}

	// Open connections: six kept alive after a request each (idle, they
	// stay up to server.idle_timeout), then none.
	var trs []*http.Transport
	for i := range 6 {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		trs = append(trs, tr)
		req, _ := http.NewRequest("GET", "http://"+l.Edge+fmt.Sprintf("/obj/c%d-100", i), nil)
		req.Host = "cdn.example"
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // read to the end, or the client closes the connection
		resp.Body.Close()
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return metricOr0(metrics(), "edged_client_connections_open") == 6 },
		"6 open client connections")
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return metricOr0(metrics(), "edged_client_connections_open") == 0 },
		"no open client connections")
}
