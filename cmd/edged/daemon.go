package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/certs"
	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/internal/sampleorigin"
	"github.com/edged-proxy/edged/internal/sdnotify"
	"github.com/edged-proxy/edged/lb"
	"github.com/edged-proxy/edged/purge"
	"github.com/edged-proxy/edged/storage"
)

// listening reports the bound addresses once the daemon accepts requests.
type listening struct {
	Edge, Admin string
	// TLS is the TLS listener's address, or "".
	TLS string
	// Sample is the built-in sample origin's address, or "".
	Sample string
	// Peer is the peer listener's address, or "" when the node runs alone.
	Peer string
	// Gossip is the gossip membership's address, or "" (alone, a static
	// peer list, or not joined yet after an upgrade).
	Gossip string
}

// run is the whole daemon: flags, configuration, wiring, serving until ctx
// ends, graceful shutdown. ready, if not nil, is called once listening.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(listening)) error {
	return runWith(ctx, args, stdout, stderr, ready, nil)
}

// upgrader is the zero-downtime upgrade machinery (tableflip in the real
// daemon): it hands listening sockets to a new process and says when the
// old one has let go.
type upgrader interface {
	// Listen returns the listener for role ("edge", "admin", "tls") at
	// addr, inherited from the previous process when there is one (by role
	// and address, so that several ":0" listeners stay apart).
	Listen(role, addr string) (net.Listener, error)
	Ready() error
	HasParent() bool
	WaitForParent(ctx context.Context) error
	// Exit is closed once a successor process has taken over (or the
	// upgrader was stopped).
	Exit() <-chan struct{}
}

// runWith is run with an optional upgrader (nil: plain listeners).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(listening), upg upgrader) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		printVersion(stdout)
		return nil
	}
	if o.checkConfig != "" {
		cfg, err := config.Load(o.checkConfig, startupChecks)
		if err != nil {
			return err
		}
		for i, s := range cfg.Sites {
			if s.Upstream.TLS.InsecureSkipVerify {
				fmt.Fprintf(stdout, "%s: warning: sites[%d].upstream.tls.insecure_skip_verify: origin certificates of site %s are not verified\n", o.checkConfig, i, s.Name)
			}
		}
		fmt.Fprintf(stdout, "%s: configuration is valid (%d sites)\n", o.checkConfig, len(cfg.Sites))
		return nil
	}
	cfg, err := loadConfig(o)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}))
	al, err := openAccessLog(cfg.Log, stdout)
	if err != nil {
		return err
	}
	defer al.close()
	defer al.reopenOnUSR1(ctx, logger)()
	access := al.writer()
	// A process that takes over from another one cannot open the data
	// directory while the old one holds it: it serves from memory and
	// attaches the disk tier once the old process has exited.
	deferDisk := upg != nil && upg.HasParent() && cfg.Cache.Disk.Enabled
	setMemoryLimit(cfg, logger)
	d, err := newDaemon(cfg, logger, access, deferDisk)
	if err != nil {
		return err
	}
	d.opts = o
	d.upg = upg
	return d.serve(ctx, ready)
}

// startupChecks finds what starting on cfg would fail on beyond the
// file's own rules, for -check-config: the sites' rules compiled
// (ruleChecks), the purge tokens as the purge API
// takes them (duplicate values, whitespace), every TLS certificate and
// key loaded as the certificate store does (when tls.listen is set, as
// starting does), the origin TLS files (originTLSChecks) and the health
// checks (healthCheckChecks), the cluster secret (clusterChecks) and the
// NATS credential and TLS files (natsChecks); each problem is reported at
// its key.
func startupChecks(cfg *config.Config) []*config.Error {
	errs := append(originTLSChecks(cfg), ruleChecks(cfg)...)
	errs = append(errs, healthCheckChecks(cfg)...)
	errs = append(errs, clusterChecks(cfg)...)
	errs = append(errs, natsChecks(cfg)...)
	errs = append(errs, accessLogChecks(cfg)...)
	if te, ok := errors.AsType[*purge.TokenError](purge.CheckTokens(purgeTokens(cfg))); ok {
		errs = append(errs, &config.Error{Path: fmt.Sprintf("purge.tokens[%d].token", te.Index), Msg: te.Msg})
	}
	if cfg.TLS.Listen == "" {
		return errs
	}
	for i, c := range cfg.TLS.Certificates {
		err := certs.Check(certs.Pair{CertFile: c.Cert, KeyFile: c.Key})
		if err == nil {
			continue
		}
		path, msg := fmt.Sprintf("tls.certificates[%d]", i), err.Error()
		if fe, ok := errors.AsType[*certs.FileError](err); ok {
			path += map[bool]string{false: ".cert", true: ".key"}[fe.Key]
			msg = fe.File + ": " + fe.Err.Error()
		}
		errs = append(errs, &config.Error{Path: path, Msg: msg})
	}
	return errs
}

// originTLSChecks reads the origin TLS files of every site (upstream.tls)
// as its pool will, reporting a bad one at its key. Starting and reloading
// run it too, so that a bad file is reported at its line there as well.
func originTLSChecks(cfg *config.Config) []*config.Error {
	var errs []*config.Error
	check := func(path string, t config.UpstreamTLS) {
		err := lb.CheckTLS(upstreamTLS(t))
		if err == nil {
			return
		}
		msg := err.Error()
		if fe, ok := errors.AsType[*lb.TLSFileError](err); ok {
			path += map[string]string{"CAFile": ".ca", "CertFile": ".client_cert", "KeyFile": ".client_key"}[fe.Field]
			msg = fe.File + ": " + fe.Err.Error()
		}
		errs = append(errs, &config.Error{Path: path, Msg: msg})
	}
	for i, s := range cfg.Sites {
		check(fmt.Sprintf("sites[%d].upstream.tls", i), s.Upstream.TLS)
		for j, p := range s.Pools { // a rule's pool is built the same way
			check(fmt.Sprintf("sites[%d].pools[%d].upstream.tls", i, j), p.Upstream.TLS)
		}
	}
	return errs
}

