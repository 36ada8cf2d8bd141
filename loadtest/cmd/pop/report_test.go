package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/loadtest/load"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want string
	}{
		{[]float64{0.9}, "0.900"},
		{[]float64{3, 1, 2}, "2.000 [1.000–3.000]"},
		{[]float64{4, 1, 2, 3}, "2.500 [1.000–4.000]"},
		{[]float64{5, 5}, "5.000"},
		{[]float64{math.NaN(), 7}, "7.000"},
		{[]float64{math.NaN()}, "–"},
		{nil, "–"},
	} {
		if got := spreadOf(tc.in).format("%.3f"); got != tc.want {
			t.Errorf("spreadOf(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	if got := hitRatio(1000, 50); got != 0.95 {
		t.Errorf("hitRatio(1000, 50) = %v", got)
	}
	if !math.IsNaN(hitRatio(0, 0)) || !math.IsNaN(ratio(1, 0)) || !math.IsNaN(ratio(math.NaN(), 1)) || !math.IsNaN(pct(1, 0)) {
		t.Error("undefined figures must be NaN")
	}
	if got := pct(5, 1000); got != 0.5 {
		t.Errorf("pct(5, 1000) = %v", got)
	}
	before := []string{"a", "b", "c", "c", "a"}
	after := []string{"a", "b", "a", "b", "a"}
	if owned, changed, same := moved(before, after, "c"); owned != 2 || changed != 2 || !same {
		t.Errorf("moved = %d, %d, %v; want 2, 2, true", owned, changed, same)
	}
	after[0] = "b" // a key the survivor owned moved too
	if _, changed, same := moved(before, after, "c"); changed != 3 || same {
		t.Errorf("moved with a stray key = %d, %v; want 3, false", changed, same)
	}
	b, err := json.Marshal(struct{ A, B num }{num(math.NaN()), 0.5})
	if err != nil || string(b) != `{"A":null,"B":0.5}` {
		t.Errorf("num JSON = %s, %v", b, err)
	}
}

func TestWorkingSet(t *testing.T) {
	m, _ := sizemix.Parse("8KiB")
	keys, bytes := workingSet(m, 0, 80<<20)
	if keys != 10240 || bytes != 80<<20 {
		t.Errorf("8KiB objects for 80MiB: %d keys, %d bytes; want 10240, 80MiB", keys, bytes)
	}
	if keys, bytes := workingSet(m, 10, 0); keys != 10 || bytes != 80<<10 {
		t.Errorf("10 given keys: %d, %d", keys, bytes)
	}
	r, _ := sizemix.Parse("1KiB-32KiB")
	keys, bytes = workingSet(r, 0, 80<<20)
	if bytes < 80<<20 || bytes > 80<<20+32<<10 || keys < 4000 || keys > 6500 {
		t.Errorf("1KiB-32KiB for 80MiB: %d keys, %d bytes", keys, bytes)
	}
}

func TestHopClass(t *testing.T) {
	for _, tc := range []struct {
		cs   []string
		want string
	}{
		{[]string{"pop-a; hit; ttl=3599"}, classLocal},
		{[]string{"pop-b; hit; ttl=3599, pop-a; fwd=peer; fwd-status=200; ttl=3599"}, classPeer},
		{[]string{"pop-b; hit; ttl=3599", "pop-a; fwd=peer; fwd-status=200"}, classPeer},
		{[]string{"pop-b; fwd=uri-miss; stored, pop-a; fwd=peer; fwd-status=200"}, classOther},
		{[]string{"pop-a; fwd=uri-miss; stored"}, classOther},
		{[]string{"pop-b; hit"}, classOther}, // a hit, but not at A
		{nil, classOther},
	} {
		if got := hopClass(tc.cs, "pop-a"); got != tc.want {
			t.Errorf("hopClass(%q) = %q, want %q", tc.cs, got, tc.want)
		}
	}
}

func TestNodeConfig(t *testing.T) {
	y := nodeConfig{Name: "pop-b", MemBytes: 32 << 20, OriginURL: "http://127.0.0.1:9", Cluster: true, Join: "127.0.0.1:7946", HotThreshold: 255}.yaml()
	for _, want := range []string{"max_bytes: 33554432B", "node: pop-b", `join: ["127.0.0.1:7946"]`, "hot_threshold: 255", `url: "http://127.0.0.1:9"`, "disk: {enabled: false}"} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
	if y := (nodeConfig{Name: "x", MemBytes: 1 << 20}).yaml(); strings.Contains(y, "cluster") {
		t.Errorf("cluster off, yet:\n%s", y)
	}
}

func TestTables(t *testing.T) {
	var out bytes.Buffer
	row := func(label string, cluster bool, req, fetches int64) hitRow {
		return hitRow{Label: label, Cluster: cluster, Requests: req, OriginFetches: fetches, HitRatio: num(hitRatio(req, fetches)), RPS: 1000, P50: 1, P99: 2}
	}
	writeHit(&out, [][]hitRow{
		{row("(a)", false, 1000, 40), row("(b)", false, 1000, 200), row("(c)", true, 1000, 50)},
		{row("(a)", false, 1000, 60), row("(b)", false, 1000, 200), row("(c)", true, 1000, 50)},
	})
	s := out.String()
	for _, want := range []string{
		"| (a)   | 1000     | 50 [40–60]     | 0.9500 [0.9400–0.9600] |",
		"(c)/(a) hit ratio: 1.0000",
		"(c) − (b): +15.00 points",
		"(c) misses / (b) misses: 0.25",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("hit table lacks %q:\n%s", want, s)
		}
	}
	out.Reset()
	writeHit(&out, [][]hitRow{{row("(a)", false, 1000, 40), row("(b)", false, 1000, 200), {Label: "(c)", Cluster: true, Skipped: "no PoP"}}})
	if s := out.String(); !strings.Contains(s, "(c) not run: no PoP") || !strings.Contains(s, "(c)/(a) hit ratio: –") {
		t.Errorf("skipped row:\n%s", s)
	}
	out.Reset()
	writeLatency(&out, []latencyResult{{Requests: 10, Classes: map[string]load.Class{
		classLocal: {Responses: 4, Latency: load.Latency{P50: 0.1, P99: 0.2}},
		classPeer:  {Responses: 6, Latency: load.Latency{P50: 0.3, P99: 0.6}},
	}}})
	if s := out.String(); !strings.Contains(s, "| peer hit  | 6         | 0.300  | 0.600  |") || strings.Contains(s, "other") {
		t.Errorf("latency table:\n%s", s)
	}
	out.Reset()
	writeKill(&out, []killResult{{Victim: "pop-c", Requests: 10000, Errors: 20, ErrorPct: 0.2, FirstError: 0.01, LastError: 0.5, Detection: 1.4, SampleKeys: 2000, VictimOwned: 650, Moved: 650, MovedOnlyVictims: true}})
	if s := out.String(); !strings.Contains(s, "| client errors, % of requests") || !strings.Contains(s, "1 of 1") || !strings.Contains(s, "0.200") {
		t.Errorf("kill table:\n%s", s)
	}
	out.Reset()
	writeCold(&out, []coldResult{{Objects: 2, ExactlyOne: 1, Fetches: []int64{1, 2}, Requests: 60}})
	if s := out.String(); !strings.Contains(s, "| 1   | 2       | 30            | 1 ") {
		t.Errorf("cold table:\n%s", s)
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"-mem", "16MiB", "-scenarios", "kill,hit,kill"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.keys != 5120 || o.workingSet != 40<<20 || strings.Join(o.scenarios, ",") != "kill,hit" {
		t.Errorf("options %+v", o)
	}
	for _, args := range [][]string{{"-zipf", "1"}, {"-scenarios", "hit,nope"}, {"-mem", "1KiB"}, {"-runs", "0"}, {"-sizes", "2MiB"}, {"extra"}} {
		if _, err := parseFlags(args, new(bytes.Buffer)); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
