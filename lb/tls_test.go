package lb_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

// Headers set by tlsOrigin.
const (
	hdrSNI    = "X-Got-SNI"
	hdrClient = "X-Got-Client-Cert" // the client certificate's common name, or ""
)

// tlsOrigin starts an https origin on 127.0.0.1:0 with the TLS
// configuration cfg (certificates, client auth, versions), reporting the
// SNI name and client certificate it got.
func tlsOrigin(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hdrSNI, r.TLS.ServerName)
		if len(r.TLS.PeerCertificates) > 0 {
			w.Header().Set(hdrClient, r.TLS.PeerCertificates[0].Subject.CommonName)
		}
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestOriginTLS sends one request to a real TLS origin whose certificate
// is signed by a private CA for a name that is not its address, under
// pool TLS settings that must and must not reach it.
func TestOriginTLS(t *testing.T) {
	ca, otherCA := testkit.NewCA(t, "origin-ca"), testkit.NewCA(t, "other-ca")
	clientCA := testkit.NewCA(t, "client-ca")
	serverCert := ca.Issue(t, "origin.internal")
	clientCert := clientCA.Issue(t, "edge-1")
	strangerCert := otherCA.Issue(t, "stranger")

	plain := &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}}
	mutual := &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()}
	// An origin naming other-ca as acceptable but verifying against
	// client-ca itself (as nginx does with ssl_trusted_certificate).
	namesOther := &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}, ClientAuth: tls.RequireAnyClientCert, ClientCAs: otherCA.Pool(),
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: clientCA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return err
		}}
	tls12 := &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}, MaxVersion: tls.VersionTLS12}
	selfSigned := &tls.Config{Certificates: []tls.Certificate{otherCA.Issue(t, "whatever").TLS}}

	for _, tc := range []struct {
		name     string
		origin   *tls.Config
		protocol string
		tls      lb.TLS
		wantErr  string // "" means success
		wantSNI  string
		wantCert string
		wantH2   bool
	}{
		{name: "private CA and server name", origin: plain, tls: lb.TLS{ServerName: "origin.internal", CAFile: ca.File},
			wantSNI: "origin.internal"},
		{name: "h2 offered by ALPN", origin: plain, protocol: "h2", tls: lb.TLS{ServerName: "origin.internal", CAFile: ca.File},
			wantSNI: "origin.internal", wantH2: true},
		{name: "no server name: the address is verified", origin: plain, tls: lb.TLS{CAFile: ca.File},
			wantErr: `server name "127.0.0.1"`},
		{name: "system roots do not know the private CA", origin: plain, tls: lb.TLS{ServerName: "origin.internal"},
			wantErr: "certificate signed by unknown authority"},
		{name: "wrong CA", origin: plain, tls: lb.TLS{ServerName: "origin.internal", CAFile: otherCA.File},
			wantErr: "certificate signed by unknown authority"},
		{name: "mTLS with the client certificate", origin: mutual,
			tls:     lb.TLS{ServerName: "origin.internal", CAFile: ca.File, CertFile: clientCert.CertFile, KeyFile: clientCert.KeyFile},
			wantSNI: "origin.internal", wantCert: "edge-1"},
		{name: "mTLS with h2", origin: mutual, protocol: "h2",
			tls:     lb.TLS{ServerName: "origin.internal", CAFile: ca.File, CertFile: clientCert.CertFile, KeyFile: clientCert.KeyFile},
			wantSNI: "origin.internal", wantCert: "edge-1", wantH2: true},
		{name: "mTLS: the certificate goes even when its CA is not named as acceptable", origin: namesOther,
			tls:     lb.TLS{ServerName: "origin.internal", CAFile: ca.File, CertFile: clientCert.CertFile, KeyFile: clientCert.KeyFile},
			wantSNI: "origin.internal", wantCert: "edge-1"},
		{name: "mTLS without a client certificate", origin: mutual, tls: lb.TLS{ServerName: "origin.internal", CAFile: ca.File},
			wantErr: "certificate required"},
		{name: "mTLS with a certificate the origin does not trust", origin: mutual,
			tls:     lb.TLS{ServerName: "origin.internal", CAFile: ca.File, CertFile: strangerCert.CertFile, KeyFile: strangerCert.KeyFile},
			wantErr: "remote error"},
		{name: "TLS 1.2 origin, default minimum", origin: tls12, tls: lb.TLS{ServerName: "origin.internal", CAFile: ca.File},
			wantSNI: "origin.internal"},
		{name: "TLS 1.2 origin, minimum 1.3", origin: tls12, tls: lb.TLS{ServerName: "origin.internal", CAFile: ca.File, MinVersion: tls.VersionTLS13},
			wantErr: "protocol version"},
		{name: "insecure_skip_verify accepts an unknown CA", origin: selfSigned, tls: lb.TLS{InsecureSkipVerify: true},
			wantSNI: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlsOrigin(t, tc.origin)
			p := newPool(t, lb.Config{Shards: []lb.Shard{{Name: "o", URL: srv.URL}}, Protocol: tc.protocol, TLS: tc.tls})
			resp, _, rt, err := send(t, p, newRequest(t, http.MethodGet, "https://site.example/x", nil), "")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if de, ok := errors.AsType[*lb.DialError](err); ok {
					t.Errorf("a handshake failure is a DialError (%v): the shard was reached and must not be failed over", de)
				}
				// In TLS 1.3 the origin refuses a client certificate
				// after the client's handshake is done: that alert
				// comes with the first read, not the handshake.
				if !strings.Contains(tc.name, "mTLS") && !strings.Contains(err.Error(), "TLS handshake with "+srv.Listener.Addr().String()) {
					t.Errorf("err = %v, want it to name the handshake and the address", err)
				}
				if rt.Shard != "o" {
					t.Errorf("route shard = %q, want o", rt.Shard)
				}
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			if got := resp.Header.Get(hdrSNI); got != tc.wantSNI {
				t.Errorf("origin got SNI %q, want %q", got, tc.wantSNI)
			}
			if got := resp.Header.Get(hdrClient); got != tc.wantCert {
				t.Errorf("origin got client certificate %q, want %q", got, tc.wantCert)
			}
			if got := resp.ProtoMajor == 2; got != tc.wantH2 {
				t.Errorf("response is %s, want HTTP/2 %v", resp.Proto, tc.wantH2)
			}
		})
	}
}

