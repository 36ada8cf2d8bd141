package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// syncBuffer is a bytes.Buffer safe for the daemon's loggers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs edged in-process on loopback ports (and a temporary data
// directory unless args name one) and stops it at the end of the test.
func startDaemon(t *testing.T, args ...string) (listening, *syncBuffer) {
	t.Helper()
	l, out, stop := runDaemon(t, args...)
	t.Cleanup(stop)
	return l, out
}

// runDaemon starts edged in-process and returns a function that stops it
// (gracefully, as SIGTERM would) and checks it exited cleanly.
func runDaemon(t *testing.T, args ...string) (listening, *syncBuffer, func()) {
	t.Helper()
	base := []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}
	if s := os.Getenv("EDGED_TEST_HTTP1"); s != "" { // CI runs the suite with each HTTP/1 server
		base = append(base, "-http1", s)
	}
	if !slices.Contains(args, "-data") {
		base = append(base, "-data", t.TempDir())
	}
	args = append(base, args...)
	ctx, cancel := context.WithCancel(context.Background())
	out := new(syncBuffer)
	readyc := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out, out, func(l listening) { readyc <- l }) }()
	select {
	case l := <-readyc:
		var once sync.Once
		return l, out, func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("daemon exited with %v", err)
				}
			})
		}
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v\n%s", err, out.String())
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("daemon did not start within 10s")
	}
	return listening{}, nil, nil
}

