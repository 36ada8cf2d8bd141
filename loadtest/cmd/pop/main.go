// Command pop measures an edged PoP (issue 19): several nodes behind an L4
// balancer acting as one cache. It builds edged, runs the origin simulator
// in-process and a small TCP balancer, starts edged nodes on loopback and
// runs four scenarios, printing a markdown table for each:
//
//   - hit: the hit ratio of one node with 3×M of memory, of three
//     independent nodes with M each and of a three-node PoP with M each,
//     over the same Zipf workload whose working set is about 2.5×M;
//   - cold: a never-requested object asked for at once through every node
//     should reach the origin once;
//   - latency: local hits against hits fetched from the owner node;
//   - kill: errors, failure detection and keys moved when a node of a PoP
//     under load is killed.
//
// See docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edged-proxy/edged/loadtest/origin"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

const usage = `pop: the PoP load scenarios for edged (loopback only).

Usage: go run ./loadtest/cmd/pop [flags]

Builds edged (or takes -edged), runs the origin simulator in-process, starts
edged nodes on 127.0.0.1 and runs the scenarios named by -scenarios:

  hit      hit ratio = 1 - origin fetches / requests for (a) one node with
           3×M memory, (b) three nodes with M each, cluster off, (c) a
           three-node PoP with M each; (b) and (c) behind the balancer
  cold     one never-requested object asked for by 10 clients per node at
           once (origin delay 200ms), 20 objects: origin fetches of each
  latency  PoP with hot_threshold 255; requests straight to node A split by
           Cache-Status into local hits and hits through the owner peer
  kill     PoP under load through the balancer (64 connections); one node
           gets SIGKILL: errors, detection time, keys moved

The balancer sends each new connection to a random live node and marks a
node it cannot connect to down for 2s. Every request carries Host pop.test.

Flags:
`

// options are the command's flags, checked.
type options struct {
	edged                    string
	mem                      int64
	sizes                    sizemix.Mix
	keys                     int
	workingSet               int64 // bytes of objects 0..keys-1
	zipf                     float64
	conc                     int
	warmup, duration         time.Duration
	warmupRequests, requests int64
	runs                     int
	scenarios                []string
	jsonOut                  string
	killDuration, killAt     time.Duration
	coldObjects, coldPerNode int
	latencyKeys              int
	latencyRequests          int64
	sampleKeys               int
	hot                      int // cluster.hot_threshold of the hit scenario's PoP; 0: edged's default
}

var allScenarios = []string{"hit", "cold", "latency", "kill"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "pop:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{coldObjects: 20, coldPerNode: 10, latencyKeys: 2000, latencyRequests: 20000, sampleKeys: 2000, killAt: 5 * time.Second}
	fs := flag.NewFlagSet("pop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.edged, "edged", "", "edged binary `PATH` (default: go build ./cmd/edged into a temporary directory)")
	mem := fs.String("mem", "32MiB", "`M`: memory tier of each node (the single node of hit (a) gets 3×M)")
	sizes := fs.String("sizes", "8KiB", "object size `MIX`, e.g. 8KiB or 1KiB-32KiB")
	fs.IntVar(&o.keys, "keys", 0, "`N` distinct objects (0: as many as make a working set of 2.5×M)")
	fs.Float64Var(&o.zipf, "zipf", 1.1, "Zipf exponent `S` (> 1) of key popularity")
	fs.IntVar(&o.conc, "c", 16, "`N` client connections of the hit scenario (latency uses 8, kill 64)")
	fs.DurationVar(&o.warmup, "warmup", 15*time.Second, "time bound of each warmup")
	fs.Int64Var(&o.warmupRequests, "warmup-requests", 30000, "`N` requests of each warmup")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "time bound of each measured phase")
	fs.Int64Var(&o.requests, "requests", 30000, "`N` requests of each measured phase of the hit scenario")
	fs.DurationVar(&o.killDuration, "kill-duration", 15*time.Second, "length of the kill scenario's load (the kill comes at 5s)")
	fs.IntVar(&o.hot, "hot", 0, "cluster.hot_threshold `N` of the hit scenario's PoP (0: edged's default; 255: no replicas)")
	fs.IntVar(&o.runs, "runs", 1, "repeat each scenario `N` times and report medians [ranges]")
	list := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated `LIST` of hit, cold, latency, kill")
	fs.StringVar(&o.jsonOut, "json", "", "also write every run's figures as JSON to `FILE`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	m, err := sizemix.ParseSize(*mem)
	if err != nil || m < 1<<20 {
		return o, fmt.Errorf("-mem %q: want a size of at least 1MiB", *mem)
	}
	o.mem = m
	if o.sizes, err = sizemix.Parse(*sizes); err != nil || o.sizes.Max() == 0 {
		return o, fmt.Errorf("-sizes %q: %v", *sizes, err)
	}
	if o.sizes.Max() > 1<<20 {
		return o, fmt.Errorf("-sizes: objects above 1MiB are not held in memory (max_object_bytes)")
	}
	o.keys, o.workingSet = workingSet(o.sizes, o.keys, 5*o.mem/2)
	switch {
	case o.zipf <= 1:
		return o, fmt.Errorf("-zipf %v: want > 1", o.zipf)
	case o.conc < 1 || o.conc > 1024:
		return o, fmt.Errorf("-c %d: want 1..1024", o.conc)
	case o.runs < 1 || o.runs > 20:
		return o, fmt.Errorf("-runs %d: want 1..20", o.runs)
	case o.warmup <= 0 || o.duration <= 0 || o.warmup > 2*time.Minute || o.duration > 2*time.Minute:
		return o, errors.New("-warmup and -duration: want (0, 2m]")
	case o.warmupRequests < 0 || o.requests < 0:
		return o, errors.New("-warmup-requests and -requests: want ≥ 0 (0: time bound only)")
	case o.killDuration < o.killAt+5*time.Second || o.killDuration > 2*time.Minute:
		return o, fmt.Errorf("-kill-duration: want [%v, 2m]", o.killAt+5*time.Second)
	}
	for s := range strings.SplitSeq(*list, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (want %s)", s, strings.Join(allScenarios, ", "))
		}
		if !slices.Contains(o.scenarios, s) {
			o.scenarios = append(o.scenarios, s)
		}
	}
	return o, nil
}

