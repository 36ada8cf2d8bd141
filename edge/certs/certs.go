// Package certs terminates TLS for edged: it holds the certificates of many
// sites, picks one per handshake by SNI (exact name, then a one-label
// wildcard, then the default), reloads them from disk atomically, rotates
// session-ticket keys and exports each certificate's expiry as a metric.
package certs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pair names one certificate and its key on disk.
type Pair struct {
	CertFile, KeyFile string
	// Default marks the certificate that answers clients sending no SNI or
	// an unknown name. The first pair marked Default wins; if none is, the
	// first pair is the default.
	Default bool
}

// Config configures a Store.
type Config struct {
	Pairs      []Pair                // at least one
	MinVersion uint16                // 0 means tls.VersionTLS12
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil exports no metrics
	Now        func() time.Time      // nil means time.Now
}

// DefaultWatchInterval is the polling interval Watch uses when given 0.
const DefaultWatchInterval = 5 * time.Second

// ticketKeysKept is how many session-ticket keys are held: the current one
// (used to encrypt) and the previous ones (still accepted for decryption).
const ticketKeysKept = 3

// certSet is one immutable generation of loaded certificates.
type certSet struct {
	exact    map[string]*tls.Certificate // "a.example.com"
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	def      *tls.Certificate
	expiry   map[string]time.Time // metric name -> NotAfter
}

// fileState is what Watch compares to decide that a file changed.
type fileState struct {
	info os.FileInfo // nil when Stat failed
}

func (a fileState) same(b fileState) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return a.info.Size() == b.info.Size() &&
		a.info.ModTime().Equal(b.info.ModTime()) &&
		os.SameFile(a.info, b.info)
}

// Store holds the current certificate set and the session-ticket keys.
// It is safe for concurrent use.
type Store struct {
	pairs      []Pair
	minVersion uint16
	log        *slog.Logger
	now        func() time.Time
	expiry     *prometheus.GaugeVec // nil without a Registerer

	cur atomic.Pointer[certSet]

	loadMu  sync.Mutex  // serialises Reload
	files   []fileState // guarded by loadMu: state seen at the last load attempt
	metered []string    // guarded by loadMu: metric label values currently set

	ticketMu   sync.Mutex
	ticketKeys [][32]byte    // newest first
	configs    []*tls.Config // every config handed out by TLSConfig
}

// New loads every pair. Any error (unreadable file, bad PEM, certificate
// and key that do not match) is returned and names the file.
func New(cfg Config) (*Store, error) {
	if len(cfg.Pairs) == 0 {
		return nil, errors.New("certs: no certificate pairs configured")
	}
	s := &Store{
		pairs:      append([]Pair(nil), cfg.Pairs...),
		minVersion: cfg.MinVersion,
		log:        cfg.Logger,
		now:        cfg.Now,
	}
	if s.minVersion == 0 {
		s.minVersion = tls.VersionTLS12
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.Registerer != nil {
		gv := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edged_tls_cert_expiry_seconds",
			Help: "Expiry (NotAfter) of each loaded TLS certificate as a Unix time, by the certificate's first DNS name (or CN).",
		}, []string{"name"})
		if err := cfg.Registerer.Register(gv); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("certs: register metric: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.GaugeVec)
			if !ok {
				return nil, fmt.Errorf("certs: register metric: %w", err)
			}
			gv = existing
		}
		s.expiry = gv
	}

	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	s.files = s.statAll()
	set, err := s.loadAll()
	if err != nil {
		return nil, err
	}
	s.install(set)
	s.RotateTicketKeys()
	return s, nil
}

// TLSConfig returns a new server configuration backed by the store:
// certificates chosen by SNI, MinVersion, ALPN h2 and http/1.1, and session
// tickets encrypted with the keys RotateTicketKeys maintains. Every config
// returned keeps receiving rotated keys, so call it once per listener rather
// than per connection.
func (s *Store) TLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:     s.minVersion,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: s.certificate,
	}
	s.ticketMu.Lock()
	defer s.ticketMu.Unlock()
	c.SetSessionTicketKeys(s.ticketKeys)
	s.configs = append(s.configs, c)
	return c
}

// RotateTicketKeys makes a new random session-ticket key the one used to
// issue tickets and keeps the previous two for decrypting older tickets.
func (s *Store) RotateTicketKeys() {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		// crypto/rand does not fail on supported platforms; if it ever
		// does, keep the old keys rather than use a predictable one.
		s.log.Error("tls session ticket key rotation failed", "err", err)
		return
	}
	s.ticketMu.Lock()
	defer s.ticketMu.Unlock()
	keys := append([][32]byte{k}, s.ticketKeys...)
	if len(keys) > ticketKeysKept {
		keys = keys[:ticketKeysKept]
	}
	s.ticketKeys = keys
	for _, c := range s.configs {
		c.SetSessionTicketKeys(keys)
	}
}

// Reload re-reads every pair. If any fails to load, parse or match its key,
// the set in use is kept and the error is logged and returned. Otherwise the
// new set replaces the old one atomically; handshakes in flight finish with
// whichever set they picked up. Expired certificates are loaded but logged.
func (s *Store) Reload() error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	return s.reloadLocked()
}

func (s *Store) reloadLocked() error {
	s.files = s.statAll()
	set, err := s.loadAll()
	if err != nil {
		s.log.Error("tls certificate reload rejected; keeping the certificates in use", "err", err)
		return err
	}
	s.install(set)
	s.log.Info("tls certificates reloaded", "pairs", len(s.pairs))
	return nil
}

