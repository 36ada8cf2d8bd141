package strict_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// vecConn records how writes reach a real TCP connection: "w N" for a
// Write of N bytes, "v N+M" for one vectored write.
type vecConn struct {
	*net.TCPConn
	mu  sync.Mutex
	ops []string
}

func (c *vecConn) Write(p []byte) (int, error) {
	c.record(fmt.Sprintf("w %d", len(p)))
	return c.TCPConn.Write(p)
}

func (c *vecConn) WriteBuffers(b *net.Buffers) (int64, error) {
	op := "v "
	for i, p := range *b {
		if i > 0 {
			op += "+"
		}
		op += fmt.Sprint(len(p))
	}
	c.record(op)
	return b.WriteTo(c.TCPConn)
}

func (c *vecConn) record(op string) {
	c.mu.Lock()
	c.ops = append(c.ops, op)
	c.mu.Unlock()
}

func (c *vecConn) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ops)
}

// tcpPair returns the server side of a loopback TCP connection, wrapped
// by the strict reader over a vecConn, and a channel with everything the
// client side reads until the server closes.
func tcpPair(t *testing.T) (*strict.Conn, *vecConn, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return tcpPairOn(t, ln)
}

// tcpPairOn is tcpPair on a listener the caller keeps. A fuzz target that
// makes a connection per input shares one listener: the server side closes
// first, so each connection leaves a TIME_WAIT socket on the listener's
// port, and with a listener per input those sockets held one more port
// each until a 30,000-input run used up the ephemeral range and stalled.
func tcpPairOn(t *testing.T, ln net.Listener) (*strict.Conn, *vecConn, <-chan []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	vc := &vecConn{TCPConn: s.(*net.TCPConn)}
	sc := strict.WrapConn(vc, strict.Config{})
	t.Cleanup(func() { sc.Close() })
	return sc, vc, got
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func mustWrite(t *testing.T, c net.Conn, p []byte) {
	t.Helper()
	n, err := c.Write(p)
	if err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

func TestGather(t *testing.T) {
	head, body := pattern(strict.GatherMax, 'h'), pattern(1<<20, 'b')
	tests := []struct {
		name   string
		writes [][]byte
		end    bool // call EndGather after the writes (else Close drops a held write)
		want   []string
	}{
		{"head and body in one writev", [][]byte{head, body}, true, []string{"v 4096+1048576"}},
		{"short head alone is sent by EndGather", [][]byte{head[:300]}, true, []string{"w 300"}},
		{"Close drops a held write", [][]byte{head[:300]}, false, nil},
		{"a first write over GatherMax goes at once and disarms", [][]byte{body[:5000], head[:10]}, true, []string{"w 5000", "w 10"}},
		{"only the first two writes are joined", [][]byte{head[:100], body[:200], head[:30]}, true, []string{"v 100+200", "w 30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, vc, got := tcpPair(t)
			if !sc.Gather() {
				t.Fatal("Gather did not arm on a TCP connection")
			}
			var want []byte
			for i, p := range tt.writes {
				mustWrite(t, sc, p) // the count is p's, also for the write that carries the held bytes
				if i == 0 && len(p) <= strict.GatherMax && len(vc.seen()) != 0 {
					t.Fatalf("a held write reached the connection: %v", vc.seen())
				}
				want = append(want, p...)
			}
			if tt.want == nil {
				want = nil
			}
			if tt.end {
				if err := sc.EndGather(); err != nil {
					t.Fatal(err)
				}
			}
			if err := sc.Close(); err != nil {
				t.Fatal(err)
			}
			if ops := vc.seen(); !slices.Equal(ops, tt.want) {
				t.Errorf("writes = %v, want %v", ops, tt.want)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Errorf("peer read %d bytes, not the %d written in order", len(b), len(want))
			}
		})
	}
}

// A held write goes out before a ReadFrom's bytes (the sendfile path of
// disk hits).
func TestGatherThenReadFrom(t *testing.T) {
	sc, vc, got := tcpPair(t)
	body := pattern(64<<10, 'f')
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc.Gather()
	mustWrite(t, sc, []byte("head"))
	if n, err := sc.ReadFrom(f); err != nil || n != int64(len(body)) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	sc.Close()
	if ops := vc.seen(); len(ops) == 0 || ops[0] != "w 4" {
		t.Errorf("writes = %v, want the held head first", ops)
	}
	if b := <-got; !bytes.Equal(b, append([]byte("head"), body...)) {
		t.Errorf("peer read %d bytes, not head then body", len(b))
	}
}

// Over a connection that cannot take a vectored write (TLS, a pipe),
// Gather does not arm and writes pass straight through.
func TestGatherNeedsVectoredConn(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	sc := strict.WrapConn(a, strict.Config{})
	defer sc.Close()
	if sc.Gather() {
		t.Fatal("Gather armed over a net.Pipe")
	}
	done := make(chan []byte)
	go func() {
		p := make([]byte, 3)
		n, _ := io.ReadFull(b, p)
		done <- p[:n]
	}()
	mustWrite(t, sc, []byte("abc"))
	if p := <-done; string(p) != "abc" {
		t.Fatalf("peer read %q", p)
	}
}

// Close must not wait for a gathered write that is blocked on a peer that
// does not read (server shutdown closes connections from another
// goroutine).
func TestCloseDoesNotWaitForBlockedGather(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String()) // reads only the first bytes
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc := strict.WrapConn(s, strict.Config{})
	sc.Gather()
	mustWrite(t, sc, []byte("head"))
	wrote := make(chan error, 1)
	go func() {
		_, err := sc.Write(make([]byte, 64<<20)) // more than the socket buffers hold
		wrote <- err
	}()
	// The peer receiving the held head and the first body byte shows the
	// writev has begun; the rest cannot fit in the socket buffers, so the
	// write is now blocked on the peer.
	first := make([]byte, len("head")+1)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peer, first); err != nil || string(first) != "head\x00" {
		t.Fatalf("peer read %q, %v; want the head and the first body byte", first, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- sc.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the blocked gathered write")
	}
	if err := <-wrote; err == nil {
		t.Fatal("the blocked write succeeded after Close")
	}
}

// FuzzGather runs random sequences of Gather, writes, ReadFrom and
// EndGather over a real TCP connection: every write must report its own
// length, and the peer must receive every byte, in order.
func FuzzGather(f *testing.F) {
	f.Add([]byte{0, 1, 10, 1, 200})
	f.Add([]byte{0, 4, 3, 2, 0, 1, 255, 3, 9})
	f.Add([]byte{1, 0, 0, 1, 64, 1, 64, 1, 64, 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		sc, _, got := tcpPairOn(t, ln)
		var want []byte
		seq := byte(0)
		next := func(i *int) int {
			if *i+1 < len(ops) {
				*i++
				return int(ops[*i])
			}
			return 1
		}
		for i := 0; i < len(ops); i++ {
			switch ops[i] % 5 {
			case 0:
				sc.Gather()
			case 1, 4: // a write of up to 16 KiB, or a short one
				n := next(&i)
				if ops[i]%5 == 1 {
					n *= 64
				}
				seq++
				p := pattern(n, seq)
				mustWrite(t, sc, p)
				want = append(want, p...)
			case 2:
				if err := sc.EndGather(); err != nil {
					t.Fatal(err)
				}
			case 3:
				seq++
				p := pattern(next(&i)*32, seq)
				if n, err := sc.ReadFrom(struct{ io.Reader }{bytes.NewReader(p)}); err != nil || n != int64(len(p)) {
					t.Fatalf("ReadFrom = %d, %v", n, err)
				}
				want = append(want, p...)
			}
		}
		if err := sc.EndGather(); err != nil {
			t.Fatal(err)
		}
		sc.Close()
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("peer read %d bytes, want the %d written, in order", len(b), len(want))
		}
	})
}
