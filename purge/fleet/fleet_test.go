package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/purge"
	"github.com/edged-proxy/edged/purge/fleet"
	"github.com/edged-proxy/edged/purge/purgetest"
)

const allToken = "secret-all-sites-0123456789"

// startNATS runs a real NATS server with JetStream in-process.
func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, ServerName: "test-nats",
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	return s
}

type node struct {
	name string
	p    *purge.Purger
	rec  *purgetest.Recorder
	srv  *httptest.Server
}

func startNode(t *testing.T, name, url string) *node {
	t.Helper()
	rec := &purgetest.Recorder{}
	p, err := purge.New(purge.Config{
		Node:        name,
		Logger:      quietLogger(),
		Invalidator: rec,
		Tokens:      []purge.Token{{Value: allToken, Name: "ops"}},
		JoinFleet: fleet.Config{
			URL:            url,
			RetryInterval:  50 * time.Millisecond,
			PublishTimeout: time.Second,
			ConnectTimeout: time.Second,
		}.Join,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, p: p, rec: rec, srv: httptest.NewServer(p)}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.srv.Close()
	_ = n.p.Close()
}

func (n *node) purge(t *testing.T, body string) purge.Result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.srv.URL+"/purge", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+allToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res purge.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 {
		t.Fatalf("purge on %s: status %d, %v", n.name, resp.StatusCode, err)
	}
	return res
}

func (n *node) receipt(t *testing.T, id string) purge.Receipt {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.srv.URL+"/purge/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+allToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rc purge.Receipt
	if resp.StatusCode == 200 {
		_ = json.NewDecoder(resp.Body).Decode(&rc)
	}
	return rc
}

// eventually polls cond until it holds, failing the test after 20 s: the
// fleet's deliveries and NATS state have no event a test can wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, cond, what)
}

func nodesOf(rc purge.Receipt) string {
	var ns []string
	for _, n := range rc.Nodes {
		if !n.AppliedAt.IsZero() {
			ns = append(ns, n.Node)
		}
	}
	return strings.Join(ns, ",")
}

// settled reports whether every durable consumer has acked everything.
func settled(t *testing.T, url string, names ...string) bool {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		return false
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range names {
		c, err := js.Consumer(ctx, fleet.DefaultStream, n)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		if err != nil || ci.NumPending != 0 || ci.NumAckPending != 0 || ci.NumRedelivered != 0 {
			return false
		}
	}
	return true
}

