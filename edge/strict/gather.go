package strict

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// GatherMax is the largest write that Gather holds back: the size of the
// buffer net/http writes an HTTP/1 response through.
const GatherMax = 4 << 10

// BuffersWriter is a connection wrapper that can pass a vectored write on to
// the connection it wraps. The wrapped connection of a Conn must be a
// *net.TCPConn, a *net.UnixConn or a BuffersWriter for Gather to arm.
type BuffersWriter interface {
	WriteBuffers(b *net.Buffers) (int64, error)
}

// gatherer is the write side's gather state. A Conn holds at most one
// write back at a time.
type gatherer struct {
	mu    sync.Mutex
	armed bool    // the next short write is to be held
	held  *[]byte // the held write, from heldBufs
}

var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, GatherMax); return &b }}

// Gather makes the Conn hold its next write, if that write is at most
// GatherMax bytes, and send it together with the write after it in one
// vectored write (writev).
//
// It is for a large response body. net/http sends the response head and
// the start of the body as one buffer flush of 4 KiB and then the rest
// of the body as a second write; that split costs a fifth of the
// throughput of 1 MiB responses on loopback against a server that writes
// both in one call. Gather lets the two leave in one system call.
//
// Gather reports whether it armed: it does not when the wrapped connection
// cannot take a vectored write (TLS, for one) or validation is off. The
// caller must call EndGather once its writes are done, so that a held write
// never waits for a write that does not come; ReadFrom also sends a held
// write first, corked with the body that follows where the system has
// TCP_CORK. Close drops a held write: a connection closed in the middle of
// a response is cut anyway, and Close must not wait on a slow peer. Byte
// order on the wire never changes: only how many system calls and
// segments carry the bytes. Gather is for HTTP/1 only: on a connection
// that carries HTTP/2 frames the held write would be another stream's.
func (c *Conn) Gather() bool {
	if c.pass.Load() || !canWriteBuffers(c.Conn) {
		return false
	}
	c.g.mu.Lock()
	c.g.armed = true
	c.g.mu.Unlock()
	c.gathering.Store(true)
	return true
}

// readFromGathered is ReadFrom while Gather is armed or holding: the held
// write (net/http flushes the response head just before it hands a file
// body to ReadFrom) is sent with the TCP connection corked, and uncorked
// once r's bytes follow, so that head and body share segments as they do
// with a writev (sendfile cannot take the head with it). A 1 MiB disk hit
// was about a quarter faster on loopback corked than with the head in a
// segment of its own.
func (c *Conn) readFromGathered(r io.Reader) (int64, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil && setCork(rc, true) {
			defer setCork(rc, false)
		}
	}
	if err := c.EndGather(); err != nil {
		return 0, err
	}
	return c.readFrom(r)
}

// dropGathered discards a held write unless a write holds the gather
// lock (Close must not wait for a write blocked on a slow peer).
func (c *Conn) dropGathered() {
	if !c.gathering.Load() || !c.g.mu.TryLock() {
		return
	}
	defer c.g.mu.Unlock()
	c.g.armed = false
	c.gathering.Store(false)
	if hp := c.g.held; hp != nil {
		c.g.held = nil
		putHeld(hp)
	}
}

// EndGather sends a held write, if there is one, and disarms Gather.
func (c *Conn) EndGather() error {
	if !c.gathering.Load() {
		return nil
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.endGatherLocked()
}

func (c *Conn) endGatherLocked() error {
	c.g.armed = false
	c.gathering.Store(false)
	hp := c.g.held
	if hp == nil {
		return nil
	}
	c.g.held = nil
	_, err := c.Conn.Write(*hp)
	putHeld(hp)
	return err
}

// writeGathered is Write while Gather is armed or holding.
func (c *Conn) writeGathered(p []byte) (int, error) {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if c.g.held == nil {
		if !c.g.armed {
			return c.Conn.Write(p) // EndGather ran in between
		}
		c.g.armed = false
		if len(p) == 0 || len(p) > GatherMax {
			c.gathering.Store(false)
			return c.Conn.Write(p)
		}
		hp := heldBufs.Get().(*[]byte)
		*hp = append((*hp)[:0], p...)
		c.g.held = hp
		return len(p), nil
	}
	hp := c.g.held
	c.g.held = nil
	c.gathering.Store(false)
	bufs := net.Buffers{*hp, p}
	n, err := WriteBuffers(c.Conn, &bufs)
	n -= int64(len(*hp)) // p's share: the held bytes were counted when held
	putHeld(hp)
	return int(min(max(n, 0), int64(len(p)))), err
}

func putHeld(hp *[]byte) {
	*hp = (*hp)[:0]
	heldBufs.Put(hp)
}

// canWriteBuffers reports whether WriteBuffers reaches c with one vectored
// write.
func canWriteBuffers(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn, BuffersWriter:
		return true
	}
	return false
}

// WriteBuffers writes b to c: through c's WriteBuffers when c is a
// BuffersWriter, else with b.WriteTo (one writev on a *net.TCPConn, one
// Write per buffer on most other connections). It is for wrappers that
// implement BuffersWriter.
func WriteBuffers(c net.Conn, b *net.Buffers) (int64, error) {
	if w, ok := c.(BuffersWriter); ok {
		return w.WriteBuffers(b)
	}
	return b.WriteTo(c)
}

// Cork sets (on) or clears TCP_CORK on a TCP connection where the system
// has it, and reports whether it did: a server that writes a response
// head and then sends the body with sendfile corks around the two so they
// share segments.
func Cork(rc syscall.RawConn, on bool) bool { return setCork(rc, on) }
