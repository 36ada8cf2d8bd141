package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/internal/testkit"
)

// readLines returns the lines of the file at path, failing on a line
// that is not one whole JSON object.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends in a partial line", path)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: a split or garbled line: %v: %q", path, err, sc.Text())
		}
		lines = append(lines, sc.Text())
	}
	return lines
}

// SIGUSR1 reopens log.access_file as logrotate's postrotate asks: after
// the file is renamed, new lines go to a new file at the path, and under
// load none is lost or split between the two.
func TestAccessFileReopenOnSIGUSR1(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	}))
	defer o.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	cfg := writeConfig(t, fmt.Sprintf("log:\n  access_file: %s\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n", logPath, o.URL))
	l, out, stop := runDaemon(t, "-config", cfg)
	defer stop()

	var sent atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				resp, err := http.Get(fmt.Sprintf("http://%s/load/%d/%d", l.Edge, g, i))
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
			}
		}()
	}
	lineCount := func(p string) int {
		b, _ := os.ReadFile(p)
		return bytes.Count(b, []byte("\n"))
	}
	if !testkit.Poll(10*time.Second, func() bool { return lineCount(logPath) > 50 }) {
		t.Fatalf("no access lines in %s:\n%s", logPath, out.String())
	}
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	if !testkit.Poll(10*time.Second, func() bool { return lineCount(logPath) > 50 }) {
		t.Fatalf("no lines in the reopened file:\n%s", out.String())
	}
	close(done)
	wg.Wait()
	const after = 20
	for i := range after {
		resp, _ := fetchHost(t, fmt.Sprintf("http://%s/after/%d", l.Edge, i), "cdn.example")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	stop() // flushes the buffer
	if !strings.Contains(out.String(), `"msg":"access log reopened"`) {
		t.Errorf("the reopen is not logged:\n%s", out.String())
	}
	old, cur := readLines(t, rotated), readLines(t, logPath)
	if got, want := len(old)+len(cur), int(sent.Load())+after; got != want {
		t.Errorf("%d lines in the two files, %d requests", got, want)
	}
	n := 0
	for _, line := range cur {
		if strings.Contains(line, `"path":"/after/`) {
			n++
		}
	}
	if n != after {
		t.Errorf("%d of %d requests after the reopen logged in the new file", n, after)
	}
	t.Logf("%d lines before the reopen, %d after", len(old), len(cur))
}

// log.access_format: combined reaches the daemon's log, and a bad field
// name is reported at its key.
func TestAccessLogConfig(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer o.Close()
	logPath := filepath.Join(t.TempDir(), "access.log")
	site := fmt.Sprintf("sites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n", o.URL)
	cfg := writeConfig(t, "log:\n  access_format: combined\n  access_file: "+logPath+"\n"+site)
	l, _, stop := runDaemon(t, "-config", cfg)
	req, _ := http.NewRequest("GET", "http://"+l.Edge+"/c?x=1", nil)
	req.Header.Set("User-Agent", "test-agent")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stop()
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), `"GET /c?x=1 HTTP/1.1" 200 2 "-" "test-agent"`+"\n") || !strings.HasPrefix(string(b), "127.0.0.1 - - [") {
		t.Errorf("not a combined line: %q", b)
	}

	bad := writeConfig(t, "log:\n  access_fields: [time, nope]\n"+site)
	var stdout bytes.Buffer
	err = run(t.Context(), []string{"-check-config", bad}, &stdout, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "log.access_fields[1]") || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("check-config: %v", err)
	}
}

// The daemon's log prints durations as Go writes them, not nanoseconds.
func TestDaemonLogDurations(t *testing.T) {
	var b bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: durationsAsText}))
	logger.Info("x", "timeout", 1500*time.Millisecond, slog.Group("g", "d", 2*time.Minute), "n", 3, "c", config.Duration(250*time.Millisecond))
	var rec struct {
		Timeout string
		G       struct{ D string }
		N       int
		C       string
	}
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Timeout != "1.5s" || rec.G.D != "2m0s" || rec.N != 3 || rec.C != "250ms" {
		t.Errorf("got %s", b.String())
	}
}

// A rule returns the request ID to clients where wanted: the same ID the
// origin got and the log has.
func TestRequestIDReturnedByRule(t *testing.T) {
	var originSaw atomic.Value
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originSaw.Store(r.Header.Get("X-Request-Id"))
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	}))
	defer o.Close()
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := writeConfig(t, fmt.Sprintf("log:\n  access_file: %s\n  access_fields: [request_id]\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n"+
		"    rules:\n      - name: ids\n        response_headers:\n          set: [\"X-Request-ID: {request_id}\"]\n", logPath, o.URL))
	l, _, stop := runDaemon(t, "-config", cfg)
	resp, _ := fetchHost(t, "http://"+l.Edge+"/x", "cdn.example")
	stop()
	id := resp.Header.Get("X-Request-Id")
	b, _ := os.ReadFile(logPath)
	if id == "" || originSaw.Load() != id || string(b) != `{"request_id":"`+id+`"}`+"\n" {
		t.Errorf("client got %q, origin %q, log %q", id, originSaw.Load(), b)
	}
}
