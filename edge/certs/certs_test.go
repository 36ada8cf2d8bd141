package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edged-proxy/edged/internal/testkit"
)

// ---- certificate helpers ----

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func randSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(t),
		Subject:               pkix.Name{CommonName: "edged test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

type leaf struct {
	certPEM, keyPEM []byte
	serial          *big.Int
	notAfter        time.Time
}

// leaf issues a certificate for the DNS names (or, with cn set and no names,
// for that common name only) valid until notAfter.
func (ca *testCA) leaf(t *testing.T, notAfter time.Time, cn string, names ...string) leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return leaf{
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		serial:   tmpl.SerialNumber,
		notAfter: notAfter.Truncate(time.Second),
	}
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pairFor writes l as dir/base.crt and dir/base.key.
func pairFor(t *testing.T, dir, base string, l leaf) Pair {
	t.Helper()
	p := Pair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	writePair(t, p, l)
	return p
}

func writePair(t *testing.T, p Pair, l leaf) {
	t.Helper()
	writeFile(t, p.CertFile, l.certPEM)
	writeFile(t, p.KeyFile, l.keyPEM)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

func farFuture() time.Time { return time.Now().Add(12 * time.Hour) }

// ---- server and client helpers ----

// serve runs a TLS server on 127.0.0.1:0 that completes the handshake,
// writes one byte and waits for the client to close.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				if _, err := c.Write([]byte{1}); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// handshake connects, reads the server's byte (which also processes any
// TLS 1.3 session tickets) and returns the connection state.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return tls.ConnectionState{}, err
	}
	return c.(*tls.Conn).ConnectionState(), nil
}

