package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// originTLSServer starts an https origin on 127.0.0.1:0 that answers
// uncacheable responses naming the SNI, protocol and client certificate it
// got.
func originTLSServer(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		client := ""
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "sni=%s proto=%s client=%s", r.TLS.ServerName, r.Proto, client)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// originTLSSite is a configuration with one site whose only origin is
// url, with the given upstream keys (already indented under upstream).
func originTLSSite(url, upstream string) string {
	return "log:\n  access: false\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: " + url +
		"\n    upstream:\n" + upstream
}

// Requests through edged reach https origins with a private CA, an SNI
// name that is not their address, mutual TLS and h2; a wrong CA or a
// refused version is a 502 with a log line saying why; and
// insecure_skip_verify works and is warned about at start and reload.
func TestOriginTLSThroughEdged(t *testing.T) {
	ca, otherCA, clientCA := testkit.NewCA(t, "origin-ca"), testkit.NewCA(t, "other-ca"), testkit.NewCA(t, "client-ca")
	server, client := ca.Issue(t, "origin.internal"), clientCA.Issue(t, "edge-1")
	mutual := &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()}
	tls12 := &tls.Config{Certificates: []tls.Certificate{server.TLS}, MaxVersion: tls.VersionTLS12}
	unknown := &tls.Config{Certificates: []tls.Certificate{otherCA.Issue(t, "whatever").TLS}}
	trust := fmt.Sprintf("      tls:\n        server_name: origin.internal\n        ca: %s\n", ca.File)
	withClient := trust + fmt.Sprintf("        client_cert: %s\n        client_key: %s\n", client.CertFile, client.KeyFile)

	for _, tc := range []struct {
		name     string
		origin   *tls.Config
		upstream string
		status   int
		body     string   // a substring of the response body
		logs     []string // substrings of the daemon's output
	}{
		{"private CA, server name, mTLS", mutual, withClient, 200, "sni=origin.internal proto=HTTP/1.1 client=edge-1", nil},
		{"the same over h2", mutual, "      protocol: h2\n" + withClient, 200, "sni=origin.internal proto=HTTP/2.0 client=edge-1", nil},
		{"wrong CA", mutual, fmt.Sprintf("      tls:\n        server_name: origin.internal\n        ca: %s\n", otherCA.File), 502, "",
			[]string{`"msg":"origin request failed"`, `server name \"origin.internal\"`, "certificate signed by unknown authority"}},
		{"min_version 1.3 against a TLS 1.2 origin", tls12, trust + "        min_version: \"1.3\"\n", 502, "",
			[]string{`"msg":"origin request failed"`, "protocol version"}},
		{"insecure_skip_verify", unknown, "      tls:\n        insecure_skip_verify: true\n", 200, "proto=HTTP/1.1",
			[]string{`"level":"WARN","msg":"origin TLS certificates are NOT verified`, `"key":"sites[0].upstream.tls.insecure_skip_verify"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := originTLSServer(t, tc.origin)
			l, out := startDaemon(t, "-config", writeConfig(t, originTLSSite(srv.URL, tc.upstream)))
			resp, body := fetchHost(t, "http://"+l.Edge+"/x", "cdn.example")
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("got %d %q, want %d with %q\n%s", resp.StatusCode, body, tc.status, tc.body, out.String())
			}
			for _, want := range tc.logs {
				if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(out.String(), want) }) {
					t.Errorf("the log does not say %s:\n%s", want, out.String())
				}
			}
		})
	}
}

// The insecure_skip_verify warning is logged again at each reload.
func TestInsecureSkipVerifyWarnsOnReload(t *testing.T) {
	srv := originTLSServer(t, &tls.Config{Certificates: []tls.Certificate{testkit.NewCA(t, "ca").Issue(t, "x").TLS}})
	path := writeConfig(t, originTLSSite(srv.URL, "      tls:\n        insecure_skip_verify: true\n"))
	_, out := startDaemon(t, "-config", path)
	warnings := func() int { return strings.Count(out.String(), "origin TLS certificates are NOT verified") }
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings at start, want 1:\n%s", n, out.String())
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if !testkit.Poll(10*time.Second, func() bool { return warnings() == 2 }) {
		t.Fatalf("no second warning after SIGHUP:\n%s", out.String())
	}
}

// -check-config accepts insecure_skip_verify with a warning.
func TestCheckConfigWarnsInsecureSkipVerify(t *testing.T) {
	file := writeConfig(t, originTLSSite("https://127.0.0.1:1", "      tls:\n        insecure_skip_verify: true\n"))
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-check-config", file}, &out, &out, nil); err != nil {
		t.Fatalf("-check-config: %v", err)
	}
	if want := file + ": warning: sites[0].upstream.tls.insecure_skip_verify: "; !strings.Contains(out.String(), want) {
		t.Errorf("-check-config said %q, want a line starting %q", out.String(), want)
	}
}

// -check-config, starting and reloading read the origin TLS files and
// report a bad one as FILE:LINE: key.path: message.
func TestCheckConfigOriginTLSFiles(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	leaf, other := ca.Issue(t, "edge"), ca.Issue(t, "other")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	upstream := func(kv ...string) string {
		s := "      tls:\n"
		for i := 0; i < len(kv); i += 2 {
			s += "        " + kv[i] + ": " + kv[i+1] + "\n"
		}
		return s
	}
	// Line 10 is the first key under tls, line 11 the second.
	for _, c := range []struct {
		name, upstream string
		want           string // "" means valid
	}{
		{"good files", upstream("ca", ca.File, "client_cert", leaf.CertFile, "client_key", leaf.KeyFile), ""},
		{"missing CA", upstream("ca", missing), ":10: sites[0].upstream.tls.ca: " + missing + ": cannot read: no such file or directory"},
		{"CA file without a certificate", upstream("ca", leaf.KeyFile), ":10: sites[0].upstream.tls.ca: " + leaf.KeyFile + ": no PEM certificate found"},
		{"missing client certificate", upstream("client_cert", missing, "client_key", leaf.KeyFile),
			":10: sites[0].upstream.tls.client_cert: " + missing + ": cannot read"},
		{"key of another certificate", upstream("client_cert", leaf.CertFile, "client_key", other.KeyFile),
			":11: sites[0].upstream.tls.client_key: " + other.KeyFile + ": not a key for " + leaf.CertFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeConfig(t, originTLSSite("https://127.0.0.1:1", c.upstream))
			checkConfigAt(t, file, c.want)
		})
	}
}
