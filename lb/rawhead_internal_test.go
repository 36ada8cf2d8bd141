package lb

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"testing"
)

// followAll feeds stream to a fresh rawHeadConn after a write, in chunks of
// size chunk, and returns its note.
func followAll(stream []byte, chunk int) rawHead {
	c := &rawHeadConn{limit: 64 << 10, reading: true}
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		c.follow(stream[:n])
		stream = stream[n:]
	}
	return c.head()
}

func TestRawHeadFollow(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   rawHead
	}{
		{"final head", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\n\r\nbody", rawHead{ok: true, status: 200, pragma: true}},
		{"Cache-Control any case", "HTTP/1.1 404 Nope\r\ncAcHe-CoNtRoL: x\r\n\r\n", rawHead{ok: true, status: 404, cacheControl: true}},
		{"interim heads skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nCache-Control: x\r\n\r\nHTTP/1.1 200 OK\r\nPragma: a\r\n\r\n", rawHead{ok: true, status: 200, pragma: true}},
		{"101 is final", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n\x00\x01", rawHead{ok: true, status: 101}},
		{"continuation line is not a field", "HTTP/1.1 200 OK\r\nX: a\r\n Cache-Control: b\r\n\r\n", rawHead{ok: true, status: 200}},
		{"body after the head is not read", "HTTP/1.1 200 OK\r\n\r\nCache-Control: x\r\n\r\n", rawHead{ok: true, status: 200}},
		{"bare LF", "HTTP/1.0 304 Not Modified\nCache-Control: x\n\n", rawHead{ok: true, status: 304, cacheControl: true}},
		{"not a status line", "HTTX/1.1 200 OK\r\n\r\n", rawHead{}},
		{"short status", "HTTP/1.1 20\r\n\r\n", rawHead{}},
		{"incomplete head", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\n", rawHead{}},
	}
	for _, tc := range tests {
		for _, chunk := range []int{1, 3, 1 << 20} {
			if got := followAll([]byte(tc.stream), chunk); got != tc.want {
				t.Errorf("%s (chunks of %d): %+v, want %+v", tc.name, chunk, got, tc.want)
			}
		}
	}
}

// TestRawHeadWriteStartsOver checks that a write forgets the last head and
// that a head longer than the limit is given up.
func TestRawHeadWriteStartsOver(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := newRawHeadConn(a, 64)
	go func() {
		buf := make([]byte, 100)
		b.Read(buf)
		b.Write([]byte("HTTP/1.1 200 OK\r\nPragma: no-cache\r\n\r\n"))
	}()
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	if h := c.head(); !h.ok || !h.pragma || n == 0 {
		t.Fatalf("after the head: %+v", h)
	}
	go b.Read(buf)
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if h := c.head(); h.ok {
		t.Errorf("after a write: %+v, want nothing", h)
	}
	c.follow(bytes.Repeat([]byte("x"), 100))
	if c.reading || c.buf != nil {
		t.Errorf("a head over the limit is still followed (%d bytes)", len(c.buf))
	}
}

// FuzzRawHead holds the follower to net/http's reading of the same bytes:
// for every stream the transport would accept (after skipping interim
// responses as it does), the note has the same status and Pragma presence,
// and says Cache-Control was absent only where net/http's header has none
// or has exactly the one it invents.
func FuzzRawHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nCache-Control: x\r\n\r\nHTTP/1.1 200 OK\nPragma: no-cache\n\n",
		"HTTP/1.0 500 x\r\nX: a\r\n  b\r\ncache-control : x\r\n\r\n",
	} {
		f.Add([]byte(s), 7)
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk < 1 {
			chunk = 1
		}
		got := followAll(stream, chunk)
		br := bufio.NewReader(bytes.NewReader(stream))
		var resp *http.Response
		for {
			r, err := http.ReadResponse(br, nil)
			if err != nil {
				return // the transport would fail it: nothing to compare
			}
			if r.StatusCode < 100 || r.StatusCode > 199 || r.StatusCode == http.StatusSwitchingProtocols {
				resp = r
				break
			}
		}
		if !got.ok || got.status != resp.StatusCode {
			t.Fatalf("note %+v, net/http read status %d", got, resp.StatusCode)
		}
		_, pragma := resp.Header["Pragma"]
		cc, hasCC := resp.Header["Cache-Control"]
		invented := len(cc) == 1 && cc[0] == "no-cache" && pragma && resp.Header["Pragma"][0] == "no-cache"
		if got.pragma != pragma || got.cacheControl && !hasCC || !got.cacheControl && hasCC && !invented {
			t.Fatalf("note %+v, net/http read Pragma %q Cache-Control %q", got, resp.Header["Pragma"], cc)
		}
	})
}