// loadConfig reads the file (or the embedded default), checks its origin
// TLS files, and applies the command-line overrides, which win.
func loadConfig(o *options) (*config.Config, error) {
	cfg := config.Default()
	if o.config != "" {
		var checks []config.Check
		if !o.set["origin"] { // -origin replaces the file's sites
			checks = append(checks, originTLSChecks, ruleChecks)
			checks = append(checks, healthCheckChecks, accessLogChecks)
		}
		checks = append(checks, natsChecks)
		var err error
		if cfg, err = config.Load(o.config, checks...); err != nil {
			return nil, err
		}
	}
	if o.set["origin"] {
		cfg.Sites = []config.Site{config.NewSite("default", []string{"*"}, o.origin)}
	}
	if o.set["listen"] {
		cfg.Listen = o.listen
	}
	if o.set["admin"] {
		cfg.Admin.Listen = o.admin
	}
	if o.set["log-level"] {
		cfg.Log.Level = o.logLevel
	}
	if o.set["http1"] {
		cfg.Server.HTTP1 = o.http1
	}
	if o.set["tls-listen"] {
		cfg.TLS.Listen = o.tlsListen
	}
	if o.set["cert"] || o.set["key"] {
		cfg.TLS.Certificates = []config.Certificate{{Cert: o.certFile, Key: o.keyFile, Default: true}}
	}
	if o.set["data"] {
		cfg.Cache.Disk.Enabled = true
		cfg.Cache.Disk.Path = o.data
	}
	switch {
	case o.set["purge-token"]:
		cfg.Purge.Tokens = append(cfg.Purge.Tokens, config.PurgeToken{Name: "command-line", Token: o.purgeToken})
	case os.Getenv(purge.TokenEnv) != "":
		cfg.Purge.Tokens = append(cfg.Purge.Tokens, config.PurgeToken{Name: purge.TokenEnv, Token: os.Getenv(purge.TokenEnv)})
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("after applying command-line flags: %w", err)
	}
	return cfg, nil
}

// daemon is one running edged: its servers and what they share.
type daemon struct {
	cfg      *config.Config
	log      *slog.Logger
	cache    *cache.Cache
	handler  *edge.Handler
	lbm      *lb.Metrics
	opts     *options   // for reloads; nil in tests that build a daemon directly
	upg      upgrader   // nil: no zero-downtime upgrades
	mu       sync.Mutex // guards pools, cfg.Sites, disk and closed
	closed   bool
	purger   *purge.Purger
	metrics  *edge.Metrics
	disk     *storage.Store
	pools    []*lb.Pool
	edgeSrv  *edge.Server
	tlsSrv   *edge.Server
	certs    *certs.Store
	adminSrv *http.Server
	sample   *http.Server
	sampleLn net.Listener
	reg      *prometheus.Registry
	cluster  *clusterRef              // nil when the node runs alone
	peerSrv  *edge.Server             // the peer listener's server; nil when alone
	ops      *opsMetrics              // reloads, open client connections
	tracing  *sdktrace.TracerProvider // nil with tracing off (tracing.go)
}

// newDaemon wires the packages together from cfg, adding the built-in
// sample origin when cfg has no sites. With deferDisk the disk tier is left
// for attachDiskAfterParent.
func newDaemon(cfg *config.Config, logger *slog.Logger, access io.Writer, deferDisk bool) (*daemon, error) {
	d := &daemon{cfg: cfg, log: logger}
	if len(cfg.Sites) == 0 {
		if err := d.startSample(); err != nil {
			return nil, err
		}
	}
	if err := d.build(access, deferDisk); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// startSample listens for the built-in sample origin and makes it the only
// site; serve serves it.
func (d *daemon) startSample() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("sample origin: %w", err)
	}
	d.sampleLn = ln
	d.sample = &http.Server{Handler: sampleorigin.New(), ReadHeaderTimeout: 10 * time.Second}
	d.cfg.Sites = []config.Site{config.NewSite("sample", []string{"*"}, "http://"+ln.Addr().String())}
	if err := d.cfg.Validate(); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// build opens the disk tier (unless deferDisk) and builds the cache, the
