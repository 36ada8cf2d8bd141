package fleet_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/purge"
	"github.com/edged-proxy/edged/purge/fleet"
	"github.com/edged-proxy/edged/purge/purgetest"
)

// lockedBuffer is a log sink the fleet's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startSecureNATS runs a JetStream NATS server in-process with opts on top
// of the test defaults.
func startSecureNATS(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs, opts.ServerName = true, true, "secure-nats"
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// nkeySeed writes a new user nkey's seed to a file and returns the file
// and the public key.
func nkeySeed(t *testing.T, name string) (file, public string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	public, _ = kp.PublicKey()
	return testkit.WriteFile(t, name+".nk", append(seed, '\n')), public
}

// joinWith starts a purger joined to the fleet with cfg and returns it
// with its log.
func joinWith(t *testing.T, cfg fleet.Config) (*purge.Purger, *lockedBuffer) {
	t.Helper()
	log := &lockedBuffer{}
	cfg.RetryInterval, cfg.ConnectTimeout, cfg.PublishTimeout = 50*time.Millisecond, time.Second, time.Second
	p, err := purge.New(purge.Config{
		Node:        "edge-1",
		Logger:      slog.New(slog.NewTextHandler(log, nil)),
		Invalidator: &purgetest.Recorder{},
		Tokens:      []purge.Token{{Value: allToken, Name: "ops"}},
		JoinFleet:   cfg.Join,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, log
}

// The fleet connects to a server that requires TLS with a client
// certificate, or an nkey, given the right files, and says why it cannot
// with the wrong ones: the log names the TLS or authorization failure
// while purges stay pending (Ready false).
func TestSecureNATS(t *testing.T) {
	ca, other := testkit.NewCA(t, "nats-ca"), testkit.NewCA(t, "other-ca")
	srv, client, stranger := ca.Issue(t, "127.0.0.1", "localhost"), ca.Issue(t, "edge-1"), other.Issue(t, "stranger")
	tlsConf, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CaFile: ca.File, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := startSecureNATS(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tlsConf, TLSTimeout: 2})

	seed, public := nkeySeed(t, "edge")
	wrongSeed, _ := nkeySeed(t, "intruder")
	nkeyURL := startSecureNATS(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: public}}})

	for _, tc := range []struct {
		name string
		cfg  fleet.Config
		why  string // "" = connects
	}{
		{"tls", fleet.Config{URL: tlsURL, CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}, ""},
		{"tls, server not trusted", fleet.Config{URL: tlsURL, CAFile: other.File, CertFile: client.CertFile, KeyFile: client.KeyFile}, "certificate signed by unknown authority"},
		{"tls, client not trusted", fleet.Config{URL: tlsURL, CAFile: ca.File, CertFile: stranger.CertFile, KeyFile: stranger.KeyFile}, "tls: certificate required"},
		{"tls, no client certificate", fleet.Config{URL: tlsURL, CAFile: ca.File}, "tls: certificate required"},
		{"nkey", fleet.Config{URL: nkeyURL, NkeyFile: seed}, ""},
		{"nkey, unknown key", fleet.Config{URL: nkeyURL, NkeyFile: wrongSeed}, "authorization violation"},
		{"nkey, none", fleet.Config{URL: nkeyURL}, "authorization violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, log := joinWith(t, tc.cfg)
			if tc.why == "" {
				testkit.Eventually(t, 10*time.Second, p.Ready, "the fleet to be ready:\n"+log.String())
				return
			}
			testkit.Eventually(t, 10*time.Second, func() bool {
				return strings.Contains(strings.ToLower(log.String()), tc.why)
			}, "a log line saying "+tc.why)
			for line := range strings.Lines(log.String()) {
				if strings.Contains(strings.ToLower(line), tc.why) {
					t.Logf("says: %s", line)
					break
				}
			}
			if p.Ready() {
				t.Error("fleet ready with the wrong files")
			}
		})
	}
}

// Join refuses files it cannot use, naming the field and the file.
func TestCheckFiles(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	leaf := ca.Issue(t, "edge-1")
	seed, _ := nkeySeed(t, "edge")
	missing := filepath.Join(t.TempDir(), "missing")
	garbage := testkit.WriteFile(t, "garbage", []byte("not a key\n"))
	unreadable := testkit.WriteFile(t, "unreadable", []byte("x"))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cfg   fleet.Config
		field string // "" = valid
		msg   string
	}{
		{"none", fleet.Config{}, "", ""},
		{"all good", fleet.Config{NkeyFile: seed, CAFile: ca.File, CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}, "", ""},
		{"creds missing", fleet.Config{CredsFile: missing}, "CredsFile", "no such file or directory"},
		{"creds not creds", fleet.Config{CredsFile: garbage}, "CredsFile", "no user JWT"},
		{"nkey missing", fleet.Config{NkeyFile: missing}, "NkeyFile", "no such file or directory"},
		{"nkey not a seed", fleet.Config{NkeyFile: garbage}, "NkeyFile", "seed"},
		{"ca not PEM", fleet.Config{CAFile: garbage}, "CAFile", "no PEM certificate"},
		{"ca missing", fleet.Config{CAFile: missing}, "CAFile", "no such file or directory"},
		{"cert without key", fleet.Config{CertFile: leaf.CertFile}, "KeyFile", "private key is needed"},
		{"key without cert", fleet.Config{KeyFile: leaf.KeyFile}, "CertFile", "client certificate is needed"},
		{"key missing", fleet.Config{CertFile: leaf.CertFile, KeyFile: missing}, "KeyFile", "no such file or directory"},
		{"key does not match", fleet.Config{CertFile: leaf.CertFile, KeyFile: ca.Issue(t, "x").KeyFile}, "KeyFile", "not a key for " + leaf.CertFile},
		{"cert not PEM", fleet.Config{CertFile: garbage, KeyFile: leaf.KeyFile}, "CertFile", "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckFiles()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("CheckFiles: %v", err)
				}
				return
			}
			fe, ok := errors.AsType[*fleet.FileError](err)
			if !ok {
				t.Fatalf("CheckFiles = %v, want a *fleet.FileError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Err.Error(), tc.msg) {
				t.Errorf("CheckFiles = %s %q, want %s and %q", fe.Field, fe.Err, tc.field, tc.msg)
			}
			tc.cfg.URL = "nats://127.0.0.1:1"
			if _, err := tc.cfg.Join(purge.Local{Logger: slog.New(slog.DiscardHandler)}); !errors.As(err, &fe) {
				t.Errorf("Join = %v, want the same FileError", err)
			}
		})
	}
	if os.Geteuid() == 0 {
		t.Log("running as root: an unreadable file reads; its case is not checked")
		return
	}
	if fe, ok := errors.AsType[*fleet.FileError](fleet.Config{NkeyFile: unreadable}.CheckFiles()); !ok || !strings.Contains(fe.Err.Error(), "permission denied") {
		t.Errorf("unreadable nkey file: %v", fe)
	}
}
