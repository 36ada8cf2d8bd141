package testkit

import (
	"bytes"
	"io"
	"net"
	"time"
)

// Conn is an in-memory net.Conn for driving a connection handler without
// sockets: Read returns In, at most Step bytes a call (0: as much as fits),
// then io.EOF; Write appends to Out. Deadlines are accepted and ignored.
type Conn struct {
	In   []byte
	Step int
	Out  bytes.Buffer
}

var _ net.Conn = (*Conn)(nil)

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.In) == 0 {
		return 0, io.EOF
	}
	if c.Step > 0 && len(p) > c.Step {
		p = p[:c.Step]
	}
	n := copy(p, c.In)
	c.In = c.In[n:]
	return n, nil
}

func (c *Conn) Write(p []byte) (int, error)      { return c.Out.Write(p) }
func (c *Conn) Close() error                     { return nil }
func (c *Conn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *Conn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *Conn) SetDeadline(time.Time) error      { return nil }
func (c *Conn) SetReadDeadline(time.Time) error  { return nil }
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
