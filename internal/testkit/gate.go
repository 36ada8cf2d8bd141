package testkit

import (
	"context"
	"sync"
	"testing"
)

// Gate holds whoever waits on it until it is opened, once. It opens itself
// when the test ends, so that no handler it holds outlives the test's
// servers (httptest.Server.Close waits for handlers). Its zero value is not
// usable; make one with NewGate.
type Gate struct {
	ch   chan struct{}
	once sync.Once
}

// NewGate returns a closed gate that t's cleanup opens. Create it after the
// servers whose handlers wait on it, so that its cleanup runs first.
func NewGate(t testing.TB) *Gate {
	g := &Gate{ch: make(chan struct{})}
	t.Cleanup(g.Open)
	return g
}

// Open lets every waiter through, now and later. Opening twice is harmless.
func (g *Gate) Open() { g.once.Do(func() { close(g.ch) }) }

// Opened returns a channel that is closed once the gate is open.
func (g *Gate) Opened() <-chan struct{} { return g.ch }

// Wait blocks until the gate opens or ctx ends, and reports whether the
// gate opened. A handler passes its request's context, so that a client or
// proxy that gives up is not held.
func (g *Gate) Wait(ctx context.Context) bool {
	select {
	case <-g.ch:
		return true
	default:
	}
	select {
	case <-g.ch:
		return true
	case <-ctx.Done():
		return false
	}
}