func servedSerial(t *testing.T, addr string, cfg *tls.Config) *big.Int {
	t.Helper()
	st, err := handshake(addr, cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return st.PeerCertificates[0].SerialNumber
}

func clientFor(ca *testCA, serverName string) *tls.Config {
	if serverName == "" {
		return &tls.Config{InsecureSkipVerify: true}
	}
	return &tls.Config{RootCAs: ca.pool, ServerName: serverName}
}

// ---- tests ----

func TestSNISelection(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	exact := ca.leaf(t, farFuture(), "", "a.example.com")
	wild := ca.leaf(t, farFuture(), "", "*.example.com")
	def := ca.leaf(t, farFuture(), "", "default.test")
	defPair := pairFor(t, dir, "def", def)
	defPair.Default = true
	s, err := New(Config{Pairs: []Pair{pairFor(t, dir, "exact", exact), pairFor(t, dir, "wild", wild), defPair}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.TLSConfig())

	for _, tc := range []struct {
		sni  string
		want leaf
	}{
		{"a.example.com", exact},
		{"b.example.com", wild},
		{"x.b.example.com", def},
		{"", def},
	} {
		cfg := clientFor(ca, tc.sni)
		if tc.sni == "x.b.example.com" {
			// The default certificate does not cover this name.
			cfg = &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true}
		}
		if got := servedSerial(t, addr, cfg); got.Cmp(tc.want.serial) != 0 {
			t.Errorf("SNI %q: served serial %v, want %v", tc.sni, got, tc.want.serial)
		}
	}
}

func TestLookupRules(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	exact := ca.leaf(t, farFuture(), "", "a.example.com", "www.other.test")
	wild := ca.leaf(t, farFuture(), "", "*.example.com")
	cnOnly := ca.leaf(t, farFuture(), "cn.test")
	def := ca.leaf(t, farFuture(), "", "default.test")
	defPair := pairFor(t, dir, "def", def)
	defPair.Default = true
	second := pairFor(t, dir, "second", ca.leaf(t, farFuture(), "", "second.test"))
	second.Default = true // only the first Default counts
	s, err := New(Config{Pairs: []Pair{
		pairFor(t, dir, "exact", exact), pairFor(t, dir, "wild", wild),
		pairFor(t, dir, "cn", cnOnly), defPair, second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want leaf
	}{
		{"A.Example.COM", exact},
		{"a.example.com.", exact},
		{"WWW.other.test", exact},
		{"B.EXAMPLE.com.", wild},
		{"b.a.example.com", def},
		{"example.com", def},
		{".example.com", def},
		{"*.example.com", wild},
		{"cn.test", cnOnly},
		{"unknown.test", def},
		{"", def},
	} {
		c, err := s.certificate(&tls.ClientHelloInfo{ServerName: tc.name})
		if err != nil {
			t.Fatal(err)
		}
		if c.Leaf.SerialNumber.Cmp(tc.want.serial) != 0 {
			t.Errorf("%q: got %v, want %v", tc.name, c.Leaf.DNSNames, tc.want.serial)
		}
	}

	// Without a Default mark the first pair is the default.
	s, err = New(Config{Pairs: []Pair{pairFor(t, dir, "wild", wild), pairFor(t, dir, "exact", exact)}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.certificate(&tls.ClientHelloInfo{})
	if c.Leaf.SerialNumber.Cmp(wild.serial) != 0 {
		t.Errorf("default without mark: got %v, want the first pair", c.Leaf.DNSNames)
	}
}

func TestNewErrors(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	if _, err := New(Config{}); err == nil {
		t.Error("New without pairs succeeded")
	}
	good := ca.leaf(t, farFuture(), "", "a.example.com")
	other := ca.leaf(t, farFuture(), "", "b.example.com")
	p := pairFor(t, dir, "a", good)
	_, err := New(Config{Pairs: []Pair{{CertFile: p.CertFile, KeyFile: filepath.Join(dir, "missing.key")}}})
	if err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing key: err = %v, want it to name missing.key", err)
	}
	mismatch := Pair{CertFile: p.CertFile, KeyFile: filepath.Join(dir, "other.key")}
	writeFile(t, mismatch.KeyFile, other.keyPEM)
	_, err = New(Config{Pairs: []Pair{mismatch}})
	if err == nil || !strings.Contains(err.Error(), mismatch.KeyFile) {
		t.Errorf("mismatched key: err = %v, want it to name %s", err, mismatch.KeyFile)
	}
	noName := pairFor(t, dir, "noname", ca.leaf(t, farFuture(), ""))
	if _, err := New(Config{Pairs: []Pair{noName}}); err == nil || !strings.Contains(err.Error(), noName.CertFile) {
		t.Errorf("nameless cert: err = %v", err)
	}
}

// Check fails as loading would, and its *FileError names the file at
// fault and whether it is the key.
func TestCheck(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	good := pairFor(t, dir, "a", ca.leaf(t, farFuture(), "", "a.example.com"))
	other := pairFor(t, dir, "b", ca.leaf(t, farFuture(), "", "b.example.com"))
	noName := pairFor(t, dir, "noname", ca.leaf(t, farFuture(), ""))
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, []byte("not a certificate"))
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct {
		name    string
		pair    Pair
		file    string // "" for no error
		key     bool
		inError string
	}{
		{"good", good, "", false, ""},
		{"missing certificate", Pair{CertFile: missing, KeyFile: good.KeyFile}, missing, false, "no such file"},
		{"missing key", Pair{CertFile: good.CertFile, KeyFile: missing}, missing, true, "no such file"},
		{"key of another certificate", Pair{CertFile: good.CertFile, KeyFile: other.KeyFile}, other.KeyFile, true, "not a key for " + good.CertFile},
		{"key file is a certificate", Pair{CertFile: good.CertFile, KeyFile: good.CertFile}, good.CertFile, true, "not a key for"},
		{"certificate not PEM", Pair{CertFile: notPEM, KeyFile: good.KeyFile}, notPEM, false, "no PEM CERTIFICATE block"},
		{"no names", noName, noName.CertFile, false, "no DNS names"},
	} {
		err := Check(c.pair)
		if c.file == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != c.file || fe.Key != c.key || !strings.Contains(err.Error(), c.inError) {
			t.Errorf("%s: %v (%#v); want a FileError for %s (key %v) saying %q", c.name, err, fe, c.file, c.key, c.inError)
		}
	}
}

func TestTLSConfigAndALPN(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	s, err := New(Config{Pairs: []Pair{pairFor(t, dir, "a", ca.leaf(t, farFuture(), "", "a.example.com"))}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	if strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" {
		t.Errorf("NextProtos = %v", cfg.NextProtos)
	}
	if cfg.SessionTicketsDisabled {
		t.Error("session tickets disabled")
	}
	addr := serve(t, cfg)
	for _, protos := range [][]string{{"h2", "http/1.1"}, {"http/1.1"}, {"h2"}} {
		c := clientFor(ca, "a.example.com")
		c.NextProtos = protos
		st, err := handshake(addr, c)
		if err != nil {
			t.Fatal(err)
		}
		if st.NegotiatedProtocol != protos[0] {
			t.Errorf("client offering %v negotiated %q, want %q", protos, st.NegotiatedProtocol, protos[0])
		}
	}
}

func TestMinVersion(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	pair := pairFor(t, dir, "a", ca.leaf(t, farFuture(), "", "a.example.com"))

	s, err := New(Config{Pairs: []Pair{pair}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.TLSConfig())
	old := clientFor(ca, "a.example.com")
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := handshake(addr, old); err == nil {
		t.Error("TLS 1.1 client completed a handshake")
	}
	tls12 := clientFor(ca, "a.example.com")
	tls12.MaxVersion = tls.VersionTLS12
	if st, err := handshake(addr, tls12); err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 client: version %x, err %v", st.Version, err)
	}

	s13, err := New(Config{Pairs: []Pair{pair}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	addr13 := serve(t, s13.TLSConfig())
	if _, err := handshake(addr13, tls12); err == nil {
		t.Error("TLS 1.2 client completed a handshake with a TLS 1.3 minimum")
	}
}

func TestReload(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	v1 := ca.leaf(t, farFuture(), "", "a.example.com")
	v2 := ca.leaf(t, farFuture(), "", "a.example.com")
	p := pairFor(t, dir, "a", v1)
	log, logs := testLogger()
	s, err := New(Config{Pairs: []Pair{p}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.TLSConfig())
	client := clientFor(ca, "a.example.com")
	if got := servedSerial(t, addr, client); got.Cmp(v1.serial) != 0 {
		t.Fatalf("served %v, want v1", got)
	}

	writePair(t, p, v2)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, client); got.Cmp(v2.serial) != 0 {
		t.Fatalf("after reload served %v, want v2", got)
	}

	// Garbage certificate: rejected, names the certificate file, v2 stays.
	writeFile(t, p.CertFile, []byte("not a certificate\n"))
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), p.CertFile) {
		t.Fatalf("garbage cert: err = %v, want it to name %s", err, p.CertFile)
	}
	if got := servedSerial(t, addr, client); got.Cmp(v2.serial) != 0 {
		t.Fatalf("after bad reload served %v, want v2", got)
	}

	// A valid certificate whose key does not match: names the key file.
	v3 := ca.leaf(t, farFuture(), "", "a.example.com")
	writeFile(t, p.CertFile, v3.certPEM) // key file still holds v2's key
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), p.KeyFile) {
		t.Fatalf("mismatched key: err = %v, want it to name %s", err, p.KeyFile)
	}
	if got := servedSerial(t, addr, client); got.Cmp(v2.serial) != 0 {
		t.Fatalf("after mismatched reload served %v, want v2", got)
	}
	if !strings.Contains(logs.String(), "reload rejected") || !strings.Contains(logs.String(), p.KeyFile) {
		t.Errorf("rejection not logged:\n%s", logs)
	}

	// Fixing the key brings v3 in.
	writeFile(t, p.KeyFile, v3.keyPEM)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, client); got.Cmp(v3.serial) != 0 {
		t.Fatalf("after fix served %v, want v3", got)
	}
}

// One bad pair among several rejects the whole reload.
func TestReloadAllOrNothing(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	a1 := ca.leaf(t, farFuture(), "", "a.example.com")
	b1 := ca.leaf(t, farFuture(), "", "b.example.com")
	pa, pb := pairFor(t, dir, "a", a1), pairFor(t, dir, "b", b1)
	s, err := New(Config{Pairs: []Pair{pa, pb}})
	if err != nil {
		t.Fatal(err)
	}
	writePair(t, pa, ca.leaf(t, farFuture(), "", "a.example.com"))
	writeFile(t, pb.KeyFile, []byte("garbage"))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), pb.KeyFile) {
		t.Fatalf("err = %v, want it to name %s", err, pb.KeyFile)
	}
	c, _ := s.certificate(&tls.ClientHelloInfo{ServerName: "a.example.com"})
	if c.Leaf.SerialNumber.Cmp(a1.serial) != 0 {
		t.Error("a good pair was swapped in although another pair failed")
	}
}