// TestTLSOverTLSClientConfig checks that TLS's fields are applied over a
// TLSClientConfig: the base's roots are replaced by CAFile, its server
// name by ServerName.
func TestTLSOverTLSClientConfig(t *testing.T) {
	ca, otherCA := testkit.NewCA(t, "origin-ca"), testkit.NewCA(t, "other-ca")
	srv := tlsOrigin(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "origin.internal").TLS}})
	base := &tls.Config{RootCAs: otherCA.Pool(), ServerName: "wrong.internal"}
	p := newPool(t, lb.Config{Shards: []lb.Shard{{URL: srv.URL}}, TLSClientConfig: base,
		TLS: lb.TLS{ServerName: "origin.internal", CAFile: ca.File}})
	if _, _, _, err := send(t, p, newRequest(t, http.MethodGet, "https://site.example/", nil), ""); err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if base.ServerName != "wrong.internal" || base.RootCAs == nil {
		t.Errorf("NewPool changed the caller's TLSClientConfig")
	}
}

// TestTLSFiles checks that NewPool and CheckTLS refuse unusable files,
// naming the field and the file at fault.
func TestTLSFiles(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	leaf, other := ca.Issue(t, "edge"), ca.Issue(t, "other")
	notPEM := testkit.WriteFile(t, "not.pem", []byte("hello\n"))
	badCert := testkit.WriteFile(t, "bad.pem", []byte("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"))
	keyOnly, err := os.ReadFile(leaf.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keyAsCA := testkit.WriteFile(t, "key-as-ca.pem", keyOnly)
	missing := t.TempDir() + "/missing.pem"

	for _, tc := range []struct {
		name      string
		tls       lb.TLS
		wantField string // "" means not a file error
		wantFile  string
		wantMsg   string
	}{
		{"CA file missing", lb.TLS{CAFile: missing}, "CAFile", missing, "cannot read"},
		{"CA file not PEM", lb.TLS{CAFile: notPEM}, "CAFile", notPEM, "no PEM certificate found"},
		{"CA file holds a key", lb.TLS{CAFile: keyAsCA}, "CAFile", keyAsCA, "no PEM certificate found"},
		{"CA certificate malformed", lb.TLS{CAFile: badCert}, "CAFile", badCert, "certificate 1"},
		{"client cert missing", lb.TLS{CertFile: missing, KeyFile: leaf.KeyFile}, "CertFile", missing, "cannot read"},
		{"client key missing", lb.TLS{CertFile: leaf.CertFile, KeyFile: missing}, "KeyFile", missing, "cannot read"},
		{"client cert is a key", lb.TLS{CertFile: leaf.KeyFile, KeyFile: leaf.KeyFile}, "CertFile", leaf.KeyFile, "no PEM certificate found"},
		{"client cert malformed", lb.TLS{CertFile: badCert, KeyFile: leaf.KeyFile}, "CertFile", badCert, "x509"},
		{"client key of another certificate", lb.TLS{CertFile: leaf.CertFile, KeyFile: other.KeyFile}, "KeyFile", other.KeyFile, "not a key for " + leaf.CertFile},
		{"cert without key", lb.TLS{CertFile: leaf.CertFile}, "", "", "set both or neither"},
		{"unknown version", lb.TLS{MinVersion: tls.VersionTLS10}, "", "", "MinVersion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := lb.CheckTLS(tc.tls)
			_, perr := lb.NewPool(lb.Config{Shards: []lb.Shard{{URL: "https://127.0.0.1:1"}}, TLS: tc.tls})
			if err == nil || perr == nil || err.Error() != perr.Error() {
				t.Fatalf("CheckTLS: %v; NewPool: %v; want the same error", err, perr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantMsg)
			}
			fe, ok := errors.AsType[*lb.TLSFileError](err)
			if tc.wantField == "" {
				if ok {
					t.Errorf("err = %#v, want no TLSFileError", fe)
				}
				return
			}
			if !ok || fe.Field != tc.wantField || fe.File != tc.wantFile {
				t.Errorf("err = %#v, want a TLSFileError for %s %s", err, tc.wantField, tc.wantFile)
			}
		})
	}
	if err := lb.CheckTLS(lb.TLS{CAFile: ca.File, CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}); err != nil {
		t.Errorf("CheckTLS of good files: %v", err)
	}
}

