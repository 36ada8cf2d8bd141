package edge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawOrigin answers every connection with the bytes script returns for the
// request line it read: for origins that break HTTP on purpose.
func rawOrigin(t *testing.T, script func(reqLine string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				line, _ := br.ReadString('\n')
				for { // the rest of the request head
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				io.WriteString(c, script(line))
				// Not a wait: the origin lingers before it closes, so the
				// close does not race the scripted bytes.
				time.Sleep(50 * time.Millisecond)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestMisbehavingOrigins(t *testing.T) {
	tests := []struct {
		name     string
		response string
		want     int    // status the client gets
		wantBody string // when 200
	}{
		{"a few 1xx", strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 50) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok", 200, "ok"},
		// A storm past the response-header budget (64 KiB, 1xx included).
		{"1xx storm", strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 5000) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"body longer than Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nhello, and more", 200, "hello"},
		{"endless header", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", 502, ""},
		{"garbage status line", "HTTP/1.1 OK maybe\r\n\r\n", 502, ""},
		{"closed before any byte", "", 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawOrigin(t, func(string) string { return tt.response })
			base, _, _ := buildEdge(t, edgeOpts{}, url)
			done := make(chan struct{})
			go func() {
				defer close(done)
				resp, body := get(t, base, "GET", "example.com", "/m")
				if resp.StatusCode != tt.want || (tt.want == 200 && body != tt.wantBody) {
					t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.want, tt.wantBody)
				}
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the client hung")
			}
		})
	}
}

// A short body (fewer bytes than Content-Length, then the origin closes)
// reaches no client as a complete response and is not stored.
func TestShortBodyNotStored(t *testing.T) {
	url := rawOrigin(t, func(string) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nonly this"
	})
	base, _, _ := buildEdge(t, edgeOpts{}, url)
	for range 2 {
		req, _ := http.NewRequest("GET", base+"/short", nil)
		req.Host = "example.com"
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 {
			t.Fatalf("a %d-byte body was presented as complete", len(b))
		}
		if strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
			t.Fatal("the short body was stored")
		}
	}
}
