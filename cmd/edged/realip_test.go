package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/edged-proxy/edged/internal/testkit"
)

// The server keys reach the listeners and the handler: behind a PROXY
// protocol balancer, or an L7 proxy setting X-Forwarded-For, the client
// the header names is the one logged and appended for the origin, and a
// connection without the required header gets nothing.
func TestRealClientAddressThroughConfig(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "xff="+strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
	}))
	defer origin.Close()
	for _, tc := range []struct {
		name, server   string
		prefix, fields string
		wantBody       string
		wantClient     string
	}{
		{"PROXY v2 required", "proxy_protocol: required\n  trusted_proxies: [127.0.0.1/32]", "v2", "", "xff=203.0.113.9", "203.0.113.9"},
		{"PROXY v1 required, any peer", "proxy_protocol: required", "v1", "X-Forwarded-For: 1.2.3.4\r\n", "xff=1.2.3.4, 203.0.113.9", "203.0.113.9"},
		{"trusted X-Forwarded-For", "trusted_proxies: [127.0.0.0/8]", "", "X-Forwarded-For: 1.2.3.4, 203.0.113.9\r\n", "xff=1.2.3.4, 203.0.113.9, 127.0.0.1", "203.0.113.9"},
		{"trusted Forwarded", "trusted_proxies: [127.0.0.0/8]\n  client_ip_header: Forwarded", "", "Forwarded: for=\"[2001:db8::9]:1\"\r\n", "xff=127.0.0.1", "2001:db8::9"},
		{"untrusted X-Forwarded-For", "trusted_proxies: [10.0.0.0/8]", "", "X-Forwarded-For: 203.0.113.9\r\n", "xff=203.0.113.9, 127.0.0.1", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fmt.Sprintf("server:\n  %s\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins: [{url: %q}]\n", tc.server, origin.URL)
			path := filepath.Join(t.TempDir(), "edged.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			l, out := startDaemon(t, "-config", path)
			var prefix []byte
			if tc.prefix != "" {
				version := byte(1)
				if tc.prefix == "v2" {
					version = 2
				}
				h := proxyproto.HeaderProxyFromAddrs(version, &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80})
				var err error
				if prefix, err = h.Format(); err != nil {
					t.Fatal(err)
				}
			}
			c, err := net.Dial("tcp", l.Edge)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(append(prefix, "GET /x HTTP/1.1\r\nHost: a.example\r\n"+tc.fields+"\r\n"...))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != tc.wantBody {
				t.Errorf("origin saw %q, want %q", body, tc.wantBody)
			}
			testkit.Eventually(t, 5*time.Second, func() bool {
				return strings.Contains(out.String(), `"client":"`+tc.wantClient+`"`)
			}, "the access log naming client "+tc.wantClient)

			if tc.prefix != "" { // no header: closed unanswered
				c, err := net.Dial("tcp", l.Edge)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.Write([]byte("GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n"))
				if got, err := io.ReadAll(c); len(got) != 0 || err != nil {
					t.Errorf("without a header: got %q, %v; want the connection closed", got, err)
				}
			}
		})
	}
}
