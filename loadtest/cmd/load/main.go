// Command load is an HTTP load generator for caching proxies on loopback; see
// package loadtest/load and docs/benchmarks.md.
//
//	load -url 'http://127.0.0.1:8080/obj/{id}?size={size}' -c 64 -duration 10s \
//	     -keys 100000 -zipf 1.1 -sizes 1KiB:70,10KiB:25,100KiB:5
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/edged-proxy/edged/loadtest/load"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

const usage = `load: an HTTP load generator for caching proxies (loopback targets only).

Usage: load -url TEMPLATE [flags]

Closed loop (default): -c workers, each sending its next request when the last
ends. Open loop (-rate R): a request falls due every 1/R s and its latency is
measured from that due time, so a slow target is charged for the queue it
causes; -c caps requests in flight. Keys are uniform or Zipf over -keys
objects; {id} in the URL is the key, {size} its size from -sizes.

The hit ratio is read from Cache-Status (RFC 9211: "hit" on the last member),
else nginx's X-Cache-Status (HIT, STALE, UPDATING are hits), else X-Cache
(last value starts with HIT), else X-Varnish (two ids = hit).

A progress line goes to stderr every second (unless -quiet), the final table to
stdout, and with -json FILE ('-' for stdout, replacing the table) all numbers
as JSON. The run stops at -duration or after -requests, whichever comes first.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var cfg load.Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/obj/{id}?size={size}", "target URL `TEMPLATE` with {id} and {size} placeholders; host must be loopback")
	fs.IntVar(&cfg.Concurrency, "c", 64, fmt.Sprintf("`N` workers (closed loop) or max requests in flight (open loop); at most %d", load.MaxConcurrency))
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop at `R` requests per second (0: closed loop)")
	fs.DurationVar(&cfg.Duration, "duration", 0, fmt.Sprintf("measure for at most this long (default 10s, or %v with -requests); at most %v", load.MaxDuration, load.MaxDuration))
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after `N` measured requests (0: no count limit)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "run the same load this long first and discard its results")
	fs.IntVar(&cfg.Keys, "keys", 1000, "`N` distinct objects")
	fs.Float64Var(&cfg.Zipf, "zipf", 0, "Zipf exponent `S` (> 1) for key popularity; 0 is uniform")
	sizes := fs.String("sizes", "1KiB", "size `MIX` picked per object id for {size}, e.g. 1KiB:70,10KiB:25,100KiB:5 or 1KiB-100KiB")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "`SEED` of the key sequence")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "per-request timeout including the body (default 10s)")
	fs.BoolVar(&cfg.Verify, "verify", false, "check each 200 body against the origin simulator's deterministic bytes (id = last path segment)")
	fs.StringVar(&cfg.Host, "host", "", "send `HOST` as every request's Host header (the URL still decides where to connect)")
	fs.StringVar(&cfg.Label, "label", "", "`NAME` of the run in the table and JSON")
	split := fs.Bool("split", false, "also report latency per cache outcome (hit, miss, unknown; see Classify) as classes")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	jsonOut := fs.String("json", "", "write the results as JSON to `FILE` ('-' for stdout instead of the table)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.Sizes, err = sizemix.Parse(*sizes); err != nil {
		return fmt.Errorf("-sizes: %w", err)
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *split {
		cfg.Class = func(r *http.Response) string { return load.Classify(r.Header).String() }
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *jsonOut != "-" {
		if err := res.WriteTable(stdout); err != nil {
			return err
		}
	}
	if *jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *jsonOut == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(*jsonOut, b, 0o644)
}