func TestHotReloadUnderLoad(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	certs := [2]leaf{
		ca.leaf(t, farFuture(), "", "a.example.com"),
		ca.leaf(t, farFuture(), "", "a.example.com"),
	}
	p := pairFor(t, dir, "a", certs[0])
	s, err := New(Config{Pairs: []Pair{p}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.TLSConfig())

	type result struct {
		gen    int64
		serial *big.Int
	}
	var (
		gen      atomic.Int64 // number of reloads completed
		failures atomic.Int64
		total    atomic.Int64
		lastErr  atomic.Value
		stop     = make(chan struct{})
		results  = make(chan result, 1)
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := clientFor(ca, "a.example.com")
		for {
			select {
			case <-stop:
				return
			default:
			}
			g := gen.Load()
			st, err := handshake(addr, client)
			total.Add(1)
			if err != nil {
				failures.Add(1)
				lastErr.Store(err)
				continue
			}
			select {
			case results <- result{g, st.PeerCertificates[0].SerialNumber}:
			default:
			}
		}
	}()

	deadline := time.After(5 * time.Second)
	for i := int64(1); i <= 20; i++ {
		want := certs[i%2]
		writePair(t, p, want)
		if err := s.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		gen.Store(i)
		// Wait for a handshake that began after this reload: it must
		// have been served the certificate just loaded.
	wait:
		for {
			select {
			case r := <-results:
				if r.gen < i {
					continue
				}
				if r.serial.Cmp(want.serial) != 0 {
					t.Errorf("reload %d: handshake served %v, want %v", i, r.serial, want.serial)
				}
				break wait
			case <-deadline:
				t.Fatalf("timed out at reload %d", i)
			}
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d handshakes failed; last: %v", n, total.Load(), lastErr.Load())
	}
	t.Logf("%d handshakes across 20 reloads", total.Load())
}

func TestWatch(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	v1 := ca.leaf(t, farFuture(), "", "a.example.com")
	v2 := ca.leaf(t, farFuture(), "", "a.example.com")
	p := pairFor(t, dir, "a", v1)
	log, logs := testLogger()
	s, err := New(Config{Pairs: []Pair{p}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.TLSConfig())
	client := clientFor(ca, "a.example.com")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, 20*time.Millisecond)
	}()
	defer func() {
		cancel()
		<-done
	}()

	writePair(t, p, v2)
	// Watch polls the files and exports no reload event: poll what it serves.
	testkit.Eventually(t, 5*time.Second, func() bool {
		return servedSerial(t, addr, client).Cmp(v2.serial) == 0
	}, "v2 to be served")

	// A broken file is noticed, rejected and logged; v2 stays.
	writeFile(t, p.CertFile, []byte("garbage"))
	testkit.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "no PEM CERTIFICATE block")
	}, "the bad certificate to be rejected")
	if got := servedSerial(t, addr, client); got.Cmp(v2.serial) != 0 {
		t.Fatalf("after bad file served %v, want v2", got)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestExpiryMetric(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	a := ca.leaf(t, time.Now().Add(10*time.Hour), "", "a.example.com", "alt.example.com")
	cn := ca.leaf(t, time.Now().Add(20*time.Hour), "cn.test")
	reg := prometheus.NewRegistry()
	pa, pc := pairFor(t, dir, "a", a), pairFor(t, dir, "cn", cn)
	s, err := New(Config{Pairs: []Pair{pa, pc}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, l leaf) {
		t.Helper()
		got := testutil.ToFloat64(s.expiry.WithLabelValues(name))
		if want := float64(l.notAfter.Unix()); got != want {
			t.Errorf("expiry{name=%q} = %v, want %v", name, got, want)
		}
	}
	check("a.example.com", a)
	check("cn.test", cn)
	if n := testutil.CollectAndCount(reg, "edged_tls_cert_expiry_seconds"); n != 2 {
		t.Errorf("%d series, want 2", n)
	}

	// A reload updates the value and drops names no longer loaded.
	b := ca.leaf(t, time.Now().Add(30*time.Hour), "", "b.example.com")
	writePair(t, pa, b)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	check("b.example.com", b)
	check("cn.test", cn)
	if n := testutil.CollectAndCount(reg, "edged_tls_cert_expiry_seconds"); n != 2 {
		t.Errorf("after reload %d series, want 2", n)
	}
}

func TestExpiredIsLoadedAndLogged(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	l := ca.leaf(t, time.Now().Add(time.Hour), "", "a.example.com")
	log, logs := testLogger()
	now := func() time.Time { return l.notAfter.Add(time.Minute) }
	s, err := New(Config{Pairs: []Pair{pairFor(t, dir, "a", l)}, Logger: log, Now: now})
	if err != nil {
		t.Fatalf("expired certificate rejected: %v", err)
	}
	if !strings.Contains(logs.String(), "expired") {
		t.Errorf("expiry not logged:\n%s", logs)
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("reload of expired certificate: %v", err)
	}
}

func TestSessionTicketRotation(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	s, err := New(Config{Pairs: []Pair{pairFor(t, dir, "a", ca.leaf(t, farFuture(), "", "a.example.com"))}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.TLSConfig())
	client := clientFor(ca, "a.example.com")
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	resumed := func() bool {
		t.Helper()
		st, err := handshake(addr, client)
		if err != nil {
			t.Fatal(err)
		}
		return st.DidResume
	}

	if resumed() {
		t.Fatal("first connection resumed")
	}
	// Ticket issued under key k0; after two rotations k0 is still held.
	s.RotateTicketKeys()
	s.RotateTicketKeys()
	if !resumed() {
		t.Fatal("ticket not accepted after two rotations")
	}
	// That resumption issued a ticket under the then current key, which
	// three further rotations push out.
	for range 3 {
		s.RotateTicketKeys()
	}
	if resumed() {
		t.Fatal("ticket accepted after its key was rotated out")
	}
}

func TestWatchDefaultIntervalAndCancel(t *testing.T) {
	ca := newCA(t)
	s, err := New(Config{Pairs: []Pair{pairFor(t, t.TempDir(), "a", ca.leaf(t, farFuture(), "", "a.example.com"))}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { s.Watch(ctx, 0); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch ignored a cancelled context")
	}
}

func TestChangedDetection(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	p := pairFor(t, dir, "a", ca.leaf(t, farFuture(), "", "a.example.com"))
	s, err := New(Config{Pairs: []Pair{p}})
	if err != nil {
		t.Fatal(err)
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.changed() {
		t.Fatal("unchanged files reported as changed")
	}
	// Same size, new mtime.
	fi, err := os.Stat(p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p.KeyFile, time.Time{}, fi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !s.changed() {
		t.Fatal("mtime change not detected")
	}
	s.files = s.statAll()
	// Replaced by rename with the old mtime preserved (new inode).
	data, _ := os.ReadFile(p.KeyFile)
	tmp := p.KeyFile + ".new"
	writeFile(t, tmp, data)
	if err := os.Chtimes(tmp, time.Time{}, fi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.KeyFile); err != nil {
		t.Fatal(err)
	}
	if !s.changed() {
		t.Fatal("replacement by rename not detected")
	}
	s.files = s.statAll()
	// A removed file counts as a change, once.
	if err := os.Remove(p.CertFile); err != nil {
		t.Fatal(err)
	}
	if !s.changed() {
		t.Fatal("removal not detected")
	}
	s.files = s.statAll()
	if s.changed() {
		t.Fatal("a still-missing file reported as changed again")
	}
}