// workingSet returns the number of keys and their total bytes: keys as
// given, or, when keys is 0, the fewest whose sizes add up to target.
func workingSet(sizes sizemix.Mix, keys int, target int64) (int, int64) {
	var total int64
	if keys > 0 {
		for id := range keys {
			s, _ := sizes.Pick(strconv.Itoa(id))
			total += s
		}
		return keys, total
	}
	for total < target {
		s, _ := sizes.Pick(strconv.Itoa(keys))
		total += s
		keys++
	}
	return keys, total
}

// report is everything -json writes.
type report struct {
	Started     time.Time       `json:"started"`
	Mem         int64           `json:"mem_bytes"`
	Sizes       string          `json:"sizes"`
	Keys        int             `json:"keys"`
	WorkingSet  int64           `json:"working_set_bytes"`
	Zipf        float64         `json:"zipf"`
	Concurrency int             `json:"concurrency"`
	Hit         [][]hitRow      `json:"hit,omitempty"`
	Cold        []coldResult    `json:"cold,omitempty"`
	Latency     []latencyResult `json:"latency,omitempty"`
	Kill        []killResult    `json:"kill,omitempty"`
	Skipped     []string        `json:"skipped,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "edged-pop-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := opt.edged
	if bin == "" {
		bin = filepath.Join(dir, "edged")
		fmt.Fprintln(stderr, "pop: building edged")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/edged")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building edged (run from the repository root, or pass -edged): %w", err)
		}
	}
	o, err := origin.New(origin.Config{MaxPaths: 10_000_000})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: o, ConnContext: o.ConnContext, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	e := &env{ctx: ctx, bin: bin, dir: dir, origin: o, originURL: "http://" + ln.Addr().String(), opt: opt, log: stderr}
	rep := &report{Started: time.Now().UTC(), Mem: opt.mem, Sizes: opt.sizes.String(), Keys: opt.keys,
		WorkingSet: opt.workingSet, Zipf: opt.zipf, Concurrency: opt.conc}
	writeWorkload(stdout, opt)
	for _, s := range opt.scenarios {
		var err error
		switch s {
		case "hit":
			err = runs(opt.runs, e.hitRun, &rep.Hit)
			if len(rep.Hit) > 0 {
				writeHit(stdout, rep.Hit)
			}
		case "cold":
			err = runs(opt.runs, e.coldRun, &rep.Cold)
			if len(rep.Cold) > 0 {
				writeCold(stdout, rep.Cold)
			}
		case "latency":
			err = runs(opt.runs, e.latencyRun, &rep.Latency)
			if len(rep.Latency) > 0 {
				writeLatency(stdout, rep.Latency)
			}
		case "kill":
			err = runs(opt.runs, e.killRun, &rep.Kill)
			if len(rep.Kill) > 0 {
				writeKill(stdout, rep.Kill)
			}
		}
		if errors.Is(err, errNoPoP) {
			fmt.Fprintf(stdout, "\n### %s\n\nnot run: %v\n", s, err)
			rep.Skipped = append(rep.Skipped, s+": "+err.Error())
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if opt.jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(opt.jsonOut, append(b, '\n'), 0o644)
}

// runs calls f for runs 0..n-1, appending each result to out.
func runs[T any](n int, f func(int) (T, error), out *[]T) error {
	for i := range n {
		r, err := f(i)
		if err != nil {
			return err
		}
		*out = append(*out, r)
	}
	return nil
}

func writeWorkload(w io.Writer, o options) {
	fmt.Fprintf(w, "## PoP scenarios\n\n")
	fmt.Fprintf(w, "Workload: %d keys × sizes %s = %.1f MiB working set = %.2f × M (M = %s per node; one node in (a) gets 3×M = %s);"+
		" Zipf s=%g; Host %s; %d run(s), medians [ranges].\n",
		o.keys, o.sizes, float64(o.workingSet)/(1<<20), float64(o.workingSet)/float64(o.mem),
		sizemix.FormatSize(o.mem), sizemix.FormatSize(3*o.mem), o.zipf, host, o.runs)
}
