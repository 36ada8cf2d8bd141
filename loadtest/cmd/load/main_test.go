package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edged-proxy/edged/loadtest/load"
	"github.com/edged-proxy/edged/loadtest/origin"
)

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, io.Discard, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-rate", "-zipf", "-sizes", "-json", "-warmup", "Cache-Status", "X-Varnish"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	err := run(context.Background(), []string{"-url", "http://192.0.2.1/obj/{id}", "-requests", "1", "-quiet"}, io.Discard, io.Discard)
	if !errors.Is(err, load.ErrNotLoopback) {
		t.Fatalf("err = %v, want ErrNotLoopback", err)
	}
}

func TestRunWritesTableAndJSON(t *testing.T) {
	o, err := origin.New(origin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "out.json")
	var stdout bytes.Buffer
	args := []string{"-url", srv.URL + "/obj/{id}?size={size}", "-requests", "40", "-c", "4", "-quiet", "-verify", "-json", file}
	if err := run(context.Background(), args, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "latency ms") {
		t.Errorf("no table on stdout:\n%s", stdout.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var res load.Result
	if err := json.Unmarshal(b, &res); err != nil || res.OK != 40 {
		t.Errorf("JSON %v: ok %d\n%s", err, res.OK, b)
	}
}

// TestSplitReportsLatencyPerCacheOutcome: -split adds a class per outcome
// that Classify reads, counting every classified response once.
func TestSplitReportsLatencyPerCacheOutcome(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.Header().Set("Cache-Status", "edged; fwd=uri-miss")
		} else {
			w.Header().Set("Cache-Status", "edged; hit")
		}
		io.WriteString(w, "x")
	}))
	defer srv.Close()
	for _, split := range []bool{false, true} {
		args := []string{"-url", srv.URL + "/obj/{id}", "-requests", "40", "-c", "1", "-quiet", "-json", "-"}
		if split {
			args = append(args, "-split")
		}
		var stdout bytes.Buffer
		if err := run(context.Background(), args, &stdout, io.Discard); err != nil {
			t.Fatal(err)
		}
		var res load.Result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if !split {
			if len(res.Classes) != 0 {
				t.Errorf("without -split: classes %v", res.Classes)
			}
			continue
		}
		hit, miss := res.Classes["hit"], res.Classes["miss"]
		if hit.Responses != res.Hits || miss.Responses != res.Misses || hit.Responses+miss.Responses != 40 || miss.Responses == 0 {
			t.Errorf("-split: classes %+v, hits %d misses %d", res.Classes, res.Hits, res.Misses)
		}
	}
}
