package edge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge"
)

// wsOrigin switches to an echo protocol on a WebSocket upgrade, and records
// the Upgrade header of plain requests.
func wsOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w.Header().Set("X-Saw-Upgrade", r.Header.Get("Upgrade"))
			io.WriteString(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo
	})
}

func TestWebSocketProxied(t *testing.T) {
	o := wsOrigin(t)
	base, _ := newEdge(t, edgeOpts{}, o)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "test" || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"hello", "world"} {
		io.WriteString(conn, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo: %q %v", got, err)
		}
	}
}

// Upgrades other than WebSocket (h2c included) are never tunnelled: the
// Upgrade field does not reach the origin and the answer is a plain one.
func TestOtherUpgradesNotTunnelled(t *testing.T) {
	o := wsOrigin(t)
	base, _ := newEdge(t, edgeOpts{}, o)
	for _, up := range []string{"h2c", "foo/1"} {
		resp, body := get(t, base, "GET", "example.com", "/x-"+up, "Connection", "Upgrade, HTTP2-Settings", "Upgrade", up, "HTTP2-Settings", "AAMAAABkAAQAAP__")
		if resp.StatusCode != 200 || body != "plain" || resp.Header.Get("X-Saw-Upgrade") != "" {
			t.Errorf("Upgrade %s: %d %q, origin saw Upgrade %q", up, resp.StatusCode, body, resp.Header.Get("X-Saw-Upgrade"))
		}
	}
	// A WebSocket upgrade on a site that refuses them is a plain GET too.
	base2, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.NoWebSocket = true }}, o)
	resp, body := get(t, base2, "GET", "example.com", "/ws", "Connection", "Upgrade", "Upgrade", "websocket")
	if resp.StatusCode != 200 || body != "plain" {
		t.Errorf("refused WebSocket: %d %q", resp.StatusCode, body)
	}
}
