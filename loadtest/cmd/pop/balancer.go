package main

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// balancer is the L4 balancer a PoP sits behind, reduced to what the
// scenarios need: a TCP proxy that sends each new client connection to a
// uniformly random live backend. A backend it cannot connect to is marked
// down for downFor, as a balancer's health check would take it out, and the
// connection tries another; it is closed only when every backend failed.
type balancer struct {
	ln       net.Listener
	backends []string
	downFor  time.Duration
	dial     func(addr string) (net.Conn, error)
	now      func() time.Time
	intn     func(n int) int

	mu        sync.Mutex
	downUntil map[string]time.Time
	conns     map[net.Conn]struct{}
	open      map[string]int // proxied connections per backend
	closed    bool
	wg        sync.WaitGroup
}

// newBalancer listens on a loopback port and proxies to backends (host:port
// each) until Close.
func newBalancer(backends []string) (*balancer, error) {
	if len(backends) == 0 {
		return nil, errors.New("balancer: no backends")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &balancer{
		ln:        ln,
		backends:  backends,
		downFor:   2 * time.Second,
		dial:      func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) },
		now:       time.Now,
		intn:      rand.IntN,
		downUntil: map[string]time.Time{},
		conns:     map[net.Conn]struct{}{},
		open:      map[string]int{},
	}
	b.wg.Go(b.serve)
	return b, nil
}

// Addr is the host:port clients connect to.
func (b *balancer) Addr() string { return b.ln.Addr().String() }

// Close stops accepting, closes every proxied connection and waits for
// their goroutines.
func (b *balancer) Close() error {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	err := b.ln.Close()
	b.wg.Wait()
	return err
}

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if !b.track(c) {
			c.Close()
			return
		}
		b.wg.Go(func() { b.proxy(c) })
	}
}

// track registers c so that Close can end it; false once closed.
func (b *balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *balancer) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// pick returns a random backend not in tried, preferring those not marked
// down; "" when all were tried.
func (b *balancer) pick(tried map[string]bool) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var up, down []string
	for _, a := range b.backends {
		switch {
		case tried[a]:
		case now.Before(b.downUntil[a]):
			down = append(down, a)
		default:
			up = append(up, a)
		}
	}
	if len(up) == 0 {
		up = down // all left are down: try them rather than refuse
	}
	if len(up) == 0 {
		return ""
	}
	return up[b.intn(len(up))]
}

func (b *balancer) markDown(addr string) {
	b.mu.Lock()
	b.downUntil[addr] = b.now().Add(b.downFor)
	b.mu.Unlock()
}

// openTo is the number of proxied connections to backend addr now.
func (b *balancer) openTo(addr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open[addr]
}

// connect dials backends in random order until one answers, and returns
// the connection and the backend's address.
func (b *balancer) connect() (net.Conn, string, error) {
	tried := map[string]bool{}
	for {
		a := b.pick(tried)
		if a == "" {
			return nil, "", errors.New("balancer: no backend reachable")
		}
		tried[a] = true
		s, err := b.dial(a)
		if err == nil {
			return s, a, nil
		}
		b.markDown(a)
	}
}

// proxy copies both ways between client c and a backend and closes both
// when either side ends.
func (b *balancer) proxy(c net.Conn) {
	defer b.untrack(c)
	defer c.Close()
	s, addr, err := b.connect()
	if err != nil {
		return
	}
	if !b.track(s) {
		s.Close()
		return
	}
	b.mu.Lock()
	b.open[addr]++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.open[addr]--
		b.mu.Unlock()
	}()
	defer b.untrack(s)
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}
