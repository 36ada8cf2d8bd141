package main

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/config"
)

// opsMetrics are the daemon's own series: configuration reloads and the
// client connections open on the edge listeners.
type opsMetrics struct {
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
	openConns  atomic.Int64 // edge.CountConns on the edge and TLS listeners
}

// newOpsMetrics registers the series on reg. The configuration read at
// start counts as the first successful load (as Prometheus's own
// prometheus_config_last_reload_success_timestamp_seconds does), so that
// time() minus the gauge is the running configuration's age.
func newOpsMetrics(reg prometheus.Registerer, now time.Time) *opsMetrics {
	m := &opsMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_config_reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: ok, or error (the running configuration stayed).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_config_last_reload_success_timestamp_seconds",
			Help: "When the running configuration was loaded (start or last successful reload), Unix seconds.",
		}),
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.lastReload.Set(float64(now.UnixNano()) / 1e9)
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edged_client_connections_open",
		Help: "Client connections open now on the edge listeners (cleartext and TLS), from accept to close.",
	}, func() float64 { return float64(m.openConns.Load()) })
	reg.MustRegister(m.reloads, m.lastReload, open)
	return m
}

// registerDiskBudget exports cache.disk.max_bytes, so that dashboards and
// alerts can set edged_disk_bytes against it.
func registerDiskBudget(reg prometheus.Registerer, maxBytes int64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edged_disk_max_bytes",
		Help: "The disk tier's budget (cache.disk.max_bytes).",
	}, func() float64 { return float64(maxBytes) }))
}

// reloaded counts one reload that ended with err.
func (m *opsMetrics) reloaded(err error, now time.Time) {
	if err != nil {
		m.reloads.WithLabelValues("error").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.lastReload.Set(float64(now.UnixNano()) / 1e9)
}

// adminGuard lets through requests for the admin listener's guarded pages
// (the status page, pprof): with tokens, those presenting one, as a bearer
// token or as a Basic password (which browsers prompt for); without,
// loopback clients only.
func adminGuard(tokens []config.AdminToken, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(tokens) == 0 {
			if !loopback(r.RemoteAddr) {
				http.Error(w, "this page answers loopback clients only; set admin.tokens to open it to others", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		if !validAdminToken(tokens, presentedToken(r)) {
			w.Header().Set("WWW-Authenticate", `Basic realm="edged admin", charset="UTF-8"`)
			http.Error(w, "an admin token is required (Authorization: Bearer TOKEN, or Basic with the token as password)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// presentedToken is the request's bearer token or Basic password, or "".
func presentedToken(r *http.Request) string {
	if _, pw, ok := r.BasicAuth(); ok {
		return pw
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// validAdminToken compares t with every token in constant time.
func validAdminToken(tokens []config.AdminToken, t string) bool {
	ok := 0
	for _, at := range tokens {
		ok |= subtle.ConstantTimeCompare([]byte(at.Token), []byte(t))
	}
	return t != "" && ok == 1
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guardedPages adds the status page and pprof to mux, as admin.status and
// admin.pprof say, behind adminGuard.
func (d *daemon) guardedPages(mux *http.ServeMux) {
	ac := d.cfg.Admin
	if ac.Status {
		sp := newStatusPage(d, time.Now())
		mux.Handle("GET /{$}", adminGuard(ac.Tokens, http.HandlerFunc(sp.serveHTML)))
		mux.Handle("GET /status.json", adminGuard(ac.Tokens, http.HandlerFunc(sp.serveJSON)))
	}
	if ac.Pprof {
		mux.Handle("/debug/pprof/", adminGuard(ac.Tokens, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", adminGuard(ac.Tokens, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", adminGuard(ac.Tokens, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", adminGuard(ac.Tokens, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", adminGuard(ac.Tokens, http.HandlerFunc(pprof.Trace)))
	}
}
