package edge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"

	"github.com/edged-proxy/edged/edge"
)

// realIPModes are the ways a client address reaches the edge in the
// hit-path benchmarks: the socket's, a PROXY v2 header per connection, or
// X-Forwarded-For from a trusted proxy (two hops).
var realIPModes = []struct {
	name    string
	proxy   bool
	trusted []string
	xff     string
}{
	{"peer", false, nil, ""},
	{"proxy-v2", true, nil, ""},
	{"xff-trusted", false, []string{"127.0.0.0/8", "10.0.0.0/8"}, "203.0.113.9, 10.1.2.3"},
}

// realIPClient is a keep-alive client whose connections start with a
// PROXY v2 header when proxy is set.
func realIPClient(b *testing.B, proxy bool) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	if proxy {
		hdr, err := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}).Format()
		if err != nil {
			b.Fatal(err)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				_, err = c.Write(hdr)
			}
			return c, err
		}
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func realIPEdge(b *testing.B, opts edgeOpts, origin string, proxy bool) string {
	if proxy {
		opts.listener = func(ln net.Listener) net.Listener {
			pln, err := edge.ListenProxyProtocol(ln, edge.ProxyProtocol{Mode: edge.ProxyProtocolRequired})
			if err != nil {
				b.Fatal(err)
			}
			return pln
		}
	}
	base, _, _ := buildEdge(b, opts, origin)
	return base
}

// BenchmarkHitLoopbackRealIP measures 1 KiB memory hits (the fast path
// on edged's loop) over keep-alive loopback connections with the cheapest
// client there is (rawClient, which allocates nothing), for each way of
// finding the client: the allocations are the server's.
func BenchmarkHitLoopbackRealIP(b *testing.B) {
	body := strings.Repeat("x", 1024)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	for _, m := range realIPModes {
		b.Run(m.name, func(b *testing.B) {
			base := realIPEdge(b, edgeOpts{trusted: m.trusted}, o.URL, m.proxy)
			addr := strings.TrimPrefix(base, "http://")
			var hdr []byte
			if m.proxy {
				var err error
				hdr, err = proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}).Format()
				if err != nil {
					b.Fatal(err)
				}
			}
			dial := func() *rawClient {
				rc := dialRaw(b, addr, "/hot")
				b.Cleanup(func() { rc.c.Close() })
				rc.req = []byte("GET /hot HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\n")
				if m.xff != "" {
					rc.req = append(rc.req, "X-Forwarded-For: "+m.xff+"\r\n"...)
				}
				rc.req = append(rc.req, "\r\n"...)
				if hdr != nil {
					rc.c.Write(hdr)
				}
				return rc
			}
			warm := dial()
			for i := 0; ; i++ { // until the fill is committed and hits are served
				if _, err := warm.get(); err != nil {
					b.Fatal(err)
				}
				if i > 2 {
					break
				}
			}
			b.ReportAllocs()
			b.SetBytes(1024)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rc := dial()
				for pb.Next() {
					if status, err := rc.get(); err != nil || status != 200 {
						b.Fatalf("%d %v", status, err)
					}
				}
			})
		})
	}
}

// BenchmarkDiskHit1MiBRealIP is BenchmarkDiskHit1MiB's sendfile case with
// and without PROXY protocol: the reader's connection must still reach
// the socket's sendfile.
func BenchmarkDiskHit1MiBRealIP(b *testing.B) {
	const size = 1 << 20
	body := strings.Repeat("y", size)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	for _, m := range realIPModes[:2] {
		b.Run(m.name, func(b *testing.B) {
			base := realIPEdge(b, edgeOpts{disk: true, maxObject: 64 << 10}, o.URL, m.proxy)
			benchGets(b, realIPClient(b, m.proxy), base+"/big", "", size)
		})
	}
}

// benchGets warms url until it is a hit, then GETs it in parallel.
func benchGets(b *testing.B, client *http.Client, url, xff string, size int64) {
	get := func() string {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "example.com"
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != size {
			b.Fatalf("read %d bytes", n)
		}
		return resp.Header.Get("Cache-Status")
	}
	for !strings.HasPrefix(get(), "edged; hit") { // wait for the fill to be committed
	}
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
}
