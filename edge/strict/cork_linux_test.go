package strict_test

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
)

// corkProbe is a body reader that records whether the server socket is
// corked while its bytes are read for sending.
type corkProbe struct {
	r      io.Reader
	tc     *net.TCPConn
	corked []int
}

func (p *corkProbe) Read(b []byte) (int, error) {
	p.corked = append(p.corked, cork(p.tc))
	return p.r.Read(b)
}

func cork(tc *net.TCPConn) int {
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1
	}
	v := -1
	rc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
	return v
}

// A held head goes out corked with a ReadFrom body, so the two share
// segments as a writev would; the cork is off again afterwards.
func TestGatherCorksReadFromBody(t *testing.T) {
	sc, vc, got := tcpPair(t)
	body := pattern(64<<10, 'c')
	probe := &corkProbe{r: bytes.NewReader(body), tc: vc.TCPConn}
	if cork(vc.TCPConn) != 0 {
		t.Fatal("socket corked before the test")
	}
	sc.Gather()
	mustWrite(t, sc, []byte("head"))
	// io.Reader that is not a file: the TCP connection copies it with
	// Read calls, so the probe sees the socket state during the body.
	if n, err := sc.ReadFrom(struct{ io.Reader }{probe}); err != nil || n != int64(len(body)) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if len(probe.corked) == 0 || probe.corked[0] != 1 {
		t.Errorf("TCP_CORK while the body was read: %v, want 1", probe.corked)
	}
	if c := cork(vc.TCPConn); c != 0 {
		t.Errorf("TCP_CORK after ReadFrom = %d, want 0", c)
	}
	sc.Close()
	if b := <-got; !bytes.Equal(b, append([]byte("head"), body...)) {
		t.Errorf("peer read %d bytes, not head then body", len(b))
	}
}

// Without Gather, ReadFrom does not touch the cork.
func TestReadFromWithoutGatherDoesNotCork(t *testing.T) {
	sc, vc, got := tcpPair(t)
	probe := &corkProbe{r: bytes.NewReader(pattern(1000, 'n')), tc: vc.TCPConn}
	if _, err := sc.ReadFrom(struct{ io.Reader }{probe}); err != nil {
		t.Fatal(err)
	}
	if len(probe.corked) == 0 || probe.corked[0] != 0 {
		t.Errorf("TCP_CORK while the body was read: %v, want 0", probe.corked)
	}
	sc.Close()
	<-got
}