func fetch(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The README's first command: no arguments serves the sample origin, a miss
// then a hit, with metrics and health on the admin listener.
func TestDefaultConfigServesSampleOrigin(t *testing.T) {
	l, out := startDaemon(t)
	if l.Sample == "" {
		t.Fatal("no sample origin started without a configured origin")
	}
	r1, b1 := fetch(t, "http://"+l.Edge+"/")
	r2, b2 := fetch(t, "http://"+l.Edge+"/")
	if r1.StatusCode != 200 || !strings.Contains(b1, "edged is running") || b1 != b2 {
		t.Fatalf("sample page: %d %q", r1.StatusCode, b1)
	}
	if cs := r1.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss; fwd-status=200; stored") {
		t.Errorf("first Cache-Status %q", cs)
	}
	if cs := r2.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit") {
		t.Errorf("second Cache-Status %q", cs)
	}
	_, health := fetch(t, "http://"+l.Admin+"/healthz")
	if health != "ok\n" {
		t.Errorf("/healthz = %q", health)
	}
	// A request is counted once its answer is written, which the client
	// may see first: wait for the second one to be counted.
	var metrics string
	testkit.Poll(5*time.Second, func() bool {
		_, metrics = fetch(t, "http://"+l.Admin+"/metrics")
		return strings.Contains(metrics, `edged_requests_total{cache="hit",code="2xx",site="sample"} 1`)
	})
	for _, want := range []string{
		`edged_requests_total{cache="hit",code="2xx",site="sample"} 1`,
		`edged_requests_total{cache="miss",code="2xx",site="sample"} 1`,
		`edged_cache_fills_total{result="stored"} 1`,
		`edged_upstream_connections_total{pool="sample",reused="false",shard=`,
		"edged_memory_objects 1",
		"edged_request_duration_seconds_bucket",
		"edged_upstream_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// One JSON access-log line per request, naming the shard on a miss.
	// The access log is flushed in the background: poll its output.
	if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(out.String(), `"cache":"hit"`) }) {
		t.Fatalf("log lacks the hit:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `"cache":"miss","site":"sample","shard":"127.0.0.1:`) {
		t.Errorf("access log lacks the miss with its shard:\n%s", out.String())
	}
}

func TestOriginFlag(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=30")
		io.WriteString(w, "from the flag's origin, host "+r.Host)
	}))
	defer o.Close()
	l, _ := startDaemon(t, "-origin", o.URL)
	if l.Sample != "" {
		t.Error("sample origin started although -origin was given")
	}
	req, _ := http.NewRequest("GET", "http://"+l.Edge+"/x", nil)
	req.Host = "any.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "from the flag's origin, host any.example" {
		t.Errorf("body %q", b)
	}
}

// Two shards, one refusing connections: every object is still served, by
// the live shard, for the whole key space.
func TestShardFailoverThroughConfig(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=30")
		io.WriteString(w, "live "+r.URL.Path)
	}))
	defer live.Close()
	deadURL := "http://" + testkit.RefusedAddr(t)

	cfg := fmt.Sprintf(`sites:
  - name: shop
    hosts: ["*"]
    origins:
      - url: %q
      - url: %q
`, deadURL, live.URL)
	path := filepath.Join(t.TempDir(), "edged.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, _ := startDaemon(t, "-config", path)
	for i := range 20 {
		p := fmt.Sprintf("/obj/%d", i)
		resp, body := fetch(t, "http://"+l.Edge+p)
		if resp.StatusCode != 200 || body != "live "+p {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	if !strings.Contains(metrics, "edged_upstream_failovers_total") {
		t.Error("no failover was counted")
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("listen: 127.0.0.1:8081\n"), 0o644)
	os.WriteFile(bad, []byte("listen: 127.0.0.1:8081\ncache:\n  memroy: {}\n"), 0o644)

	var out bytes.Buffer
	if err := run(context.Background(), []string{"-check-config", good}, &out, &out, nil); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if !strings.Contains(out.String(), "valid") {
		t.Errorf("output %q", out.String())
	}
	err := run(context.Background(), []string{"-check-config", bad}, &out, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3") || !strings.Contains(err.Error(), "cache.memroy") {
		t.Errorf("bad config error %v, want file, line 3 and key cache.memroy", err)
	}
	// The example configuration shipped in docs/ is valid.
	if err := run(context.Background(), []string{"-check-config", "../../docs/edged.example.yaml"}, &out, &out, nil); err != nil {
		t.Errorf("docs/edged.example.yaml: %v", err)
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &out, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"-config", "-check-config", "-origin", "-listen", "-admin", "-log-level", "-data"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h does not document %s:\n%s", f, out.String())
		}
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}} {
		if err := run(context.Background(), args, &out, &out, nil); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := run(context.Background(), []string{"-origin", "ftp://x"}, &out, &out, nil); err == nil || !strings.Contains(err.Error(), "origins[0].url") {
		t.Errorf("-origin ftp://x: %v", err)
	}
	if err := run(context.Background(), []string{"-listen", "nonsense"}, &out, &out, nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("-listen nonsense: %v", err)
	}
}

// The edge listener refuses an ambiguous request before it reaches the
// origin (request smuggling, RFC 9112 §6.1).
func TestSmugglingRefused(t *testing.T) {
	o := testkit.NewOrigin(t, nil)
	l, _ := startDaemon(t, "-origin", o.URL)
	conn, err := net.Dial("tcp", l.Edge)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") || strings.Count(string(resp), "HTTP/1.1") != 1 {
		t.Errorf("got %q, want one 400 and a closed connection", resp)
	}
	if n := o.Total(); n != 0 {
		t.Errorf("the origin saw %d requests", n)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	if !strings.Contains(metrics, `edged_rejected_requests_total{code="400"} 1`) {
		t.Error("the rejection was not counted")
	}
}

// The sample TLS configuration shipped in docs/ is valid once its
// certificate files exist; until they do, -check-config says which are
// missing, at their lines.
func TestTLSExampleParses(t *testing.T) {
	example, err := os.ReadFile("../../docs/edged.tls.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lineOf := func(s string) int { // of the first line holding s
		i := strings.Index(string(example), s)
		return strings.Count(string(example[:i]), "\n") + 1
	}
	var out bytes.Buffer
	err = run(context.Background(), []string{"-check-config", "../../docs/edged.tls.example.yaml"}, &out, &out, nil)
	for _, want := range []string{
		fmt.Sprintf("edged.tls.example.yaml:%d: tls.certificates[0].cert: /etc/edged/tls/example.com.pem: cannot read: no such file or directory", lineOf("example.com.pem")),
		fmt.Sprintf("edged.tls.example.yaml:%d: tls.certificates[1].cert: /etc/edged/tls/wildcard.example.org.pem: cannot read", lineOf("wildcard.example.org.pem")),
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("docs/edged.tls.example.yaml without its files: %v; want %q", err, want)
		}
	}
	text := string(example)
	for _, name := range []string{"example.com", "wildcard.example.org"} {
		certFile, keyFile, _ := selfSigned(t, strings.Replace(name, "wildcard", "*", 1))
		text = strings.Replace(text, "/etc/edged/tls/"+name+".pem", certFile, 1)
		text = strings.Replace(text, "/etc/edged/tls/"+name+".key", keyFile, 1)
	}
	withFiles := writeConfig(t, text)
	if err := run(context.Background(), []string{"-check-config", withFiles}, &out, &out, nil); err != nil {
		t.Errorf("docs/edged.tls.example.yaml with its files: %v", err)
	}
}

// -check-config loads every TLS certificate and key, as starting would,
// and reports a bad one as FILE:LINE: key.path: message.
func TestCheckConfigLoadsCertificates(t *testing.T) {
	certA, keyA, _ := selfSigned(t, "a.example")
	certB, keyB, _ := selfSigned(t, "b.example")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	missing := filepath.Join(t.TempDir(), "missing.key")
	pairs := func(listen string, p ...[2]string) string {
		s := "tls:\n  listen: \"" + listen + "\"\n  certificates:\n"
		for _, p := range p {
			s += "    - cert: " + p[0] + "\n      key: " + p[1] + "\n"
		}
		return s
	}
	for _, c := range []struct {
		name, yaml string
		want       []string // empty: valid
	}{
		{"good pairs", pairs("127.0.0.1:0", [2]string{certA, keyA}, [2]string{certB, keyB}), nil},
		{"missing key", pairs("127.0.0.1:0", [2]string{certA, keyA}, [2]string{certB, missing}),
			[]string{":7: tls.certificates[1].key: " + missing + ": cannot read: no such file or directory"}},
		{"key of another certificate", pairs("127.0.0.1:0", [2]string{certA, keyB}),
			[]string{":5: tls.certificates[0].key: " + keyB + ": not a key for " + certA + ": tls: private key does not match public key"}},
		{"certificate not PEM, and a missing key", pairs("127.0.0.1:0", [2]string{notPEM, keyA}, [2]string{certB, missing}),
			[]string{":4: tls.certificates[0].cert: " + notPEM + ": no PEM CERTIFICATE block", ":7: tls.certificates[1].key: "}},
		{"not loaded without a TLS listener", pairs("", [2]string{notPEM, missing}), nil},
	} {
		file := writeConfig(t, c.yaml)
		var out bytes.Buffer
		err := run(context.Background(), []string{"-check-config", file}, &out, &out, nil)
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		for _, want := range c.want {
			if err == nil || !strings.Contains(err.Error(), file+want) {
				t.Errorf("%s: %v; want %q", c.name, err, file+want)
			}
		}
	}
}

// -check-config refuses the purge tokens the purge API would refuse at
// startup (two tokens with one value), at the token's line; before, it
// called such a file valid and starting failed.
func TestCheckConfigChecksPurgeTokens(t *testing.T) {
	file := writeConfig(t, "purge:\n  tokens:\n    - name: a\n      token: \"0123456789abcdef0123\"\n    - name: b\n      token: \"0123456789abcdef0123\"\n")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-check-config", file}, &out, &out, nil)
	if want := file + ":6: purge.tokens[1].token: same value as an earlier token"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("-check-config: %v; want %q", err, want)
	}
}
