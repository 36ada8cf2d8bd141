package lb

// A configuration reload builds new pools and retires the old ones. So that
// a reload does not cost every origin a reconnect (and a TLS handshake), a
// new pool takes over the transport of each shard that did not change: same
// name, same URL, same settings the transport is built from. The open
// connections come with it, and their accounting (connStats, conns.go) too,
// so the series continue. The old pool keeps the transport for its requests
// in flight, and its Close leaves the connections open (shard.handedOver).
//
// The shard's health is the origin's, not the transport's, so it is carried
// over whenever name and URL match, even when the settings changed: a shard
// marked down stays down until its time, an ejected shard stays ejected (a
// reload must not be a way to send traffic back to a failing origin), and
// a shard in slow start continues its ramp. The ejection history (for the
// doubling) and the count of failures in a row come too. The new pool's
// cap on ejected shards applies to new ejections only.

import (
	"crypto/sha256"
	"crypto/tls"
	"os"
	"time"
)

// transportSettings is what a shard's transport is built from, besides the
// shard's URL. Two pools with equal settings build equal transports.
type transportSettings struct {
	pool                   string
	metrics                *Metrics
	protocol               string
	tls                    TLS
	tlsFiles               [32]byte // SHA-256 of the TLS files' contents
	tlsBase                *tls.Config
	maxIdle, maxConns      int
	idleTimeout, dial      time.Duration
	responseHeader         time.Duration
	tlsHandshake           time.Duration
	maxResponseHeaderBytes int64
}

// settingsOf returns cfg's transport settings; cfg has its defaults applied
// and its TLSClientConfig as the caller gave it. A TLS file that cannot be
// read is an error (NewPool would fail on it too).
func settingsOf(cfg *Config) (transportSettings, error) {
	st := transportSettings{
		pool: cfg.Name, metrics: cfg.Metrics, protocol: cfg.Protocol,
		tls: cfg.TLS, tlsBase: cfg.TLSClientConfig,
		maxIdle: cfg.MaxIdleConnsPerShard, maxConns: cfg.MaxConnsPerShard,
		idleTimeout: cfg.IdleConnTimeout, dial: cfg.DialTimeout,
		responseHeader: cfg.ResponseHeaderTimeout, maxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
		tlsHandshake: cfg.TLSHandshakeTimeout,
	}
	h := sha256.New()
	for _, f := range []string{cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile} {
		if f == "" {
			h.Write([]byte{0})
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return st, &TLSFileError{Field: tlsField(f, cfg.TLS), File: f, Err: readError(err)}
		}
		h.Write([]byte{1})
		h.Write(b)
		h.Write([]byte{0})
	}
	h.Sum(st.tlsFiles[:0])
	return st, nil
}

// tlsField names the TLS field that holds file f.
func tlsField(f string, t TLS) string {
	switch f {
	case t.CAFile:
		return "CAFile"
	case t.CertFile:
		return "CertFile"
	}
	return "KeyFile"
}

// takeOver gives each of p's shards its transport: prev's for a shard whose
// name, URL and settings are unchanged and that no other pool took over, a
// new one otherwise. It carries over the health of each shard whose name
// and URL are unchanged. prev may be nil.
func (p *Pool) takeOver(prev *Pool, cfg *Config) {
	for _, s := range p.shards {
		var ps *shard
		if prev != nil {
			if o := prev.byName[s.name]; o != nil && o.scheme == s.scheme && o.host == s.host {
				ps = o
			}
		}
		if ps != nil && prev.settings == p.settings && ps.handedOver.CompareAndSwap(false, true) {
			s.transport, s.conns = ps.transport, ps.conns
		} else {
			s.conns = newConnStats(cfg.Metrics.forConns(cfg.Name, s.name))
			s.transport = newTransport(cfg, s.conns)
		}
		if ps != nil {
			s.downUntil.Store(ps.downUntil.Load())
			p.ejector.inherit(s, prev.ejector, ps)
		}
	}
}

// inherit copies the outlier state of shard from of ejector from to s.
func (e *ejector) inherit(s *shard, from *ejector, of *shard) {
	src, dst := from.state[of], e.state[s]
	if src == nil || dst == nil {
		return
	}
	dst.failures.Store(src.failures.Load())
	dst.ejectedUntil.Store(src.ejectedUntil.Load())
	from.mu.Lock()
	ejections, last := src.ejections, src.lastEjectEnd
	from.mu.Unlock()
	e.mu.Lock()
	dst.ejections, dst.lastEjectEnd = ejections, last
	e.mu.Unlock()
}

// Name is the pool's name (Config.Name).
func (p *Pool) Name() string { return p.name }