// sites, the purger, the edge handler and the servers. On error the caller
// closes what was built.
func (d *daemon) build(access io.Writer, deferDisk bool) error {
	cfg := d.cfg
	if cfg.Cache.Disk.Enabled && !deferDisk {
		disk, err := openDisk(cfg.Cache.Disk, d.log)
		if err != nil {
			return err
		}
		d.disk = disk
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(buildInfoGauge())
	d.reg = reg
	d.ops = newOpsMetrics(reg, time.Now())
	if cfg.Cache.Disk.Enabled {
		registerDiskBudget(reg, cfg.Cache.Disk.MaxBytes.Int64())
	}
	if err := d.startTracing(); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	ccfg := cacheConfig(cfg, d.disk, reg, d.log)
	ccfg.Tracer = d.tracer("cache")
	c, err := cache.New(ccfg)
	if err != nil {
		return err
	}
	d.cache = c
	if d.disk != nil {
		d.warmStart()
	}
	d.lbm = lb.NewMetrics(reg)
	sites, pools, err := buildSites(cfg.Sites, d.lbm, d.log, nil)
	if err != nil {
		return err
	}
	d.pools = pools
	if d.metrics, err = edge.NewMetrics(reg); err != nil {
		return err
	}
	var h *edge.Handler
	d.purger, err = newPurger(cfg, c, func(host string) string { return h.SiteFor(host) }, reg, d.log)
	if err != nil {
		return err
	}
	hcfg := handlerConfig(cfg, sites, c, d.metrics, d.purger.MethodHandler(), access, d.log)
	hcfg.Tracer = d.tracer("edge")
	if cfg.Cluster.Listen != "" {
		secret, err := readClusterSecret(cfg.Cluster.SecretFile)
		if err != nil {
			return fmt.Errorf("cluster.secret_file: %w", err)
		}
		d.cluster = &clusterRef{name: nodeName(cfg)}
		hcfg.Cluster, hcfg.PeerToken = d.cluster, peerToken(secret)
		if cfg.Purge.NATS.URL == "" {
			d.log.Warn("cluster without purge.nats: a purge reaches only the node that receives it, not the other nodes' copies")
		}
	}
	h, err = edge.New(hcfg)
	if err != nil {
		return err
	}
	d.handler = h
	srvCfg := serverConfig(cfg.Server, d.metrics, d.log)
	if d.edgeSrv, err = edge.NewServer(h, srvCfg); err != nil {
		return err
	}
	if d.cluster != nil {
		peerCfg := srvCfg
		peerCfg.Peer, peerCfg.H2C = true, false
		if d.peerSrv, err = edge.NewServer(h, peerCfg); err != nil {
			return err
		}
	}
	if cfg.TLS.Listen != "" {
		if d.certs, err = certs.New(certsConfig(cfg.TLS, reg, d.log)); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if d.tlsSrv, err = edge.NewServer(h, srvCfg); err != nil {
			return err
		}
	}
	d.adminSrv = adminServer(reg, d.purger, d.clusterStatus, d.guardedPages)
	return nil
}

// adminServer serves /metrics, /healthz, the purge API, the PoP's status
// (/cluster), and what guarded adds (the status page and pprof, as
// admin.status and admin.pprof say).
func adminServer(reg *prometheus.Registry, purger http.Handler, cluster http.HandlerFunc, guarded func(*http.ServeMux)) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", cluster)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/purge", purger)
	mux.Handle("/purge/", purger)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
	guarded(mux)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
}

// listenFunc opens the listener for a role ("edge", "admin", "tls").
type listenFunc func(role, addr string) (net.Listener, error)

// serve listens, serves until ctx ends, then drains within the configured
// shutdown timeout.
func (d *daemon) serve(ctx context.Context, ready func(listening)) error {
	defer d.close()
	listen := listenFunc(func(_, addr string) (net.Listener, error) { return net.Listen("tcp", addr) })
	if d.upg != nil {
		listen = d.upg.Listen // inherited from the previous process after an upgrade
	}
	edgeLn, err := d.edgeListener(listen, "edge", d.cfg.Listen)
	if err != nil {
		return err
	}
	adminLn, err := listen("admin", d.cfg.Admin.Listen)
	if err != nil {
		edgeLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	errc := make(chan error, 5)
	serveOn := func(name string, serve func(net.Listener) error, ln net.Listener) {
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s: %w", name, err)
		}
	}
	l := listening{Edge: edgeLn.Addr().String(), Admin: adminLn.Addr().String()}
	if d.tlsSrv != nil {
		tlsLn, err := d.edgeListener(listen, "tls", d.cfg.TLS.Listen)
		if err != nil {
			edgeLn.Close()
			adminLn.Close()
			return err
		}
		l.TLS = tlsLn.Addr().String()
		tlsCfg := d.certs.TLSConfig()
		go serveOn("tls", func(ln net.Listener) error { return d.tlsSrv.ServeTLS(ln, tlsCfg) }, tlsLn)
		wctx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go d.certs.Watch(wctx, 0)
		go d.rotateTicketKeys(wctx)
	}
	peerLn, err := d.listenPeer(listen)
	if err != nil {
		edgeLn.Close()
		adminLn.Close()
		return err
	}
	if peerLn != nil {
		l.Peer = peerLn.Addr().String()
		go serveOn("peer", d.peerSrv.Serve, peerLn)
		if err := d.startCluster(ctx, l.Peer); err != nil {
			edgeLn.Close()
			adminLn.Close()
			return err
		}
		if c := d.cluster.c.Load(); c != nil {
			l.Gossip = c.GossipAddr()
		}
	}
	stopReload := d.reloadOnHangup(ctx)
	defer stopReload()
	// The follower ends before serve returns (and so before the disk tier
	// is closed), and reads memoryLimitEvery here, once, so that no
	// goroutine of this daemon is left running when the next one starts.
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func(memBytes int64, every time.Duration) {
		defer close(followed)
		d.followMemoryLimit(followCtx, memBytes, every)
	}(d.cfg.Cache.Memory.MaxBytes.Int64(), memoryLimitEvery)
	defer func() { stopFollow(); <-followed }()
	if d.sample != nil {
		l.Sample = d.sampleLn.Addr().String()
		go serveOn("sample origin", d.sample.Serve, d.sampleLn)
	}
	go serveOn("edge", d.edgeSrv.Serve, edgeLn)
	go serveOn("admin", d.adminSrv.Serve, adminLn)
	d.announce(ctx, l, ready)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	d.shutdown(err == nil)
	return err
}

// edgeListener opens the client-facing listener for role at addr with the
// PROXY protocol reader (when server.proxy_protocol is on) and the
// connection limits both client-facing listeners have, the reader below
// the limits so that they count the addresses its headers name. The edge
// server stacks TLS and the strict HTTP/1 rules on it.
func (d *daemon) edgeListener(listen listenFunc, role, addr string) (net.Listener, error) {
	ln, err := listen(role, addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", role, err)
	}
	ln = edge.CountConns(ln, &d.ops.openConns)
	pln, err := edge.ListenProxyProtocol(ln, proxyProtocol(d.cfg.Server, d.metrics))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s listener: %w", role, err)
	}
	return edge.LimitListener(pln, connLimits(d.cfg.Server, d.metrics)), nil
}

