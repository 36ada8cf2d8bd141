package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set at link time to override what the build info says, e.g. for a
// build from a source archive with no VCS data:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc123 -X main.buildDate=2026-12-05T15:00:00Z" ./cmd/edged
var version, commit, buildDate string

// buildIdentity is what -version prints and edged_build_info exports.
type buildIdentity struct {
	Version   string // module version: "(devel)" for a build from a checkout
	Commit    string // VCS revision, "unknown" without VCS data
	Modified  bool   // the working tree had uncommitted changes
	Date      string // commit time (vcs.time, RFC 3339), "unknown" without VCS data
	GoVersion string
}

// identity reads the build info that the Go toolchain embeds (module
// version, vcs.revision, vcs.modified, vcs.time), then applies the -ldflags
// -X overrides that are set.
func identity() buildIdentity {
	id := buildIdentity{Version: "(devel)", Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			id.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				id.Commit = s.Value
			case "vcs.modified":
				id.Modified = s.Value == "true"
			case "vcs.time":
				id.Date = s.Value
			}
		}
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&id.Version, version}, {&id.Commit, commit}, {&id.Date, buildDate}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	return id
}

// commitLabel is the commit with "-modified" appended for a build from a
// working tree with uncommitted changes.
func (id buildIdentity) commitLabel() string {
	if id.Modified {
		return id.Commit + "-modified"
	}
	return id.Commit
}

func printVersion(w io.Writer) {
	id := identity()
	fmt.Fprintf(w, "edged %s\ncommit:  %s\nbuilt:   %s\ngo:      %s %s/%s\n",
		id.Version, id.commitLabel(), id.Date, id.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// buildInfoGauge is edged_build_info: always 1, its labels say which build
// runs (join it to other series by instance to see what a fleet runs).
func buildInfoGauge() prometheus.Collector {
	id := identity()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "edged_build_info",
		Help:        "A metric with a constant 1 value labeled by the version, commit and Go version edged was built with.",
		ConstLabels: prometheus.Labels{"version": id.Version, "commit": id.commitLabel(), "go_version": id.GoVersion},
	})
	g.Set(1)
	return g
}
