package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// FileError reports a credentials or TLS file of a Config that cannot be
// used: Field names the Config field (CredsFile, NkeyFile, CAFile,
// CertFile, KeyFile), so that a caller can point at its own key for it.
// File is "" when the field is unset but needed (CertFile without KeyFile
// or the reverse).
type FileError struct {
	Field string
	File  string
	Err   error
}

func (e *FileError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("purge: NATS.%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("purge: NATS.%s %s: %v", e.Field, e.File, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// CheckFiles reads the credentials and TLS files c names as Join will,
// and returns a *FileError for the first one that cannot be used (or a
// plain error for a combination that makes no sense). It does not connect.
func (c Config) CheckFiles() error {
	_, err := c.authOptions()
	return err
}

// authOptions turns the files of c into NATS connection options, reading
// each now so that a bad file fails Join, not every reconnection later.
func (c Config) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if c.CredsFile != "" && c.NkeyFile != "" {
		return nil, errors.New("purge: NATS.CredsFile and NATS.NkeyFile: set one, not both")
	}
	if c.CredsFile != "" {
		if err := checkCreds(c.CredsFile); err != nil {
			return nil, &FileError{Field: "CredsFile", File: c.CredsFile, Err: err}
		}
		// nats.go reads the file again at each connection (it keeps no
		// key in memory): a rotated file is picked up on reconnect.
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NkeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, &FileError{Field: "NkeyFile", File: c.NkeyFile, Err: trimNATS(err)}
		}
		opts = append(opts, o)
	}
	t, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if t != nil {
		opts = append(opts, nats.Secure(t))
	}
	return opts, nil
}

// checkCreds parses a NATS credentials file (a user JWT and its nkey seed,
// as `nsc` writes them).
func checkCreds(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return pathless(err)
	}
	jwt, _ := nkeys.ParseDecoratedJWT(b)
	if strings.Count(jwt, ".") != 2 {
		return errors.New("no user JWT (want a credentials file with a decorated JWT and seed, as nsc writes)")
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("no user nkey seed: %w", err)
	}
	kp.Wipe()
	return nil
}

// tlsConfig builds the client TLS configuration: CAFile replaces the system
// roots, CertFile and KeyFile are the client certificate. nil when none is
// set (the connection then uses TLS only if the URL says tls:// or the
// server requires it, with the system roots).
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, &FileError{Field: "CAFile", File: c.CAFile, Err: pathless(err)}
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &FileError{Field: "CAFile", File: c.CAFile, Err: errors.New("no PEM certificate in it")}
		}
	}
	switch {
	case c.CertFile == "" && c.KeyFile != "":
		return nil, &FileError{Field: "CertFile", Err: errors.New("KeyFile is set: the client certificate is needed with it")}
	case c.CertFile != "" && c.KeyFile == "":
		return nil, &FileError{Field: "KeyFile", Err: errors.New("CertFile is set: its private key is needed with it")}
	case c.CertFile != "":
		for _, f := range []struct{ field, file string }{{"CertFile", c.CertFile}, {"KeyFile", c.KeyFile}} {
			if _, err := os.Stat(f.file); err != nil {
				return nil, &FileError{Field: f.field, File: f.file, Err: pathless(err)}
			}
		}
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, &FileError{Field: "CertFile", File: c.CertFile, Err: pathless(err)}
		}
		if !x509.NewCertPool().AppendCertsFromPEM(certPEM) {
			return nil, &FileError{Field: "CertFile", File: c.CertFile, Err: errors.New("no PEM certificate in it")}
		}
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, &FileError{Field: "KeyFile", File: c.KeyFile, Err: fmt.Errorf("not a key for %s: %w", c.CertFile, err)}
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// pathless drops the path an *os.PathError repeats: FileError names it.
func pathless(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}

func trimNATS(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return errors.New(strings.TrimPrefix(err.Error(), "nats: "))
}
