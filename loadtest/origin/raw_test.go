package origin_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/edged-proxy/edged/loadtest/origin"
)

func startRaw(t *testing.T, body []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := origin.NewRawServer(body)
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// The raw loop speaks enough HTTP/1.1 for wrk and Go's client: keep-alive
// responses with the whole body, one connection for many requests.
func TestRawServerKeepAlive(t *testing.T) {
	body := origin.Expected("raw", 5000)
	addr := startRaw(t, body)
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := range 3 {
		resp, err := client.Get("http://" + addr + "/anything")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("request %d: status %d, %d bytes, %v", i, resp.StatusCode, len(got), err)
		}
		if resp.Header.Get("Date") == "" || len(resp.Header) != 10 {
			t.Errorf("request %d: header %v, want ten fields with a Date", i, resp.Header)
		}
		if resp.Close {
			t.Errorf("request %d: connection not kept alive", i)
		}
	}
}

// HTTP/1.0 and "Connection: close" get their response, then EOF.
func TestRawServerCloses(t *testing.T) {
	addr := startRaw(t, []byte("hello"))
	for _, req := range []string{
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		got, _ := io.ReadAll(resp.Body)
		c.Close()
		if string(got) != "hello" || !resp.Close {
			t.Errorf("%q: body %q, close %v", req, got, resp.Close)
		}
	}
}

// A request head over the limit gets no response: the connection closes.
func TestRawServerHeadLimit(t *testing.T) {
	addr := startRaw(t, []byte("x"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nX: "+string(bytes.Repeat([]byte("a"), 9000))+"\r\n\r\n")
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Errorf("got %d bytes for an oversized head, want none", n)
	}
}
