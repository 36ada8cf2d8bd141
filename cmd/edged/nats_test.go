package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/edged-proxy/edged/internal/testkit"
)

// natsConfig is a configuration joining the fleet at url with the
// purge.nats keys in extra (indented under nats:); its line 7 is extra's
// first line.
func natsConfig(url, extra string) string {
	return "log:\n  access: false\npurge:\n  node: edge-1\n  nats:\n    url: " + url + "\n" + extra
}

// -check-config and starting read purge.nats's credential and TLS files
// and report a bad one as FILE:LINE: key.path: message.
func TestCheckConfigNATSFiles(t *testing.T) {
	ca := testkit.NewCA(t, "nats-ca")
	leaf := ca.Issue(t, "edge-1")
	missing := filepath.Join(t.TempDir(), "missing")
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	seedFile := testkit.WriteFile(t, "edge.nk", seed)
	for _, c := range []struct {
		name, extra string
		want        string // "" means valid
	}{
		{"good files", fmt.Sprintf("    nkey_file: %s\n    tls:\n      ca: %s\n      cert: %s\n      key: %s\n", seedFile, ca.File, leaf.CertFile, leaf.KeyFile), ""},
		{"missing creds", "    creds_file: " + missing + "\n", ":7: purge.nats.creds_file: " + missing + ": no such file or directory"},
		{"creds not creds", "    creds_file: " + leaf.CertFile + "\n", ":7: purge.nats.creds_file: " + leaf.CertFile + ": no user JWT"},
		{"missing nkey", "    nkey_file: " + missing + "\n", ":7: purge.nats.nkey_file: " + missing + ": no such file or directory"},
		{"both", fmt.Sprintf("    creds_file: %s\n    nkey_file: %s\n", seedFile, seedFile), ":8: purge.nats.nkey_file: set creds_file or nkey_file, not both"},
		{"CA not PEM", "    tls:\n      ca: " + seedFile + "\n", ":8: purge.nats.tls.ca: " + seedFile + ": no PEM certificate in it"},
		{"cert without key", "    tls:\n      cert: " + leaf.CertFile + "\n", ":7: purge.nats.tls.key: required with tls.cert"},
		{"key of another certificate", fmt.Sprintf("    tls:\n      cert: %s\n      key: %s\n", leaf.CertFile, ca.Issue(t, "x").KeyFile),
			":9: purge.nats.tls.key: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeConfig(t, natsConfig("nats://127.0.0.1:1", c.extra))
			checkConfigAt(t, file, c.want)
		})
	}
	// Without purge.nats.url the files are not read.
	file := writeConfig(t, "log:\n  access: false\npurge:\n  nats:\n    nkey_file: "+missing+"\n")
	if err := run(context.Background(), []string{"-check-config", file}, &bytes.Buffer{}, &bytes.Buffer{}, nil); err != nil {
		t.Errorf("nkey_file without url: %v", err)
	}
}

// The daemon joins a fleet whose NATS server requires TLS with a client
// certificate and an nkey, from the configuration's files alone.
func TestPurgeFleetOverTLSAndNkey(t *testing.T) {
	ca := testkit.NewCA(t, "nats-ca")
	srv, client := ca.Issue(t, "127.0.0.1"), ca.Issue(t, "edge-1")
	tlsConf, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CaFile: ca.File, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	public, _ := kp.PublicKey()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: tlsConf, TLSTimeout: 2,
		Nkeys: []*server.NkeyUser{{Nkey: public}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	cfg := writeConfig(t, natsConfig(ns.ClientURL(), fmt.Sprintf("    retry_interval: 50ms\n    nkey_file: %s\n    tls:\n      ca: %s\n      cert: %s\n      key: %s\n",
		testkit.WriteFile(t, "edge.nk", seed), ca.File, client.CertFile, client.KeyFile)))
	l, _ := startDaemon(t, "-config", cfg, "-purge-token", testToken)
	testkit.Eventually(t, 10*time.Second, func() bool {
		code, out := postPurge(t, l.Admin, testToken, `{"urls":["http://cdn.example/x"]}`)
		f, _ := out["fleet"].(map[string]any)
		return code == 200 && f["state"] == "published"
	}, "a purge published to the fleet")
}
