// Command edged is a caching edge proxy: it serves cached content, fetches
// misses from consistent-hashed origin shards and exposes metrics on an
// admin listener.
//
// Run with no arguments it starts on the embedded default configuration,
// with a built-in sample origin; see `edged -h` and docs/configuration.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/edged-proxy/edged/internal/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "purge" {
		os.Exit(runPurgeCLI(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(runHealthcheck(os.Args[2:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var upg upgrader
	if os.Getenv("EDGED_NO_UPGRADE") == "" {
		if u, err := tableflip.New(tableflip.Options{UpgradeTimeout: time.Minute, PIDFile: os.Getenv("EDGED_PID_FILE")}); err == nil {
			defer u.Stop()
			upg = flipper{u}
			// SIGUSR2 starts the new binary, which takes the listening
			// sockets over; this process then drains and exits.
			usr2 := make(chan os.Signal, 1)
			signal.Notify(usr2, syscall.SIGUSR2)
			go func() {
				for range usr2 {
					if err := u.Upgrade(); err != nil {
						fmt.Fprintln(os.Stderr, "edged: upgrade failed:", err)
					}
				}
			}()
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			go func() {
				<-u.Exit()
				cancel()
			}()
		}
	}
	err := runWith(ctx, os.Args[1:], os.Stdout, os.Stderr, nil, upg)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "edged:", err)
		os.Exit(1)
	}
}

// errUsage marks a command-line error already reported with the usage text.
var errUsage = errors.New("usage error")

// options are the command-line flags.
type options struct {
	config      string
	checkConfig string
	origin      string
	listen      string
	admin       string
	logLevel    string
	http1       string
	data        string
	purgeToken  string
	tlsListen   string
	certFile    string
	keyFile     string
	version     bool
	set         map[string]bool // flags given on the command line
}

const usageHead = `edged: a caching edge proxy.

Usage:
  edged [flags]                       run on the embedded default configuration
                                      (a built-in sample origin when none is set)
  edged -origin http://host:port      cache one origin for every host
  edged -config edged.yaml [flags]    run a configuration file; flags win over it
  edged -check-config edged.yaml      validate a configuration file and exit
  edged purge -h                      purge content from a running edged (see docs/purge.md)
  edged healthcheck [-url URL]        exit 0 if a running edged's /healthz answers 200 (containers)
  edged -version                      print the version, commit, build date and Go version

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	def := config.Default() // the defaults named in the help come from the declarations
	fs := flag.NewFlagSet("edged", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "read the configuration from `FILE` (YAML; see docs/configuration.md)")
	fs.StringVar(&o.checkConfig, "check-config", "", "validate the configuration `FILE`, print the result and exit (status 1 if invalid)")
	fs.StringVar(&o.origin, "origin", "", "proxy and cache the single origin `URL` (http://host:port) for every host, replacing the file's sites")
	fs.StringVar(&o.listen, "listen", "", "edge listener `ADDR` (host:port; default "+def.Listen+")")
	fs.StringVar(&o.admin, "admin", "", "admin listener `ADDR` for /metrics and /healthz (default "+def.Admin.Listen+")")
	fs.StringVar(&o.logLevel, "log-level", "", "operational log `LEVEL`: debug, info, warn or error (default "+def.Log.Level+")")
	fs.StringVar(&o.http1, "http1", "", "HTTP/1 `SERVER`: edged (its own loop) or net/http (default "+def.Server.HTTP1+")")
	fs.StringVar(&o.tlsListen, "tls-listen", "", "TLS listener `ADDR` (HTTP/2 and HTTP/1.1 by ALPN); needs -cert and -key or tls.certificates")
	fs.StringVar(&o.certFile, "cert", "", "PEM certificate chain `FILE` for the TLS listener (replaces tls.certificates)")
	fs.StringVar(&o.keyFile, "key", "", "PEM private key `FILE` for -cert")
	fs.StringVar(&o.purgeToken, "purge-token", "", "accept bearer `TOKEN` for purges, valid for all sites (also $EDGED_PURGE_TOKEN)")
	fs.StringVar(&o.data, "data", "", "disk-tier data `DIR` (overrides cache.disk.path; default: the user's cache directory + /edged)")
	fs.BoolVar(&o.version, "version", false, "print the version, commit, build date and Go version, and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nThe admin listener serves /metrics (Prometheus) and /healthz. Signals: SIGINT or SIGTERM drains and exits; SIGHUP reloads the configuration file (flags still win) and the TLS certificates; SIGUSR1 reopens log.access_file (for logrotate); SIGUSR2 upgrades to the binary now at this path (docs/operations.md).\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edged: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return nil, errUsage
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// flipper adapts tableflip to the daemon's upgrader: listeners are keyed by
// role and address, so that two ":0" listeners are not confused when the
// successor looks them up.
type flipper struct{ *tableflip.Upgrader }

func (f flipper) Listen(role, addr string) (net.Listener, error) {
	return f.ListenWithCallback("tcp", role+"@"+addr, func(network, key string) (net.Listener, error) {
		_, a, _ := strings.Cut(key, "@")
		return net.Listen(network, a)
	})
}
