package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheckTimeout bounds the whole check: a container runtime runs it
// every interval and a hung check must not pile up.
const healthcheckTimeout = 2 * time.Second

// runHealthcheck is `edged healthcheck`: GET the admin listener's /healthz
// and exit 0 on a 200, 1 otherwise (2 for a usage error), with the reason
// on stderr. It exists so that a scratch image, which has no shell or curl,
// can run a Docker HEALTHCHECK with the binary itself.
func runHealthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("edged healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9090/healthz", "`URL` of the admin listener's /healthz")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: edged healthcheck [-url URL]\n\nExit 0 if URL answers 200 within 2s, 1 otherwise.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edged healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := healthcheck(*url); err != nil {
		fmt.Fprintln(stderr, "edged healthcheck:", err)
		return 1
	}
	return 0
}

func healthcheck(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// A client of its own: no proxy from the environment, no keep-alive.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
