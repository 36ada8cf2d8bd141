package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/purge"
	"github.com/edged-proxy/edged/purge/purgetest"
)

const testToken = "0123456789abcdef-test-token"

// postPurge sends a purge to the admin API and decodes the answer.
func postPurge(t *testing.T, admin, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+admin+"/purge", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func isHit(t *testing.T, edge, path string) bool {
	t.Helper()
	resp, _ := fetchHost(t, "http://"+edge+path, "cdn.example")
	return strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit")
}

func TestPurgeAPIAndDurabilityAcrossRestart(t *testing.T) {
	o := newSizedOrigin(t)
	data := t.TempDir()
	l, _, stop := runDaemon(t, "-origin", o.URL, "-data", data, "-purge-token", testToken)
	paths := []string{"/obj/a-1000", "/obj/b-2000", "/obj/c-3000"}
	for _, p := range paths {
		fetchHost(t, "http://"+l.Edge+p, "cdn.example")
	}
	for _, p := range paths { // the disk copies are written behind the response
		testkit.Eventually(t, 10*time.Second, func() bool { return isHit(t, l.Edge, p) }, p+" to become a hit")
	}
	if code, _ := postPurge(t, l.Admin, "", `{"urls":["http://cdn.example/obj/a-1000"]}`); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := postPurge(t, l.Admin, "wrong-token-wrong-token", `{"urls":["http://cdn.example/obj/a-1000"]}`); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := postPurge(t, l.Admin, testToken, `{"urls":["not a url"]}`); code != 400 {
		t.Errorf("bad selector: %d, want 400", code)
	}
	if !isHit(t, l.Edge, "/obj/a-1000") {
		t.Fatal("refused purges purged something")
	}
	code, out := postPurge(t, l.Admin, testToken, `{"urls":["http://cdn.example/obj/a-1000"],"prefixes":["cdn.example/obj/b"]}`)
	if code != 200 {
		t.Fatalf("purge: %d %v", code, out)
	}
	if m, _ := out["matched"].(map[string]any); m["urls"] != 1.0 || m["prefixes"] != 1.0 {
		t.Errorf("matched %v, want one URL and one prefix object", out["matched"])
	}
	stop()

	// A restart does not undo it.
	l, _, stop = runDaemon(t, "-origin", o.URL, "-data", data, "-purge-token", testToken)
	defer stop()
	for _, p := range paths[:2] {
		if isHit(t, l.Edge, p) {
			t.Errorf("%s is a hit after purge and restart", p)
		}
	}
	if !isHit(t, l.Edge, "/obj/c-3000") {
		t.Error("an object the purge did not name is gone")
	}
}

// A purge answered 200 survives a kill -9 right after the answer.
func TestPurgeSurvivesCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs edged as a subprocess")
	}
	o := newSizedOrigin(t)
	data := t.TempDir()
	cfg := writeConfig(t, "log:\n  access: false\ncache:\n"+alwaysAdmit)
	args := []string{"-config", cfg, "-origin", o.URL, "-data", data, "-purge-token", testToken}
	c := startChild(t, args...)
	fetchHost(t, "http://"+c.edge+"/obj/k-5000", "cdn.example")
	// Make sure the object is on disk: restart-proof before the purge.
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
	c = startChild(t, args...)
	if !isHit(t, c.edge, "/obj/k-5000") {
		t.Fatal("not stored before the purge")
	}
	if code, out := postPurge(t, c.admin, testToken, `{"tags":[],"hosts":["cdn.example"]}`); code != 200 {
		t.Fatalf("purge: %d %v", code, out)
	}
	c.cmd.Process.Kill() // SIGKILL right after the 200
	c.cmd.Wait()
	c = startChild(t, args...)
	defer func() { c.cmd.Process.Kill(); c.cmd.Wait() }()
	if isHit(t, c.edge, "/obj/k-5000") {
		t.Error("a purge answered 200 was undone by a crash")
	}
}