// reloadOnHangup reloads the configuration on each SIGHUP until ctx ends
// or the returned stop is called.
func (d *daemon) reloadOnHangup(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	hctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-hup:
				d.ops.reloaded(d.reload(), time.Now())
			case <-hctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
	}
}

// announce logs the listeners and tells ready, systemd and the upgrader
// that the daemon accepts requests.
func (d *daemon) announce(ctx context.Context, l listening, ready func(listening)) {
	sites := make([]string, len(d.cfg.Sites))
	for i, s := range d.cfg.Sites {
		sites[i] = s.Name + "=" + strings.Join(s.Hosts, ",")
	}
	d.log.Info("edged listening", "edge", l.Edge, "tls", l.TLS, "admin", l.Admin, "peer", l.Peer, "gossip", l.Gossip, "http1", d.cfg.Server.HTTP1, "sample_origin", l.Sample, "sites", sites)
	if ready != nil {
		ready(l)
	}
	if err := sdnotify.Ready(); err != nil {
		d.log.Warn("could not notify systemd", "err", err)
	}
	if d.upg != nil {
		if err := d.upg.Ready(); err != nil {
			d.log.Error("upgrade: could not signal readiness", "err", err)
		}
		if d.cfg.Cache.Disk.Enabled && d.disk == nil {
			go d.attachDiskAfterParent(ctx)
		}
	}
}

// shutdown drains the servers within the shutdown timeout. clean is false
// when a server failed, in which case no successor is waited for.
func (d *daemon) shutdown(clean bool) {
	sdnotify.Stopping()
	d.leaveCluster() // the other nodes stop asking this one before its listeners close
	if clean && d.succeeded() {
		// The successor has the listeners: keep answering for a moment,
		// each response closing its connection, so that keep-alive clients
		// reconnect (to the successor) between requests rather than racing
		// the close of an idle connection. Not on a plain SIGTERM: there
		// is no one to move to, and the drain would hold every stop for a
		// second.
		d.handler.Drain()
		time.Sleep(min(time.Second, d.cfg.Server.ShutdownTimeout.Std()))
	}
	d.log.Info("edged shutting down", "timeout", d.cfg.Server.ShutdownTimeout.Std().String())
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.Server.ShutdownTimeout.Std())
	defer cancel()
	serr := errors.Join(d.edgeSrv.Shutdown(sctx), d.adminSrv.Shutdown(sctx))
	if d.peerSrv != nil {
		serr = errors.Join(serr, d.peerSrv.Shutdown(sctx))
	}
	if d.tlsSrv != nil {
		serr = errors.Join(serr, d.tlsSrv.Shutdown(sctx))
	}
	if d.sample != nil {
		serr = errors.Join(serr, d.sample.Shutdown(sctx))
	}
	if serr != nil {
		d.log.Warn("shutdown did not finish cleanly", "err", serr)
	}
}

// succeeded reports whether a successor process has taken over from this
// one (a zero-downtime upgrade).
func (d *daemon) succeeded() bool {
	if d.upg == nil {
		return false
	}
	select {
	case <-d.upg.Exit():
		return true
	default:
		return false
	}
}

// buildSites makes the edge sites and their origin pools from the
// configuration. Each pool takes over the unchanged shards of the running
// pool of the same name in prev (the site's name, or "site/pool" for a
// rule pool; prev is nil at start), so their connections stay warm
// (lb.Config.Previous).
func buildSites(cfgSites []config.Site, lbm *lb.Metrics, logger *slog.Logger, prev []*lb.Pool) ([]*edge.Site, []*lb.Pool, error) {
	prevBySite := make(map[string]*lb.Pool, len(prev))
	for _, p := range prev {
		prevBySite[p.Name()] = p
	}
	var sites []*edge.Site
	var pools []*lb.Pool
	for i, s := range cfgSites {
		if s.Upstream.TLS.InsecureSkipVerify {
			logger.Warn("origin TLS certificates are NOT verified: anyone on the path to the origins can read and change their traffic; remove insecure_skip_verify (use ca and server_name instead)",
				"site", s.Name, "key", fmt.Sprintf("sites[%d].upstream.tls.insecure_skip_verify", i))
		}
		pc := poolConfig(s, lbm, logger)
		pc.Previous = prevBySite[s.Name]
		pool, err := lb.NewPool(pc)
		if err != nil {
			for _, p := range pools {
				p.Close()
			}
			return nil, nil, fmt.Errorf("site %s: %w", s.Name, err)
		}
		pools = append(pools, pool)
		site := edgeSite(s, pool)
		if site.Rules, err = compileRules(s); err == nil {
			site.Pools, pools, err = rulePools(s, pools, lbm, logger, prevBySite)
		}
		if err != nil {
			for _, p := range pools {
				p.Close()
			}
			return nil, nil, fmt.Errorf("site %s: %w", s.Name, err)
		}
		sites = append(sites, site)
	}
	return sites, pools, nil
}

// The functions below turn the configuration into each package's own
// Config. They pass every configured value explicitly, so the packages'
// zero-value defaults (kept for library users) never apply to a configured
// key: the defaults an operator sees are the ones declared in
// internal/config, and TestEveryKeyReachesItsPackage fails when a key is
// not passed on. A zero whose meaning differs between the two is mapped
// here (rangeForward).