// Watch polls the size, modification time and identity of every certificate
// and key file each interval (0 means DefaultWatchInterval) and reloads when
// one changed. A failed reload is retried only after a further change.
// It returns when ctx ends.
func (s *Store) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultWatchInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.loadMu.Lock()
		if s.changed() {
			_ = s.reloadLocked() // logged by reloadLocked
		}
		s.loadMu.Unlock()
	}
}

// changed reports whether any file differs from the last load attempt.
// The caller holds loadMu.
func (s *Store) changed() bool {
	now := s.statAll()
	for i := range now {
		if !now[i].same(s.files[i]) {
			return true
		}
	}
	return false
}

// statAll returns the state of every file, cert then key for each pair.
func (s *Store) statAll() []fileState {
	out := make([]fileState, 0, 2*len(s.pairs))
	for _, p := range s.pairs {
		for _, name := range []string{p.CertFile, p.KeyFile} {
			fi, err := os.Stat(name)
			if err != nil {
				fi = nil
			}
			out = append(out, fileState{info: fi})
		}
	}
	return out
}

// loadAll reads every pair into a new set; it does not touch the store's
// current set.
func (s *Store) loadAll() (*certSet, error) {
	set := &certSet{
		exact:    make(map[string]*tls.Certificate),
		wildcard: make(map[string]*tls.Certificate),
		expiry:   make(map[string]time.Time),
	}
	now := s.now()
	defaultMarked := false
	for i, p := range s.pairs {
		cert, err := loadPair(p)
		if err != nil {
			return nil, err
		}
		leaf := cert.Leaf
		names := leafNames(leaf)
		if now.After(leaf.NotAfter) {
			s.log.Warn("tls certificate has expired", "file", p.CertFile, "name", names[0], "not_after", leaf.NotAfter)
		}
		for _, n := range names {
			n = normalize(n)
			if suffix, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := set.wildcard[suffix]; !dup {
					set.wildcard[suffix] = cert
				}
				continue
			}
			if _, dup := set.exact[n]; !dup {
				set.exact[n] = cert
			}
		}
		set.expiry[names[0]] = leaf.NotAfter
		if i == 0 || (p.Default && !defaultMarked) {
			set.def = cert
			defaultMarked = p.Default
		}
	}
	return set, nil
}

// install makes set the current one and updates the expiry metric.
// The caller holds loadMu.
func (s *Store) install(set *certSet) {
	s.cur.Store(set)
	if s.expiry == nil {
		return
	}
	names := make([]string, 0, len(set.expiry))
	for n, t := range set.expiry {
		s.expiry.WithLabelValues(n).Set(float64(t.Unix()))
		names = append(names, n)
	}
	for _, old := range s.metered {
		if _, ok := set.expiry[old]; !ok {
			s.expiry.DeleteLabelValues(old)
		}
	}
	s.metered = names
}

// certificate picks the certificate for a handshake: exact name, then a
// wildcard covering exactly the first label, then the default.
func (s *Store) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.cur.Load()
	return set.lookup(hello.ServerName), nil
}

func (set *certSet) lookup(serverName string) *tls.Certificate {
	name := normalize(serverName)
	if name == "" {
		return set.def
	}
	if c, ok := set.exact[name]; ok {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c, ok := set.wildcard[name[i+1:]]; ok {
			return c
		}
	}
	return set.def
}

// normalize lower-cases a host name and drops one trailing dot.
func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// leafNames returns the names a certificate answers for: its DNS SANs, or
// its common name when it has none.
func leafNames(leaf *x509.Certificate) []string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames
	}
	if leaf.Subject.CommonName != "" {
		return []string{leaf.Subject.CommonName}
	}
	return nil
}

// Check loads p as New and Reload do and returns what is wrong with it, a
// *FileError, or nil. It is for configuration checks that should fail
// where starting would.
func Check(p Pair) error {
	_, err := loadPair(p)
	return err
}

// FileError is a problem with one file of a Pair: unreadable, not PEM, not
// a usable certificate, or a key that is not the certificate's.
type FileError struct {
	// File is the file at fault, KeyFile or CertFile of its Pair.
	File string
	// Key says File is the pair's key (else its certificate).
	Key bool
	// Err says what is wrong.
	Err error
}

func (e *FileError) Error() string { return "certs: " + e.File + ": " + e.Err.Error() }

func (e *FileError) Unwrap() error { return e.Err }

// loadPair reads and parses one pair, checking what the store needs of
// it; errors are *FileError, naming the file at fault.
func loadPair(p Pair) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return nil, &FileError{File: p.CertFile, Err: readError(err)}
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return nil, &FileError{File: p.KeyFile, Key: true, Err: readError(err)}
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, &FileError{File: p.CertFile, Err: err}
	}
	// The certificate parses, so a failure now lies with the key: missing,
	// malformed, or not the certificate's.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &FileError{File: p.KeyFile, Key: true, Err: fmt.Errorf("not a key for %s: %w", p.CertFile, err)}
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, &FileError{File: p.CertFile, Err: err}
		}
		cert.Leaf = leaf
	}
	if len(leafNames(cert.Leaf)) == 0 {
		return nil, &FileError{File: p.CertFile, Err: errors.New("certificate has no DNS names and no common name")}
	}
	return &cert, nil
}

// readError is a read failure without the file name, which FileError
// gives: "cannot read: no such file or directory".
func readError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot read: %w", err)
}

// checkCertPEM reports whether data holds a parsable leaf certificate as its
// first CERTIFICATE block.
func checkCertPEM(data []byte) error {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return errors.New("no PEM CERTIFICATE block")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("parse certificate: %w", err)
		}
		return nil
	}
}
