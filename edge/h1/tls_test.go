package h1_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edged-proxy/edged/edge/h1"
)

// On a TLS connection the handler sees Request.TLS, as under net/http.
func TestTLSConnectionState(t *testing.T) {
	cert := httptest.NewUnstartedServer(nil) // borrow httptest's certificate
	cert.StartTLS()
	cfg := cert.TLS.Clone()
	client := cert.Client()
	cert.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			http.Error(w, "no TLS state", 500)
			return
		}
		io.WriteString(w, tls.VersionName(r.TLS.Version))
	})}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { ln.Close() })
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(b) == 0 {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}