func TestFleet(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	port := ns.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	defer func() { ns.Shutdown() }()

	a, b, c := startNode(t, "node-a", url), startNode(t, "node-b", url), startNode(t, "node-c", url)
	for _, n := range []*node{a, b, c} {
		eventually(t, n.name+" ready", n.p.Ready)
	}

	// 1. A purge on A is applied on A, B and C exactly once.
	const u1 = "https://a.example/one"
	r1 := a.purge(t, `{"urls":["`+u1+`"]}`)
	if r1.Fleet.State != purge.FleetPublished {
		t.Fatalf("fleet %+v", r1.Fleet)
	}
	eventually(t, "B and C apply purge 1", func() bool { return b.rec.Count(u1) == 1 && c.rec.Count(u1) == 1 })
	eventually(t, "consumers settle", func() bool { return settled(t, url, "node-a", "node-b", "node-c") })
	for _, n := range []*node{a, b, c} {
		if got := n.rec.Count(u1); got != 1 {
			t.Fatalf("%s applied purge 1 %d times", n.name, got)
		}
	}
	eventually(t, "receipt 1 on every node", func() bool {
		for _, n := range []*node{a, b, c} {
			if nodesOf(n.receipt(t, r1.ID)) != "node-a,node-b,node-c" {
				return false
			}
		}
		return true
	})
	if rc := b.receipt(t, r1.ID); rc.Origin != "node-a" || rc.Selector.URLs[0] != u1 || rc.AcceptedAt.IsZero() {
		t.Fatalf("receipt on B: %+v", rc)
	}

	// 2. C is down while a purge is issued; it applies it when it comes back.
	c.stop()
	const u2 = "https://a.example/two"
	r2 := a.purge(t, `{"urls":["`+u2+`"],"soft":true}`)
	eventually(t, "B applies purge 2", func() bool { return b.rec.Count(u2) == 1 })
	if c.rec.Count(u2) != 0 {
		t.Fatal("stopped node applied a purge")
	}
	c2 := startNode(t, "node-c", url)
	eventually(t, "restarted C applies purge 2", func() bool { return c2.rec.Count(u2) == 1 })
	if got := c2.rec.Selectors(); len(got) != 1 || !got[0].Soft {
		t.Fatalf("restarted C applied %+v, want only purge 2 (soft)", got)
	}
	eventually(t, "receipt 2 shows all three", func() bool { return nodesOf(a.receipt(t, r2.ID)) == "node-a,node-b,node-c" })

	// 3. NATS down: the purge still succeeds locally, pending for the fleet,
	// and is published when NATS is back.
	ns.Shutdown()
	ns.WaitForShutdown()
	eventually(t, "A notices NATS is gone", func() bool { return !a.p.Ready() })
	const u3 = "https://a.example/three"
	r3 := a.purge(t, `{"urls":["`+u3+`"]}`)
	if r3.Fleet.State != purge.FleetPending || r3.Fleet.Error == "" {
		t.Fatalf("fleet %+v, want pending", r3.Fleet)
	}
	if a.rec.Count(u3) != 1 || a.p.Pending() != 1 {
		t.Fatalf("local apply %d, pending %d", a.rec.Count(u3), a.p.Pending())
	}
	if rc := a.receipt(t, r3.ID); rc.Fleet.State != purge.FleetPending || nodesOf(rc) != "node-a" {
		t.Fatalf("receipt while NATS is down: %+v", rc)
	}
	ns = startNATS(t, port, dir)
	eventually(t, "pending purge published", func() bool { return a.p.Pending() == 0 })
	eventually(t, "B and C apply purge 3", func() bool { return b.rec.Count(u3) == 1 && c2.rec.Count(u3) == 1 })
	eventually(t, "receipt 3 published on all three", func() bool {
		rc := a.receipt(t, r3.ID)
		return rc.Fleet.State == purge.FleetPublished && nodesOf(rc) == "node-a,node-b,node-c"
	})
	eventually(t, "consumers settle again", func() bool { return settled(t, url, "node-a", "node-b", "node-c") })

	// Exactly once everywhere, after everything settled.
	for _, n := range []*node{a, b} {
		for _, u := range []string{u1, u2, u3} {
			if got := n.rec.Count(u); got != 1 {
				t.Errorf("%s applied %s %d times", n.name, u, got)
			}
		}
	}
	if c.rec.Count(u1) != 1 || c2.rec.Count(u1) != 0 || c2.rec.Count(u2) != 1 || c2.rec.Count(u3) != 1 {
		t.Errorf("C applied: before restart %+v, after %+v", c.rec.Selectors(), c2.rec.Selectors())
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// With NATS never reachable, purges are applied locally, queued up to
// MaxPending, then reported failed; Close reports what never left.
func TestFleetUnreachable(t *testing.T) {
	addr := testkit.RefusedAddr(t) // nothing listens there
	rec := &purgetest.Recorder{}
	p, err := purge.New(purge.Config{
		Node: "lonely", Invalidator: rec, Tokens: []purge.Token{{Value: allToken, Name: "ops"}}, Logger: quietLogger(),
		JoinFleet: fleet.Config{URL: "nats://" + addr, MaxPending: 1, RetryInterval: 20 * time.Millisecond}.Join,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	n := &node{name: "lonely", p: p, rec: rec, srv: srv}
	r1 := n.purge(t, `{"tags":["a"]}`)
	r2 := n.purge(t, `{"tags":["b"]}`)
	if r1.Fleet.State != purge.FleetPending || r2.Fleet.State != purge.FleetFailed || !strings.Contains(r2.Fleet.Error, "queue full") {
		t.Fatalf("fleet states %+v, %+v", r1.Fleet, r2.Fleet)
	}
	if len(rec.Selectors()) != 2 || p.Ready() {
		t.Fatalf("applied %d, ready %v", len(rec.Selectors()), p.Ready())
	}
	if rc := n.receipt(t, r1.ID); rc.ID != r1.ID || rc.Fleet.State != purge.FleetPending || !strings.Contains(rc.Fleet.Error, "fleet receipts unavailable") {
		t.Fatalf("receipt %+v", rc)
	}
	if err := p.Close(); err == nil || !strings.Contains(err.Error(), "1 pending purges") {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.Purge(context.Background(), purge.Selector{Tags: []string{"c"}}, "test"); err != purge.ErrClosed {
		t.Fatalf("Purge after Close: %v", err)
	}
}

func TestJoinConfigErrors(t *testing.T) {
	rec := &purgetest.Recorder{}
	tests := []struct {
		name string
		cfg  purge.Config
		msg  string
	}{
		{"fleet without node", purge.Config{Invalidator: rec, JoinFleet: fleet.Config{URL: "nats://127.0.0.1:1"}.Join}, "Node is required"},
		{"fleet without url", purge.Config{Invalidator: rec, Node: "n", JoinFleet: fleet.Config{}.Join}, "NATS.URL"},
		{"bad subject", purge.Config{Invalidator: rec, Node: "n", JoinFleet: fleet.Config{URL: "nats://127.0.0.1:1", Subject: "a.>"}.Join}, "Subject"},
		{"bad stream", purge.Config{Invalidator: rec, Node: "n", JoinFleet: fleet.Config{URL: "nats://127.0.0.1:1", Stream: "a.b"}.Join}, "NATS.Stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := purge.New(tc.cfg)
			if err == nil {
				p.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}
