package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// closedPort returns a loopback address that refuses connections for the
// rest of the test (testkit.RefusedAddr: held, so a backend started next
// cannot be given it).
func closedPort(t *testing.T) string {
	t.Helper()
	return testkit.RefusedAddr(t)
}

func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

// get sends one request on a new connection through the balancer.
func get(t *testing.T, addr string) (string, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestBalancerSpreadsAndSkipsDown sends new connections through a balancer
// with two live backends and one closed port: every request succeeds, both
// live backends serve, and the closed port is marked down after its first
// failed connect and not dialled again while down.
func TestBalancerSpreadsAndSkipsDown(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	dead := closedPort(t)
	lb, err := newBalancer([]string{a.Listener.Addr().String(), dead, b.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	var deadDials int
	dial := lb.dial
	lb.mu.Lock()
	lb.dial = func(addr string) (net.Conn, error) {
		if addr == dead {
			lb.mu.Lock()
			deadDials++
			lb.mu.Unlock()
		}
		return dial(addr)
	}
	lb.mu.Unlock()
	got := map[string]int{}
	for range 60 {
		body, err := get(t, lb.Addr())
		if err != nil {
			t.Fatalf("request through the balancer: %v", err)
		}
		got[body]++
	}
	if got["a"] == 0 || got["b"] == 0 || got["a"]+got["b"] != 60 {
		t.Errorf("backends served %v, want both of 60", got)
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if deadDials != 1 {
		t.Errorf("closed port dialled %d times in 2s, want once (then marked down)", deadDials)
	}
	if !lb.downUntil[dead].After(time.Now()) {
		t.Errorf("closed port not marked down")
	}
}

// TestBalancerPick pins the choice with a fake clock and rand: down
// backends are skipped until their time is up, and tried only when no other
// is left.
func TestBalancerPick(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &balancer{
		backends:  []string{"x", "y", "z"},
		downFor:   2 * time.Second,
		now:       func() time.Time { return now },
		intn:      func(n int) int { return 0 },
		downUntil: map[string]time.Time{},
	}
	b.markDown("x")
	if got := b.pick(nil); got != "y" {
		t.Errorf("pick with x down = %q, want y", got)
	}
	if got := b.pick(map[string]bool{"y": true, "z": true}); got != "x" {
		t.Errorf("pick with y, z tried = %q, want x (down, but the last left)", got)
	}
	if got := b.pick(map[string]bool{"x": true, "y": true, "z": true}); got != "" {
		t.Errorf("pick with all tried = %q, want none", got)
	}
	now = now.Add(2 * time.Second)
	if got := b.pick(nil); got != "x" {
		t.Errorf("pick after 2s = %q, want x back", got)
	}
}

// TestBalancerAllDown closes the client's connection when no backend
// answers, and Close ends proxied connections.
func TestBalancerAllDown(t *testing.T) {
	lb, err := newBalancer([]string{closedPort(t), closedPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, lb.Addr()); err == nil {
		t.Error("request with every backend down succeeded")
	}
	if err := lb.Close(); err != nil {
		t.Error(err)
	}
	if _, err := newBalancer(nil); err == nil {
		t.Error("balancer without backends accepted")
	}
}

// TestBalancerCloseEndsConnections checks that Close ends a proxied
// connection that is still open.
func TestBalancerCloseEndsConnections(t *testing.T) {
	a := backend(t, "a")
	lb, err := newBalancer([]string{a.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", lb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 512)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if n := lb.openTo(a.Listener.Addr().String()); n != 1 {
		t.Errorf("openTo = %d with one connection proxied, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- lb.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("connection not closed by Close: %v", err)
	}
}