// A shard whose certificate fails verification (here: another CA's, as
// after a botched renewal) is not failed over within the request, but
// counts as failing for outlier ejection: after ConsecutiveFailures its
// keys go to the healthy shard.
func TestBadCertificateShardEjected(t *testing.T) {
	ca, otherCA := testkit.NewCA(t, "origin-ca"), testkit.NewCA(t, "other-ca")
	good := tlsOrigin(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "origin.internal").TLS}})
	bad := tlsOrigin(t, &tls.Config{Certificates: []tls.Certificate{otherCA.Issue(t, "origin.internal").TLS}})
	p := newPool(t, lb.Config{
		Name:    "site",
		Shards:  []lb.Shard{{Name: "good", URL: good.URL}, {Name: "bad", URL: bad.URL}},
		TLS:     lb.TLS{ServerName: "origin.internal", CAFile: ca.File},
		Outlier: lb.Outlier{ConsecutiveFailures: 2},
		Now:     newFakeClock().Now,
	})
	key := keyOwnedBy(t, p, "bad")
	for i := range 2 {
		_, _, rt, err := send(t, p, newRequest(t, http.MethodGet, "https://site.example/", nil), key)
		if err == nil || rt.Shard != "bad" || rt.Attempts != 1 {
			t.Fatalf("request %d: route %+v, err %v; want an error from bad alone", i, rt, err)
		}
	}
	if shard, code := answer(t, p, key); shard != "good" || code != 200 {
		t.Fatalf("after ejection: %s answered %d, want good with 200", shard, code)
	}
}