// cacheConfig is the cache's configuration.
func cacheConfig(cfg *config.Config, disk *storage.Store, reg prometheus.Registerer, logger *slog.Logger) cache.Config {
	return cache.Config{
		Disk:                disk,
		RangeForwardOffset:  rangeForward(cfg.Cache.RangeForwardOffset.Int64()),
		TagHeaders:          cfg.Purge.TagHeaders,
		DiskAdmission:       cfg.Cache.Disk.Admission,
		DiskAdmitLargerThan: diskAdmitLargerThan(cfg.Cache.Disk.AdmitLargerThan.Int64()),
		DiskAdmitWindow:     cfg.Cache.Disk.AdmitWindow,
		MaxBytes:            cfg.Cache.Memory.MaxBytes.Int64(),
		MaxObjectBytes:      cfg.Cache.Memory.MaxObjectBytes.Int64(),
		FillTimeout:         cfg.Cache.FillTimeout.Std(),
		Registerer:          reg,
		Logger:              logger,
	}
}

// diskAdmitLargerThan maps the configuration's "0 = every body is larger"
// to the cache's value for it (the cache reads 0 as its default).
func diskAdmitLargerThan(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// rangeForward maps the configuration's "0 = never forward" to the cache's
// negative value for it.
func rangeForward(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// handlerConfig is the edge handler's configuration.
func handlerConfig(cfg *config.Config, sites []*edge.Site, c *cache.Cache, m *edge.Metrics, purgeMethod http.Handler, access io.Writer, logger *slog.Logger) edge.Config {
	var strip []string
	if cfg.Purge.StripTagHeaders {
		strip = cfg.Purge.TagHeaders
	}
	return edge.Config{
		PurgeHandler:         purgeMethod,
		CacheStatusKey:       cfg.Cache.StatusKey,
		WebSocketIdleTimeout: cfg.Server.WebSocketIdleTimeout.Std(),
		StripResponseHeaders: strip,
		Sites:                sites,
		UnknownHostStatus:    cfg.UnknownHostStatus,
		Cache:                c,
		Metrics:              m,
		AccessLog:            access,
		AccessFormat:         cfg.Log.AccessFormat,
		AccessFields:         cfg.Log.AccessFields,
		AccessSample:         cfg.Log.AccessSample,
		Logger:               logger,
		WriteTimeout:         cfg.Server.WriteTimeout.Std(),
		TrustedProxies:       cfg.Server.TrustedProxies,
		ClientIPHeader:       cfg.Server.ClientIPHeader,
	}
}

// serverConfig is the configuration of the edge's servers (cleartext and
// TLS), with the strict HTTP/1 rules; prior-knowledge HTTP/2 is accepted
// on the cleartext listener only, when server.h2c is on.
func serverConfig(sv config.Server, m *edge.Metrics, logger *slog.Logger) edge.ServerConfig {
	return edge.ServerConfig{
		HTTP1: sv.HTTP1,
		Strict: edge.StrictConfig{
			MaxHeaderBytes: int(sv.MaxHeaderBytes.Int64()),
			OnReject: func(reason string, status int, remote net.Addr) {
				m.Rejected(reason, status)
				logger.Debug("request rejected", "reason", reason, "status", status, "client", remote.String())
			},
		},
		ReadHeaderTimeout: sv.ReadHeaderTimeout.Std(),
		FirstByteTimeout:  sv.FirstByteTimeout.Std(),
		ReadTimeout:       sv.ReadTimeout.Std(),
		IdleTimeout:       sv.IdleTimeout.Std(),
		MaxHeaderBytes:    int(sv.MaxHeaderBytes.Int64()),
		ErrorLog:          logger,
		H2C:               sv.H2C,
		Metrics:           m,
	}
}

// proxyProtocol is the PROXY protocol reading of the edge listeners,
// its rejections counted in m (nil: not counted).
func proxyProtocol(sv config.Server, m *edge.Metrics) edge.ProxyProtocol {
	pp := edge.ProxyProtocol{Mode: sv.ProxyProtocol, Trusted: sv.TrustedProxies, Timeout: sv.ProxyProtocolTimeout.Std()}
	if m != nil {
		pp.OnReject = m.ProxyRejected
	}
	return pp
}

// connLimits are the client connection limits of the edge listeners,
// counted in m (nil: not counted).
func connLimits(sv config.Server, m *edge.Metrics) edge.ConnLimits {
	lim := edge.ConnLimits{MaxConns: sv.MaxConns, MaxConnsPerIP: sv.MaxConnsPerIP}
	if m != nil {
		lim.OnRefuse, lim.OnEvict = m.Refused, m.Evicted
	}
	return lim
}

// certsConfig is the TLS certificate store's configuration.
func certsConfig(t config.TLS, reg prometheus.Registerer, logger *slog.Logger) certs.Config {
	pairs := make([]certs.Pair, len(t.Certificates))
	for i, c := range t.Certificates {
		pairs[i] = certs.Pair{CertFile: c.Cert, KeyFile: c.Key, Default: c.Default}
	}
	return certs.Config{Pairs: pairs, MinVersion: tlsVersion(t.MinVersion), Logger: logger, Registerer: reg}
}

// poolConfig is the configuration of one site's origin pool.
func poolConfig(s config.Site, lbm *lb.Metrics, logger *slog.Logger) lb.Config {
	shards := make([]lb.Shard, len(s.Origins))
	for i, o := range s.Origins {
		shards[i] = lb.Shard{Name: o.Name, URL: o.URL, Weight: o.Weight}
	}
	u := s.Upstream
	return lb.Config{
		Name:                   s.Name,
		Shards:                 shards,
		MaxIdleConnsPerShard:   u.MaxIdleConnsPerShard,
		MaxConnsPerShard:       u.MaxConnsPerShard,
		IdleConnTimeout:        u.IdleConnTimeout.Std(),
		DialTimeout:            u.DialTimeout.Std(),
		ResponseHeaderTimeout:  u.ResponseHeaderTimeout.Std(),
		DownFor:                u.DownFor.Std(),
		Outlier:                outlierConfig(u),
		Retry:                  retryConfig(u),
		MaxResponseHeaderBytes: u.MaxResponseHeaderBytes.Int64(),
		Policy:                 u.Policy,
		HashBalanceFactor:      u.HashBalanceFactor,
		Protocol:               u.Protocol,
		TLS:                    upstreamTLS(u.TLS),
		MaxPendingPerShard:     noLimit(u.MaxPendingPerShard),
		MaxInFlightPerShard:    noLimit(u.MaxInFlightPerShard),
		TLSHandshakeTimeout:    u.TLSHandshakeTimeout.Std(),
		BodyIdleTimeout:        noneIfZero(u.BodyIdleTimeout.Std()),
		HealthCheck:            healthCheckConfig(u.HealthCheck),
		Metrics:                lbm,
		Logger:                 logger,
	}
}

// outlierConfig maps a site's outlier keys to lb.Outlier, where zero means
// the default: eject_after 0 turns detection off, slow_start 0 means none.
func outlierConfig(u config.Upstream) lb.Outlier {
	o := lb.Outlier{
		Disabled:            u.EjectAfter == 0,
		ConsecutiveFailures: u.EjectAfter,
		BaseEjection:        u.EjectFor.Std(),
		MaxEjection:         u.EjectForMax.Std(),
		MaxEjectedPercent:   u.MaxEjectedPercent,
		SlowStart:           u.SlowStart.Std(),
	}
	if o.SlowStart == 0 {
		o.SlowStart = -1
	}
	return o
}

// retryConfig maps a site's retry keys to lb.Retry, where zero means the
// default and negative means none: retries 0, retry_budget_percent 0 and
// retry_budget_min_per_second 0 mean none.
func retryConfig(u config.Upstream) lb.Retry {
	neg := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	return lb.Retry{
		Max:           neg(u.Retries),
		OnStatus:      u.RetryOnStatus,
		BudgetPercent: neg(u.RetryBudgetPercent),
		BudgetWindow:  u.RetryBudgetWindow.Std(),
		MinPerSecond:  neg(u.RetryBudgetMinPerSecond),
	}
}

// noLimit maps a circuit-breaking limit key, where 0 means unlimited, to
// lb's form, where zero means the default and negative none.
func noLimit(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// noneIfZero maps a timeout key where 0 means none to lb's form, where
// zero means the default and negative none.
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// upstreamTLS is the lb form of a site's upstream.tls.
func upstreamTLS(t config.UpstreamTLS) lb.TLS {
	return lb.TLS{
		ServerName:         t.ServerName,
		CAFile:             t.CA,
		CertFile:           t.ClientCert,
		KeyFile:            t.ClientKey,
		MinVersion:         tlsVersion(t.MinVersion),
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
}

// healthCheckConfig is the lb form of a site's upstream.health_check,
// where jitter_percent 0 means none (lb: negative).
func healthCheckConfig(h config.UpstreamHealthCheck) lb.HealthCheck {
	jitter := h.JitterPercent
	if jitter == 0 {
		jitter = -1
	}
	return lb.HealthCheck{
		Enabled:        h.Enabled,
		Path:           h.Path,
		Method:         h.Method,
		Host:           h.Host,
		Interval:       h.Interval.Std(),
		JitterPercent:  jitter,
		Timeout:        h.Timeout.Std(),
		ExpectedStatus: h.ExpectedStatus,
		Rise:           h.Rise,
		Fall:           h.Fall,
	}
}

// healthCheckChecks checks the health_check of every site's upstream and
// of its further pools as their pools will (lb owns the grammar of path,
// host and expected_status), reporting a problem at its key. Starting and
// reloading run it too.
func healthCheckChecks(cfg *config.Config) []*config.Error {
	var errs []*config.Error
	check := func(path string, h config.UpstreamHealthCheck) {
		if e := healthCheckError(path, h); e != nil {
			errs = append(errs, e)
		}
	}
	for i, s := range cfg.Sites {
		check(fmt.Sprintf("sites[%d].upstream.health_check", i), s.Upstream.HealthCheck)
		for j, p := range s.Pools {
			check(fmt.Sprintf("sites[%d].pools[%d].upstream.health_check", i, j), p.Upstream.HealthCheck)
		}
	}
	return errs
}

// healthCheckError is the problem lb finds with h, at its key under path,
// or nil.
func healthCheckError(path string, h config.UpstreamHealthCheck) *config.Error {
	err := lb.CheckHealthCheck(healthCheckConfig(h))
	if err == nil {
		return nil
	}
	keys := map[string]string{"Path": "path", "Method": "method", "Host": "host", "Interval": "interval",
		"JitterPercent": "jitter_percent", "Timeout": "timeout", "ExpectedStatus": "expected_status", "Rise": "rise", "Fall": "fall"}
	msg := err.Error()
	if he, ok := errors.AsType[*lb.HealthCheckError](err); ok {
		path += "." + keys[he.Field]
		msg = he.Err.Error()
	}
	return &config.Error{Path: path, Msg: msg}
}

// tlsVersion maps a min_version value ("1.2", "1.3") to its tls constant.
func tlsVersion(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// edgeSite is one site of the edge handler, reaching its origins through
// origin.
func edgeSite(s config.Site, origin cache.Origin) *edge.Site {
	return &edge.Site{
		Name:          s.Name,
		Hosts:         s.Hosts,
		OriginHost:    s.OriginHost,
		Origin:        origin,
		CacheDisabled: !s.Cache.Enabled,
		Policy: rfc.Policy{
			DefaultTTL:           s.Cache.DefaultTTL.Std(),
			HeuristicFraction:    s.Cache.HeuristicFraction,
			HeuristicMax:         s.Cache.HeuristicMax.Std(),
			StaleWhileRevalidate: s.Cache.StaleWhileRevalidate.Std(),
			StaleIfError:         staleIfError(s.Cache.StaleIfError.Std()),
			NegativeTTL:          s.Cache.NegativeTTL.Std(),
			OwnTargetedHeaders:   s.Cache.OwnTargetedHeaders,
			TargetedHeaders:      s.Cache.TargetedHeaders,
		},
		KeepTargetedHeaders: s.Cache.KeepTargetedHeaders,
		Slice:               s.Cache.Slice.Int64(),
		MaxBodyBytes:        s.MaxBodyBytes.Int64(),
		NoWebSocket:         !s.WebSocket,
		UnkeyedHeaders:      s.UnkeyedHeaders,
		Methods:             s.Methods,
		Compression:         compression(s.Compression),
		AllowClients:        s.Clients.Allow,
		DenyClients:         s.Clients.Deny,
		RateLimit:           rateLimit(s.RateLimit),
	}
}

// compression is the coding form of a site's compression keys: min_bytes
// 0 means no minimum, which the Config spells as negative (its zero
// value is the default, 1 KiB).
func compression(c config.Compression) coding.Config {
	minBytes := c.MinBytes.Int64()
	if minBytes == 0 {
		minBytes = -1
	}
	return coding.Config{Enabled: c.Enabled, Types: c.Types, MinBytes: minBytes, Codings: c.Codings,
		BrotliLevel: c.BrotliLevel, ZstdLevel: c.ZstdLevel, GzipLevel: c.GzipLevel}
}

// staleIfError is the rfc.Policy form of a site's stale_if_error: 0
// disables the default window, which the Policy spells as negative (its
// zero value is the default, a day).
func staleIfError(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// storageOptions is the disk tier's configuration, in the user's cache
// directory when no path is configured.
func storageOptions(dc config.Disk, logger *slog.Logger) (storage.Options, error) {
	dir := dc.Path
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return storage.Options{}, fmt.Errorf("cache.disk.path is empty and there is no user cache directory (%v); set it or use -data", err)
		}
		dir = filepath.Join(base, "edged")
	}
	fsync := storage.FsyncAlways
	if dc.Fsync == "never" {
		fsync = storage.FsyncNever
	}
	pack := dc.PackBelow.Int64()
	if pack == 0 {
		pack = -1 // storage's zero value is its default
	}
	return storage.Options{Dir: dir, MaxBytes: dc.MaxBytes.Int64(), Fsync: fsync, Logger: logger,
		PackBelow: pack, SegmentBytes: dc.SegmentBytes.Int64()}, nil
}

// reload re-reads the configuration file (flags still win) and, if it is
// valid, swaps in its sites: hosts, origins, upstream settings and cache
// policy. Anything else (listeners, cache sizes, disk, purge) needs a
// restart, which is logged. A config that fails validation is rejected and
// the running one stays. The TLS certificates are re-read too.
func (d *daemon) reload() error {
	if d.certs != nil {
		if err := d.certs.Reload(); err == nil {
			d.log.Info("TLS certificates reloaded")
		}
	}
	if d.opts == nil || d.opts.config == "" {
		d.log.Info("reload: no configuration file to re-read")
		return nil
	}
	cfg, err := loadConfig(d.opts)
	if err != nil {
		d.log.Error("reload rejected: the running configuration stays", "err", err)
		return err
	}
	if len(cfg.Sites) == 0 {
		err := errors.New("the new configuration has no sites")
		d.log.Error("reload rejected: the running configuration stays", "err", err)
		return err
	}
	d.mu.Lock()
	running := d.pools
	d.mu.Unlock()
	sites, pools, err := buildSites(cfg.Sites, d.lbm, d.log, running)
	if err != nil {
		d.log.Error("reload rejected: the running configuration stays", "err", err)
		return err
	}
	if err := d.handler.SetSites(sites); err != nil {
		for _, p := range pools {
			p.Close()
		}
		d.log.Error("reload rejected: the running configuration stays", "err", err)
		return err
	}
	d.mu.Lock()
	old := d.pools
	d.pools = pools
	d.cfg.Sites = cfg.Sites
	d.mu.Unlock()
	for _, p := range old { // requests in flight keep using their pool
		p.Close() // leaves open the connections the new pools took over
	}
	if cfg.Listen != d.cfg.Listen || !reflect.DeepEqual(cfg.Admin, d.cfg.Admin) || cfg.TLS.Listen != d.cfg.TLS.Listen || !reflect.DeepEqual(cfg.Server, d.cfg.Server) ||
		cfg.Cache.Memory != d.cfg.Cache.Memory || cfg.Cache.Disk != d.cfg.Cache.Disk {
		d.log.Warn("reload: listener, admin, server, memory or disk settings changed; they take effect at the next restart or upgrade")
	}
	d.log.Info("configuration reloaded", "sites", len(sites))
	return nil
}

// attachDiskAfterParent opens the data directory once the process this one
// replaced has exited (releasing it), and gives it to the cache.
func (d *daemon) attachDiskAfterParent(ctx context.Context) {
	if err := d.upg.WaitForParent(ctx); err != nil {
		d.log.Warn("upgrade: the previous process did not exit cleanly", "err", err)
	}
	disk, err := openDisk(d.cfg.Cache.Disk, d.log)
	if err != nil {
		d.log.Error("upgrade: disk tier unavailable; serving from memory only", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		disk.Close()
		return
	}
	if err := d.cache.AttachDisk(disk); err != nil {
		d.log.Error("upgrade: attaching the disk tier", "err", err)
		disk.Close()
		return
	}
	d.disk = disk
	d.log.Info("upgrade: disk tier attached")
	d.warmStart()
}

// rotateTicketKeys rotates the TLS session-ticket keys twice a day.
func (d *daemon) rotateTicketKeys(ctx context.Context) {
	t := time.NewTicker(12 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.certs.RotateTicketKeys()
		case <-ctx.Done():
			return
		}
	}
}

func (d *daemon) closeSample() {
	if d.sampleLn != nil && d.sample != nil {
		d.sample.Close()
		d.sampleLn.Close()
	}
}

func (d *daemon) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.purger != nil {
		if err := d.purger.Close(); err != nil {
			d.log.Warn("closing the purger", "err", err)
		}
	}
	for _, p := range d.pools {
		p.Close()
	}
	d.closeCluster()
	if d.cache != nil {
		d.cache.Close() // waits for pending disk writes
	}
	if d.disk != nil {
		if err := d.disk.Close(); err != nil {
			d.log.Warn("closing the disk tier", "err", err)
		}
	}
	d.closeSample()
	d.stopTracing()
}

// openDisk opens the disk tier.
func openDisk(dc config.Disk, logger *slog.Logger) (*storage.Store, error) {
	opts, err := storageOptions(dc, logger)
	if err != nil {
		return nil, err
	}
	s, err := storage.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("disk tier at %s: %w", opts.Dir, err)
	}
	logger.Info("disk tier open", "path", opts.Dir, "max_bytes", dc.MaxBytes.String(), "fsync", dc.Fsync)
	return s, nil
}

// purgeTokens are the purge API's tokens from the configuration.
func purgeTokens(cfg *config.Config) []purge.Token {
	var ts []purge.Token
	for _, t := range cfg.Purge.Tokens {
		ts = append(ts, purge.Token{Name: t.Name, Value: t.Token, Sites: t.Sites})
	}
	return ts
}

// newPurger builds the purge API over the cache, with the fleet when
// purge.nats.url is set.
func newPurger(cfg *config.Config, c *cache.Cache, siteOf func(string) string, reg prometheus.Registerer, logger *slog.Logger) (*purge.Purger, error) {
	pc := purge.Config{
		Node:        cfg.Purge.Node,
		Invalidator: cacheInvalidator(c),
		SiteOf:      siteOf,
		Logger:      logger,
		Registerer:  reg,
	}
	pc.Tokens = purgeTokens(cfg)
	for _, c := range cfg.Purge.AllowCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("purge.allow_cidrs: %w", err)
		}
		pc.AllowCIDRs = append(pc.AllowCIDRs, p)
	}
	if n := cfg.Purge.NATS; n.URL != "" {
		pc.JoinFleet = fleetConfig(n).Join
	}
	p, err := purge.New(pc)
	if err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	return p, nil
}

