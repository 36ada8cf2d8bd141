// Command origin runs the origin simulator of package loadtest/origin on a
// loopback address, for load tests of edged and other caching proxies.
//
//	origin -listen 127.0.0.1:8081 -delay 5ms -sizes 1KiB:70,10KiB:25,100KiB:5
//
// It prints "listening on ADDR" once bound and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edged-proxy/edged/loadtest/origin"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

const usage = `origin: an origin simulator for load tests.

Usage: origin [flags]

Serves GET/HEAD /obj/{id} with deterministic bodies (bytes are a function of
id and offset; see loadtest/origin.Expected), Content-Length, ETag (from id,
size and version), Last-Modified and Cache-Control. Per-request query
parameters override the flags:

  size=N         body size (512, 10KiB, 1MiB)
  v=S            object version (changes the ETag only)
  cc=S           Cache-Control value; "none" or empty sends none
  delay=D        time to first byte (50ms)
  rate=R         throttle the body to R bytes/s (1MB/s, 256KiB/s)
  status=N       answer status N with a short text body (Cache-Control: no-store
                 unless cc= is given)
  reset=after:N  send the headers and N body bytes, then reset the connection
  fail=P         probability of an injected failure (see -fail-status, -fail-reset)

GET /__stats (JSON, no-store) reports requests in total and per path, body
bytes, injected failures, requests in flight and the connections accepted
(but those of the polls themselves): a proxy's new connections, so its
connection reuse is measured at the origin; ?path=/obj/x (repeatable)
limits the per-path map to those paths. POST /__stats/reset zeroes them.

With -fixed SIZE it instead answers every request with one fixed 200 response
of SIZE bytes and counts nothing: a ceiling reference for net/http. With
-fixed-raw SIZE the fixed response comes from a hand-written HTTP/1.1 loop
instead of net/http, with a ten-field header like an edged hit's: the ceiling
of a custom serve loop (see docs/benchmarks.md).

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var (
		listen     = fs.String("listen", "127.0.0.1:0", "listen on `ADDR` (loopback only); port 0 picks a free port, printed on stdout")
		cc         = fs.String("cc", origin.DefaultCacheControl, "Cache-Control `VALUE` of objects; \"none\" sends none")
		sizes      = fs.String("sizes", "", "size `MIX` by object id when a request has no size=, e.g. 1KiB:70,10KiB:25,100KiB:5 or 1KiB-100KiB")
		size       = fs.String("size", "1KiB", "object `SIZE` when neither size= nor -sizes decides")
		maxSize    = fs.String("max-size", "1GiB", "largest `SIZE` a request may ask for")
		version    = fs.String("version", "1", "object version `STRING` mixed into ETags")
		delay      = fs.Duration("delay", 0, "fixed time to first byte added to every object request")
		jitter     = fs.Duration("jitter", 0, "uniformly random extra delay in [0, `DURATION`)")
		rate       = fs.String("rate", "", "throttle bodies to `RATE` bytes per second (1MB/s); empty is unlimited")
		failProb   = fs.Float64("fail", 0, "probability in [0,1] that an object request fails")
		failStatus = fs.Int("fail-status", 503, "`STATUS` of injected failures")
		failReset  = fs.Bool("fail-reset", false, "injected failures reset the connection half way through the body instead")
		fixed      = fs.String("fixed", "", "serve one fixed 200 response of `SIZE` bytes for every path (ceiling reference; no stats)")
		fixedRaw   = fs.String("fixed-raw", "", "serve one fixed 200 response of `SIZE` bytes from a hand-written HTTP/1.1 loop, not net/http (ceiling reference; no stats)")
		logReqs    = fs.Bool("v", false, "log each request on stderr")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-listen %q: only loopback addresses are allowed", *listen)
	}

	if *fixedRaw != "" {
		n, err := sizemix.ParseSize(*fixedRaw)
		if err != nil {
			return fmt.Errorf("-fixed-raw: %w", err)
		}
		rs := origin.NewRawServer(origin.Expected("fixed", int(n)))
		return serve(ctx, stdout, *listen, rs.Serve, func() error { return rs.Close() })
	}

	var h http.Handler
	var connCtx func(context.Context, net.Conn) context.Context
	if *fixed != "" {
		n, err := sizemix.ParseSize(*fixed)
		if err != nil {
			return fmt.Errorf("-fixed: %w", err)
		}
		fcc := *cc
		if fcc == "none" {
			fcc = ""
		}
		h = origin.Fixed(origin.Expected("fixed", int(n)), fcc)
	} else {
		cfg := origin.Config{CacheControl: *cc, Version: *version, Delay: *delay, Jitter: *jitter,
			FailProb: *failProb, FailStatus: *failStatus, FailReset: *failReset}
		if cfg.Sizes, err = sizemix.Parse(*sizes); err != nil {
			return fmt.Errorf("-sizes: %w", err)
		}
		if cfg.DefaultSize, err = sizemix.ParseSize(*size); err != nil {
			return fmt.Errorf("-size: %w", err)
		}
		if cfg.MaxSize, err = sizemix.ParseSize(*maxSize); err != nil {
			return fmt.Errorf("-max-size: %w", err)
		}
		if *rate != "" {
			if cfg.Rate, err = origin.ParseRate(*rate); err != nil {
				return fmt.Errorf("-rate: %w", err)
			}
		}
		o, err := origin.New(cfg)
		if err != nil {
			return err
		}
		h, connCtx = o, o.ConnContext
	}
	if *logReqs {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			inner.ServeHTTP(w, r)
			fmt.Fprintf(stderr, "%s %s %s %v\n", r.RemoteAddr, r.Method, r.URL.RequestURI(), time.Since(start))
		})
	}

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnContext: connCtx}
	return serve(ctx, stdout, *listen, srv.Serve, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}

// serve listens on addr, prints the address, and runs serveLn until it
// fails or ctx ends; then it calls stop.
func serve(ctx context.Context, stdout io.Writer, addr string, serveLn func(net.Listener) error, stop func() error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- serveLn(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return stop()
	}
}
