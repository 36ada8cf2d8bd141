package lb

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// TLS configures how a pool's https shards are reached: the name they
// are verified against, the CAs trusted, a client certificate, the lowest
// version. Its zero value verifies each shard against the system roots
// for the host of its URL, with TLS 1.2 or later, and presents no client
// certificate. The files are read once, by NewPool; to pick up a rotated
// file, build a new Pool.
type TLS struct {
	// ServerName is sent as SNI and is the name each shard's certificate
	// must be valid for. Empty means each shard's own host (from its URL).
	ServerName string

	// CAFile is a PEM bundle of the CA certificates trusted to sign shard
	// certificates. They replace the system roots, they are not added to
	// them: an origin with a private CA is trusted for that CA alone, and
	// a publicly signed certificate for its name does not pass. To trust
	// both, concatenate the system bundle into the file. Empty means the
	// system roots.
	CAFile string

	// CertFile and KeyFile are a PEM client certificate chain (leaf first)
	// and its private key, presented to shards that ask for one (mutual
	// TLS), whatever CAs they name as acceptable: the shard judges it.
	// (Go's default sends no certificate when no issuer in the chain is
	// among those named, which fails a chain that leaves out an
	// intermediate with a less clear error.) Both or neither; empty means
	// none.
	CertFile, KeyFile string

	// MinVersion is the lowest TLS version offered (tls.VersionTLS12 or
	// tls.VersionTLS13). Zero means TLS 1.2.
	MinVersion uint16

	// InsecureSkipVerify accepts any certificate a shard presents, for
	// any name: anyone on the path can read and change origin traffic.
	// For tests and emergencies only; the daemon logs a warning at every
	// start and reload while it is on.
	InsecureSkipVerify bool
}

// TLSFileError is a problem with one file of a TLS: unreadable, holding
// no PEM certificate, a certificate that does not parse, or a key that is
// not the certificate's.
type TLSFileError struct {
	// Field is the TLS field naming the file: "CAFile", "CertFile" or
	// "KeyFile".
	Field string
	// File is the file's name.
	File string
	// Err says what is wrong.
	Err error
}

func (e *TLSFileError) Error() string { return "lb: " + e.File + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *TLSFileError) Unwrap() error { return e.Err }

// CheckTLS reads and parses the files of t as NewPool would and checks the
// fields that need no file, returning the first problem (a *TLSFileError
// for a file) or nil. It is for configuration checks that should fail
// where starting would.
func CheckTLS(t TLS) error {
	_, err := t.clientConfig(nil)
	return err
}

// clientConfig builds the tls.Config of a pool's https shards: a clone of
// base (nil: an empty one) with t applied over it. Fields of t at their
// zero value leave base's as they are, except MinVersion, which is at
// least TLS 1.2. NextProtos and, when empty, ServerName are set per
// connection (dialTLSShard).
func (t TLS) clientConfig(base *tls.Config) (*tls.Config, error) {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	switch t.MinVersion {
	case 0:
	case tls.VersionTLS12, tls.VersionTLS13:
		cfg.MinVersion = t.MinVersion
	default:
		return nil, fmt.Errorf("lb: TLS.MinVersion %#x is not TLS 1.2 or 1.3", t.MinVersion)
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	if t.CAFile != "" {
		pool, err := loadCAFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		return nil, errors.New("lb: TLS.CertFile and TLS.KeyFile go together: set both or neither")
	default:
		cert, err := loadClientCert(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg, nil
}

// loadCAFile reads a PEM bundle of CA certificates. Blocks of other types
// are skipped; a CERTIFICATE block that does not parse, or a file with no
// certificate, is an error.
func loadCAFile(name string) (*x509.CertPool, error) {
	fail := func(err error) error { return &TLSFileError{Field: "CAFile", File: name, Err: err} }
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fail(readError(err))
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fail(fmt.Errorf("certificate %d: %w", n+1, err))
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fail(errors.New("no PEM certificate found"))
	}
	return pool, nil
}

// loadClientCert reads a client certificate chain and its key, blaming
// the certificate file when it holds no usable certificate and the key
// file otherwise.
func loadClientCert(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &TLSFileError{Field: "CertFile", File: certFile, Err: readError(err)}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &TLSFileError{Field: "KeyFile", File: keyFile, Err: readError(err)}
	}
	b, rest := pem.Decode(certPEM)
	for b != nil && b.Type != "CERTIFICATE" {
		b, rest = pem.Decode(rest)
	}
	if b == nil {
		return tls.Certificate{}, &TLSFileError{Field: "CertFile", File: certFile, Err: errors.New("no PEM certificate found")}
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return tls.Certificate{}, &TLSFileError{Field: "CertFile", File: certFile, Err: err}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &TLSFileError{Field: "KeyFile", File: keyFile, Err: fmt.Errorf("not a key for %s: %w", certFile, err)}
	}
	return cert, nil
}

// readError is a read failure without the file name, which TLSFileError
// gives.
func readError(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("cannot read: %w", pe.Err)
	}
	return err
}
