package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/storage"
)

// TestMain lets the crash test run this test binary as the edged daemon.
func TestMain(m *testing.M) {
	if os.Getenv("EDGED_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// body returns the deterministic body of object name.
func body(name string, size int) []byte {
	b := make([]byte, size)
	seed := 0
	for _, c := range name {
		seed = seed*31 + int(c)
	}
	for i := range b {
		b[i] = byte('A' + (i+seed)%53)
	}
	return b
}

// newSizedOrigin serves /obj/NAME-SIZE deterministically; the
// testkit.Origin counts fetches.
func newSizedOrigin(t *testing.T) *testkit.Origin {
	return testkit.NewOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/obj/")
		i := strings.LastIndexByte(name, '-')
		size, err := strconv.Atoi(name[i+1:])
		if i < 0 || err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		// Objects, not text: compression (on by default) leaves them as
		// sent, so the tests count their bytes and blob files alone.
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		b := body(r.URL.Path, size)
		for len(b) > 0 { // in pieces, so that kills land mid-body
			k := min(len(b), 32<<10)
			if _, err := w.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
	}))
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "edged.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// smallMemory keeps bodies over 64 KiB out of the memory tier, so that
// they take the streaming disk path.
const smallMemory = "cache:\n  memory:\n    max_object_bytes: 64KiB\n"

// alwaysAdmit, appended to a cache section, writes every fill to disk (the
// default, stated where a test depends on it rather than on what the disk
// admits).
const alwaysAdmit = "  disk:\n    admission: always\n"

func TestRestartKeepsCacheWarm(t *testing.T) {
	o := newSizedOrigin(t)
	data := t.TempDir()
	cfg := writeConfig(t, smallMemory+alwaysAdmit)
	paths := []string{"/obj/a-1000", "/obj/b-50000", "/obj/c-300000", "/obj/d-3000000"}

	l, _, stop := runDaemon(t, "-config", cfg, "-origin", o.URL, "-data", data)
	for _, p := range paths {
		if _, b := fetchHost(t, "http://"+l.Edge+p, "cdn.example"); b != string(body(p, len(b))) {
			t.Fatalf("%s: wrong body", p)
		}
	}
	stop()

	l, _, stop = runDaemon(t, "-config", cfg, "-origin", o.URL, "-data", data)
	defer stop()
	for _, p := range paths {
		resp, b := fetchHost(t, "http://"+l.Edge+p, "cdn.example")
		if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit") {
			t.Errorf("%s after restart: Cache-Status %q, want a hit", p, cs)
		}
		if b != string(body(p, len(b))) || resp.ContentLength != int64(len(b)) {
			t.Errorf("%s after restart: wrong body", p)
		}
		if n := o.Hits(p); n != 1 {
			t.Errorf("%s: origin fetched %d times, want 1", p, n)
		}
	}
}

// fetchHost GETs url with the given Host header: the cache key includes
// the host, and the edge's port changes between runs.
func fetchHost(t *testing.T, url, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}

func blobFiles(t *testing.T, data string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// A flipped byte and a truncated blob are both noticed, counted, and the
// client gets the origin's bytes instead.
func TestCorruptBlobsServedFromOrigin(t *testing.T) {
	// 300 kB bodies have a blob file each; 20 kB bodies are packed in one
	// segment file, where the damage is done to one body and the file is
	// cut inside the other.
	for _, size := range []int{300_000, 20_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { corruptBodiesServedFromOrigin(t, size) })
	}
}

