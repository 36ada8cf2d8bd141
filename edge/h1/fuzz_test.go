package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// memConn is an in-memory connection: it reads in, then EOF; it keeps what
// is written.
type memConn struct {
	in  []byte
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConn drives the loop with random request bytes and a handler that
// reads the body and echoes it: no panic, and every response written is
// well framed (http.ReadResponse reads each, body and all, to the end of
// the output).
func FuzzConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var methods []string // of the requests answered, in order (HEAD responses have no body)
		echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method)
			b, _ := io.ReadAll(r.Body)
			if len(b) > 100 {
				w.(http.Flusher).Flush() // and then a chunked (or close-delimited) body
			}
			w.Write(b)
			io.WriteString(w, r.Method+" "+r.RequestURI)
		})
		mc := &memConn{in: in}
		(&Server{Handler: echo}).serveConn(mc)
		br := bufio.NewReader(bytes.NewReader(mc.out.Bytes()))
		for i := 0; ; {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			req := &http.Request{Method: http.MethodGet} // a refusal answers no handler call
			if i < len(methods) {
				req.Method = methods[i]
			}
			resp, err := http.ReadResponse(br, req)
			if resp != nil && resp.StatusCode >= 200 {
				i++
			}
			if err != nil {
				t.Fatalf("unreadable response: %v\ninput %q\noutput %q", err, in, mc.out.Bytes())
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("badly framed body: %v\ninput %q\noutput %q", err, in, mc.out.Bytes())
			}
		}
	})
}
