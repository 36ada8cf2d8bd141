package main

import (
	"errors"

	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/purge/fleet"
)

// fleetConfig is the purge fleet's configuration of purge.nats.
func fleetConfig(n config.PurgeNATS) fleet.Config {
	return fleet.Config{
		URL: n.URL, Stream: n.Stream, Subject: n.Subject, ReceiptBucket: n.ReceiptBucket,
		MaxAge: n.MaxAge.Std(), Replicas: n.Replicas, MaxPending: n.MaxPending,
		ConnectTimeout: n.ConnectTimeout.Std(), PublishTimeout: n.PublishTimeout.Std(), RetryInterval: n.RetryInterval.Std(),
		CredsFile: n.CredsFile, NkeyFile: n.NkeyFile,
		CAFile: n.TLS.CA, CertFile: n.TLS.Cert, KeyFile: n.TLS.Key,
	}
}

// natsKeys maps fleet.FileError fields to their keys.
var natsKeys = map[string]string{
	"CredsFile": "creds_file", "NkeyFile": "nkey_file",
	"CAFile": "tls.ca", "CertFile": "tls.cert", "KeyFile": "tls.key",
}

// natsChecks reads the NATS credential and TLS files as joining the fleet
// will (only with purge.nats.url set), reporting a bad one at its key.
// Starting runs it too, so that a bad file is reported at its line.
func natsChecks(cfg *config.Config) []*config.Error {
	n := cfg.Purge.NATS
	if n.URL == "" {
		return nil
	}
	err := fleetConfig(n).CheckFiles()
	if err == nil {
		return nil
	}
	fe, ok := errors.AsType[*fleet.FileError](err)
	switch {
	case !ok: // both credentials
		return []*config.Error{{Path: "purge.nats.nkey_file", Msg: "set creds_file or nkey_file, not both"}}
	case fe.File == "" && fe.Field == "CertFile":
		return []*config.Error{{Path: "purge.nats.tls.cert", Msg: "required with tls.key"}}
	case fe.File == "":
		return []*config.Error{{Path: "purge.nats.tls.key", Msg: "required with tls.cert"}}
	}
	return []*config.Error{{Path: "purge.nats." + natsKeys[fe.Field], Msg: fe.File + ": " + fe.Err.Error()}}
}