// Three nodes on one NATS JetStream server: a purge on one reaches the
// others, including a node that was down when it was issued.
func TestPurgeFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS server and three nodes")
	}
	ns := startNATS(t)
	o := newSizedOrigin(t)
	type node struct {
		l    listening
		stop func()
		args []string
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		cfg := writeConfig(t, fmt.Sprintf("log:\n  access: false\npurge:\n  node: n%d\n  nats:\n    url: %s\n", i, ns.ClientURL()))
		args := []string{"-config", cfg, "-origin", o.URL, "-data", t.TempDir(), "-purge-token", testToken}
		l, _, stop := runDaemon(t, args...)
		nodes[i] = &node{l: l, stop: stop, args: args}
	}
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for _, n := range nodes {
		for _, p := range []string{"/obj/x-100", "/obj/y-100"} {
			fetchHost(t, "http://"+n.l.Edge+p, "cdn.example")
			testkit.Eventually(t, 10*time.Second, func() bool { return isHit(t, n.l.Edge, p) }, p+" to become a hit")
		}
	}
	// Node 2 goes down; a purge is issued on node 0.
	nodes[2].stop()
	code, out := postPurge(t, nodes[0].l.Admin, testToken, `{"urls":["http://cdn.example/obj/x-100"]}`)
	if code != 200 {
		t.Fatalf("purge: %d %v", code, out)
	}
	if f, _ := out["fleet"].(map[string]any); f["state"] != "published" {
		t.Errorf("fleet state %v, want published", out["fleet"])
	}
	id, _ := out["id"].(string)
	waitGone := func(i int, path string) {
		t.Helper()
		// The fleet delivers in the background; the node exports no
		// event for it: poll. Generous: CI machines are shared.
		if !testkit.Poll(30*time.Second, func() bool { return !isHit(t, nodes[i].l.Edge, path) }) {
			req, _ := http.NewRequest("GET", "http://"+nodes[0].l.Admin+"/purge/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			var receipt []byte
			if resp, err := http.DefaultClient.Do(req); err == nil {
				receipt, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			t.Fatalf("%s still a hit on node %d; receipt: %s", path, i, receipt)
		}
	}
	waitGone(0, "/obj/x-100")
	waitGone(1, "/obj/x-100")
	// Node 2 comes back with the same name and data: it catches up.
	l, _, stop := runDaemon(t, nodes[2].args...)
	nodes[2].l, nodes[2].stop = l, stop
	waitGone(2, "/obj/x-100")
	for _, n := range nodes {
		if !isHit(t, n.l.Edge, "/obj/y-100") {
			t.Errorf("%s lost an object the purge did not name", n.l.Edge)
		}
	}
}

// startNATS runs a NATS server with JetStream on a loopback port until the
// test ends.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	return ns
}

func TestPurgeCLI(t *testing.T) {
	const allToken, siteToken = "secret-all-sites-0123456789", "secret-site-a-0123456789"
	rec := &purgetest.Recorder{}
	p, err := purge.New(purge.Config{
		Node: "node-1", Invalidator: rec, Logger: slog.New(slog.DiscardHandler),
		Tokens: []purge.Token{{Value: allToken, Name: "ops"}, {Value: siteToken, Name: "site-a", Sites: []string{"a.example"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	srv := httptest.NewServer(p)
	defer srv.Close()
	t.Setenv(purge.TokenEnv, "")

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := runPurgeCLI(args, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run("-admin", srv.URL, "-token", allToken, "--url", "https://a.example/x", "--url", "http://a.example/y",
		"--tag", "t1", "--prefix", "a.example/img/", "--host", "b.example", "--soft")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res purge.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.ID == "" || !res.Soft || res.Matched.URLs != 2 {
		t.Fatalf("stdout %q: %v", out, err)
	}
	want := purge.Selector{URLs: []string{"https://a.example/x", "http://a.example/y"}, Tags: []string{"t1"},
		Prefixes: []string{"a.example/img/"}, Hosts: []string{"b.example"}, Soft: true}
	if got := rec.Selectors(); len(got) != 1 || !equalSel(got[0], want) {
		t.Fatalf("invalidator got %+v", got)
	}

	// Receipt lookup, token from the environment, admin without scheme.
	t.Setenv(purge.TokenEnv, allToken)
	code, out, errs = run("-admin", strings.TrimPrefix(srv.URL, "http://"), "-receipt", res.ID)
	if code != 0 || !strings.Contains(out, `"origin": "node-1"`) {
		t.Fatalf("receipt: exit %d: %s %s", code, out, errs)
	}
	t.Setenv(purge.TokenEnv, "")

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"wrong token", []string{"-admin", srv.URL, "-token", "wrong", "--tag", "x"}, 1, "401 Unauthorized): invalid bearer token"},
		{"site-limited", []string{"-admin", srv.URL, "-token", siteToken, "--tag", "x"}, 1, "may not purge by tag"},
		{"unknown receipt", []string{"-admin", srv.URL, "-token", allToken, "-receipt", "abc"}, 1, "404"},
		{"unreachable", []string{"-admin", "http://127.0.0.1:1", "-token", allToken, "--tag", "x"}, 1, "edged purge:"},
		{"no selector", []string{"-admin", srv.URL, "-token", allToken}, 2, "empty selector"},
		{"no token", []string{"-admin", srv.URL, "--tag", "x"}, 2, "no token"},
		{"relative url", []string{"-admin", srv.URL, "-token", allToken, "--url", "/x"}, 2, "not an absolute"},
		{"unknown flag", []string{"-admin", srv.URL, "--nope"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"-token", allToken, "https://a.example/"}, 2, "unexpected argument"},
		{"bad admin", []string{"-admin", "ftp://x", "-token", allToken, "--tag", "x"}, 2, "-admin"},
		{"receipt and selector", []string{"-token", allToken, "-receipt", "abc", "--tag", "x"}, 2, "cannot be combined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(rec.Selectors())
			code, _, errs := run(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.msg)
			}
			if len(rec.Selectors()) != n {
				t.Fatal("purged")
			}
		})
	}
	if code, _, _ := run("-h"); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
}

func equalSel(a, b purge.Selector) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