func corruptBodiesServedFromOrigin(t *testing.T, size int) {
	o := newSizedOrigin(t)
	data := t.TempDir()
	paths := []string{fmt.Sprintf("/obj/x-%d", size), fmt.Sprintf("/obj/y-%d", size)}
	l, _, stop := runDaemon(t, "-config", writeConfig(t, "cache:\n"+alwaysAdmit), "-origin", o.URL, "-data", data)
	for _, p := range paths {
		fetchHost(t, "http://"+l.Edge+p, "cdn.example")
	}
	stop() // waits for the write-behind copies

	// Where each body is: its own file, or an offset in a segment.
	files := blobFiles(t, data)
	segs, _ := filepath.Glob(filepath.Join(data, "segments", "*"))
	type place struct {
		file string
		off  int
	}
	var places []place
	if size > 256<<10 {
		if len(files) != 2 || len(segs) != 0 {
			t.Fatalf("%d blob files and %d segments, want 2 and 0", len(files), len(segs))
		}
		places = []place{{files[0], 0}, {files[1], 0}}
	} else {
		if len(files) != 0 || len(segs) != 1 {
			t.Fatalf("%d blob files and %d segments, want 0 and 1", len(files), len(segs))
		}
		b, _ := os.ReadFile(segs[0])
		for _, p := range paths {
			places = append(places, place{segs[0], bytes.Index(b, body(p, size))})
		}
		if places[0].off < 0 || places[1].off < 0 {
			t.Fatal("bodies not found in the segment")
		}
		slices.SortFunc(places, func(a, b place) int { return a.off - b.off })
	}
	f, err := os.OpenFile(places[0].file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	flip := []byte{0}
	f.ReadAt(flip, int64(places[0].off+size/2))
	flip[0] ^= 0xff
	f.WriteAt(flip, int64(places[0].off+size/2))
	f.Close()
	if err := os.Truncate(places[1].file, int64(places[1].off+1000)); err != nil {
		t.Fatal(err)
	}

	l, _, stop = runDaemon(t, "-origin", o.URL, "-data", data)
	defer stop()
	for _, p := range paths {
		resp, got := fetchHost(t, "http://"+l.Edge+p, "cdn.example")
		if got != string(body(p, size)) {
			t.Errorf("%s: served corrupt bytes", p)
		}
		if strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
			t.Errorf("%s: damaged object served as a hit", p)
		}
		if n := o.Hits(p); n != 2 {
			t.Errorf("%s: origin fetched %d times, want 2", p, n)
		}
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	if !strings.Contains(metrics, "edged_disk_checksum_failures_total 1") {
		t.Errorf("the flipped byte was not counted as a checksum failure:\n%s", grepLines(metrics, "edged_disk_"))
	}
	// The truncated body is caught by start-up recovery or, if a request
	// beats it, by the size check on read: either counts it once.
	if metricValue(t, metrics, "edged_disk_size_mismatches_total")+metricValue(t, metrics, "edged_disk_recovery_dropped_entries_total") != 1 {
		t.Error("the truncated body was not counted once")
	}
}

// child is edged running as a separate process (this test binary, see
// TestMain), so that it can be killed with SIGKILL.
type child struct {
	cmd         *exec.Cmd
	edge, admin string
	log         *syncBuffer // everything the process (and successors) wrote on stderr
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "EDGED_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = nil // /dev/null: no copying goroutine for Wait to wait on (an upgraded successor inherits it)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan [2]string, 1)
	logBuf := new(syncBuffer)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logBuf.Write(append(sc.Bytes(), '\n'))
			var line struct {
				Msg   string `json:"msg"`
				Edge  string `json:"edge"`
				Admin string `json:"admin"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edged listening" {
				addr <- [2]string{line.Edge, line.Admin}
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			cmd.Wait()
			t.Fatal("child exited before listening")
		}
		return &child{cmd: cmd, edge: a[0], admin: a[1], log: logBuf}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not start within 15s")
	}
	return nil
}

// TestCrashRecovery kills edged with SIGKILL repeatedly while it fills its
// disk tier under load, then checks that every object it serves is the
// origin's, and that index and blobs agree.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs edged as a subprocess")
	}
	for _, fsync := range []string{"never", "always"} {
		t.Run("fsync="+fsync, func(t *testing.T) { crashRecovery(t, fsync) })
	}
}

func crashRecovery(t *testing.T, fsync string) {
	o := newSizedOrigin(t)
	data := t.TempDir()
	cfg := writeConfig(t, smallMemory+"  disk:\n    fsync: "+fsync+"\nlog:\n  access: false\n")
	sizes := []int{700, 9000, 40000, 150000, 600000, 2500000}
	var paths []string
	for i := range 60 {
		paths = append(paths, fmt.Sprintf("/obj/k%d-%d", i, sizes[i%len(sizes)]))
	}
	var served, corrupt atomic.Int64
	load := func(edge string, d time.Duration) {
		client := &http.Client{Timeout: 5 * time.Second}
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(d)))
				for time.Now().Before(deadline) {
					p := paths[rng.IntN(len(paths))]
					req, _ := http.NewRequest("GET", "http://"+edge+p, nil)
					req.Host = "cdn.example"
					resp, err := client.Do(req)
					if err != nil {
						continue // the daemon was killed
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						continue // cut off by the kill
					}
					served.Add(1)
					if string(b) != string(body(p, len(b))) || resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
						corrupt.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}

	for round := range 6 {
		c := startChild(t, "-config", cfg, "-origin", o.URL, "-data", data)
		done := make(chan struct{})
		go func() { load(c.edge, 2*time.Second); close(done) }()
		// Not a wait: fault injection. Each round kills at another point
		// of the load, so that kills land in different phases of writes.
		time.Sleep(time.Duration(150+round*60) * time.Millisecond)
		c.cmd.Process.Kill() // SIGKILL, mid-write
		c.cmd.Wait()
		<-done
	}

	c := startChild(t, "-config", cfg, "-origin", o.URL, "-data", data)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range paths {
		req, _ := http.NewRequest("GET", "http://"+c.edge+p, nil)
		req.Host = "cdn.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		size, _ := strconv.Atoi(p[strings.LastIndexByte(p, '-')+1:])
		if err != nil || resp.StatusCode != 200 || string(b) != string(body(p, size)) {
			t.Errorf("%s after recovery: status %d, %d bytes, err %v, correct %v", p, resp.StatusCode, len(b), err, string(b) == string(body(p, size)))
		}
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	if corrupt.Load() > 0 {
		t.Errorf("%d of %d complete responses during the kills differed from the origin", corrupt.Load(), served.Load())
	}
	t.Logf("%d complete responses under kill -9, none corrupt", served.Load())

	// Index and blobs agree: every entry reads back whole and verified, and
	// there is no blob without an entry.
	s, err := storage.Open(storage.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WaitRecovery()
	var keys []string
	s.Keys(func(k string) bool { keys = append(keys, k); return true })
	for _, k := range keys {
		obj, err := s.Get(k)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if err := obj.Verify(); err != nil {
			t.Errorf("%s: %v", k, err)
		}
		obj.Close()
	}
	st := s.Stats()
	if st.ChecksumFailures != 0 || st.SizeMismatches != 0 {
		t.Errorf("stats after recovery: %+v", st)
	}
	// Every file is a body's: one blob file per unpacked body, and the
	// segment files the store knows (each holding at least one body).
	unpacked := 0
	for _, k := range keys {
		if obj, err := s.Get(k); err == nil {
			if !obj.Packed() {
				unpacked++
			}
			obj.Close()
		}
	}
	if files := blobFiles(t, data); len(files) != unpacked {
		t.Errorf("%d blob files for %d unpacked bodies", len(files), unpacked)
	}
	if segs, _ := filepath.Glob(filepath.Join(data, "segments", "*")); int64(len(segs)) != st.Segments || st.Segments == 0 {
		t.Errorf("%d segment files, the store knows %d (want some: bodies under 256 KiB are packed)", len(segs), st.Segments)
	}
	if len(keys) == 0 {
		t.Error("nothing was stored")
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
