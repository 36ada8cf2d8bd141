package edge

import (
	"net"
	"sync"
)

// handoff is the shared part of listeners that prepare each connection
// off the accept loop (a TLS handshake, a PROXY header read) and hand it to
// Accept when it is ready, so one slow peer holds up no other. Embed it and
// call fail when the inner listener's Accept fails and deliver with each
// prepared connection.
type handoff struct {
	inner net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error // the inner listener's, once it failed
}

func newHandoff(inner net.Listener) handoff {
	return handoff{inner: inner, conns: make(chan net.Conn), done: make(chan struct{})}
}

// fail records the inner listener's error, which Accept then returns, and
// closes the listener.
func (l *handoff) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	l.Close()
}

// deliver hands a prepared connection to Accept, or closes it if the
// listener is closed first.
func (l *handoff) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

func (l *handoff) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *handoff) Addr() net.Addr { return l.inner.Addr() }