// cacheInvalidator adapts the cache's Purge to the purge package's seam
// (cache may not import purge).
func cacheInvalidator(c *cache.Cache) purge.Invalidator {
	return purge.InvalidatorFunc(func(ctx context.Context, sel purge.Selector) (purge.Matched, error) {
		n, err := c.Purge(ctx, sel)
		return purge.Matched{URLs: n.URLs, Prefixes: n.Prefixes, Tags: n.Tags, Hosts: n.Hosts}, err
	})
}

// setMemoryLimit gives the Go runtime a soft memory limit of the memory
// tier's budget plus 256 MiB for everything else (connections, buffers,
// the disk index of a fresh start), so the heap does not grow to twice the
// cache before the collector runs; followMemoryLimit then adds the disk
// index's heap as it grows. GOMEMLIMIT, when set, wins.
func setMemoryLimit(cfg *config.Config, logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := memoryLimit(cfg.Cache.Memory.MaxBytes.Int64(), 0)
	debug.SetMemoryLimit(limit)
	logger.Debug("soft memory limit set", "bytes", limit)
}

// memoryLimit is the soft memory limit for a memory tier of memBytes (its
// budget is the heap its entries take: cache.Entry.cost) and a disk tier
// of diskObjects, whose in-memory index (recency order, key, tags) takes
// diskObjectHeap bytes an object: without it a disk of small objects
// (10 million, 2.5 GiB of index) would pin the heap at the limit and keep
// the collector running, its CPU capped at half the process's.
func memoryLimit(memBytes, diskObjects int64) int64 {
	return memBytes + diskObjects*diskObjectHeap + 256<<20
}

// diskObjectHeap bounds the disk index's heap per object, above the 163
// to 220 bytes storage's benchmarks measure (BenchmarkIndexMemory100k,
// BenchmarkOpenPacked), for keys longer than theirs.
const diskObjectHeap = 256

// memoryLimitEvery is how often followMemoryLimit looks at the disk tier.
var memoryLimitEvery = 10 * time.Second

// followMemoryLimit keeps the soft memory limit at memoryLimit for the
// disk tier's object count, checked every interval, until ctx ends.
// GOMEMLIMIT, when set, wins.
func (d *daemon) followMemoryLimit(ctx context.Context, memBytes int64, every time.Duration) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := memoryLimit(memBytes, 0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		disk := d.disk
		d.mu.Unlock()
		var objects int64
		if disk != nil {
			objects = disk.Stats().Objects
		}
		if limit := memoryLimit(memBytes, objects); limit != last {
			debug.SetMemoryLimit(limit)
			last = limit
		}
	}
}
