package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkDaemonHit is a fresh memory hit through the whole daemon, on
// kept-alive connections from parallel clients: the edge listener's stack
// (connection counting, PROXY reader, limits, strict reader) included.
func BenchmarkDaemonHit(b *testing.B) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	defer o.Close()
	cfg := filepath.Join(b.TempDir(), "edged.yaml")
	os.WriteFile(cfg, []byte("log:\n  access: false\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	readyc, done := make(chan listening, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-data", b.TempDir(), "-config", cfg, "-origin", o.URL},
			io.Discard, io.Discard, func(l listening) { readyc <- l })
	}()
	var l listening
	select {
	case l = <-readyc:
	case err := <-done:
		b.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	url := "http://" + l.Edge + "/obj/bench"
	get := func(c *http.Client) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "cdn.example"
		resp, err := c.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(http.DefaultClient)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		for pb.Next() {
			get(c)
		}
	})
}
