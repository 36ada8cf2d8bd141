package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for names and its key.
func selfSigned(t *testing.T, names ...string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, cert
}

// The quick-start TLS flags: HTTP/2 by ALPN, through the cache.
func TestTLSListenerServesHTTP2(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "secure "+r.Header.Get("X-Forwarded-Proto"))
	}))
	defer o.Close()
	certFile, keyFile, cert := selfSigned(t, "cdn.example")
	l, _ := startDaemon(t, "-origin", o.URL, "-tls-listen", "127.0.0.1:0", "-cert", certFile, "-key", keyFile)
	if l.TLS == "" {
		t.Fatal("no TLS listener")
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "cdn.example"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var statuses []string
	for range 2 {
		req, _ := http.NewRequest("GET", "https://"+l.TLS+"/s", nil)
		req.Host = "cdn.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != "secure https" {
			t.Fatalf("%s %q, want HTTP/2 and the origin told https", resp.Proto, b)
		}
		statuses = append(statuses, resp.Header.Get("Cache-Status"))
	}
	if !strings.Contains(statuses[0], "fwd=uri-miss") || !strings.HasPrefix(statuses[1], "edged; hit") {
		t.Errorf("Cache-Status %q", statuses)
	}
	// A bad certificate refuses to start, naming the file.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	err := run(t.Context(), []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-data", t.TempDir(), "-origin", o.URL,
		"-tls-listen", "127.0.0.1:0", "-cert", bad, "-key", keyFile}, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "bad.pem") {
		t.Errorf("bad certificate: %v", err)
	}
}

// A WebSocket through the daemon's edge listener (strict reader and all).
func TestWebSocketThroughDaemon(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	}))
	defer o.Close()
	l, _ := startDaemon(t, "-origin", o.URL)
	conn, err := net.Dial("tcp", l.Edge)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: cdn.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	// Bytes that would be refused as HTTP pass once the protocol switched.
	msg := "\x81\x05hello\r\nnot http at all\n"
	io.WriteString(conn, msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q %v", got, err)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	if !strings.Contains(metrics, "edged_websocket_connections_total 1") {
		t.Error("the WebSocket was not counted")
	}
}

// HTTP/1.1 over TLS goes through the strict reader too, and the handler
// still knows the request came over TLS.
func TestTLSHTTP1Strict(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "proto "+r.Header.Get("X-Forwarded-Proto"))
	}))
	defer o.Close()
	certFile, keyFile, cert := selfSigned(t, "cdn.example")
	l, _ := startDaemon(t, "-origin", o.URL, "-tls-listen", "127.0.0.1:0", "-cert", certFile, "-key", keyFile)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "cdn.example", NextProtos: []string{"http/1.1"}}

	c, err := tls.Dial("tcp", l.TLS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /p HTTP/1.1\r\nHost: cdn.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	c.Close()
	if resp.ProtoMajor != 1 || string(b) != "proto https" {
		t.Errorf("HTTP/1.1 over TLS: %s %q", resp.Proto, b)
	}

	c, err = tls.Dial("tcp", l.TLS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: cdn.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(raw), "HTTP/1.1 400 ") {
		t.Errorf("smuggling over TLS: %q", raw)
	}
}
