package archtest

import (
	"strings"
	"testing"
)

// edges builds a synthetic graph from "from to" pairs. Paths are relative to
// the module except the standard packages fmt and net/http and paths whose
// first element has a dot (other modules), which are taken as they are.
func edges(pairs ...[2]string) graph {
	g := graph{}
	abs := func(p string) string {
		if p == "fmt" || p == "net/http" || !isStd(p) {
			return p
		}
		return mod + "/" + p
	}
	for _, e := range pairs {
		from, to := abs(e[0]), abs(e[1])
		g[from] = append(g[from], to)
		if _, ok := g[to]; !ok {
			g[to] = nil
		}
	}
	return g
}

// TestPackageTableCanFail runs the checker on synthetic graphs: every
// forbidden edge the table names is reported, and the allowed ones are not.
func TestPackageTableCanFail(t *testing.T) {
	tests := []struct {
		name  string
		g     graph
		wants []string // substrings, one violation each; none for an allowed graph
	}{
		{"edge may import cache, strict, internal", edges(
			[2]string{"edge", "cache"}, [2]string{"edge", "edge/strict"}, [2]string{"edge", "internal/httpx"},
			[2]string{"edge", "github.com/prometheus/client_golang/prometheus"}), nil},
		{"edge imports storage", edges([2]string{"edge", "storage"}), []string{"edge imports storage"}},
		{"edge imports purge", edges([2]string{"edge", "purge"}), []string{"edge imports purge"}},
		{"edge imports lb", edges([2]string{"edge", "lb"}), []string{"edge imports lb"}},
		{"edge/strict imports internal", edges([2]string{"edge/strict", "internal/httpx"}), []string{"edge/strict imports internal/httpx"}},
		{"edge/strict imports a module", edges([2]string{"edge/strict", "golang.org/x/net/http2"}), []string{"edge/strict imports golang.org/x/net/http2"}},
		{"edge/certs may import prometheus", edges([2]string{"edge/certs", "github.com/prometheus/client_golang/prometheus"}), nil},
		{"edge/certs imports another module", edges([2]string{"edge/certs", "github.com/nats-io/nats.go"}), []string{"edge/certs imports github.com/nats-io/nats.go"}},
		{"edge/certs imports edged", edges([2]string{"edge/certs", "internal/httpx"}), []string{"edge/certs imports internal/httpx"}},
		{"cache may import storage, internal, rfc, selector", edges(
			[2]string{"cache", "storage"}, [2]string{"cache", "internal/httpx"}, [2]string{"cache", "cache/rfc"},
			[2]string{"cache", "purge/selector"}, [2]string{"cache", "github.com/dgraph-io/ristretto/v2"}), nil},
		{"cache imports lb", edges([2]string{"cache", "lb"}), []string{"cache imports lb"}},
		{"cache imports purge", edges([2]string{"cache", "purge"}), []string{"cache imports purge;"}},
		{"cache imports edge", edges([2]string{"cache", "edge"}), []string{"cache imports edge"}},
		{"cache/rfc imports storage", edges([2]string{"cache/rfc", "storage"}), []string{"cache/rfc imports storage"}},
		{"cache/rfc imports another module", edges([2]string{"cache/rfc", "github.com/dgraph-io/ristretto/v2"}), []string{"cache/rfc imports github.com/dgraph-io/ristretto/v2"}},
		{"lb may import ketama, internal", edges([2]string{"lb", "lb/ketama"}, [2]string{"lb", "internal/httpx"}), nil},
		{"lb imports cache", edges([2]string{"lb", "cache"}), []string{"lb imports cache"}},
		{"lb may import the OpenTelemetry API", edges([2]string{"lb", "go.opentelemetry.io/otel/trace"}), nil},
		{"cache reaches the OpenTelemetry SDK", edges([2]string{"cache", "go.opentelemetry.io/otel/trace"}, [2]string{"go.opentelemetry.io/otel/trace", "go.opentelemetry.io/otel/sdk/trace"}),
			[]string{"cache depends on go.opentelemetry.io/otel/sdk/trace"}},
		{"edge imports the OTLP exporter", edges([2]string{"edge", "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"}),
			[]string{"edge depends on go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"}},
		{"lb/cluster may import ketama, internal, memberlist, prometheus", edges([2]string{"lb/cluster", "lb/ketama"}, [2]string{"lb/cluster", "internal/httpx"},
			[2]string{"lb/cluster", "github.com/hashicorp/memberlist"}, [2]string{"lb/cluster", "github.com/prometheus/client_golang/prometheus"}), nil},
		{"lb/cluster imports edge", edges([2]string{"lb/cluster", "edge"}), []string{"lb/cluster imports edge"}},
		{"lb/cluster imports lb", edges([2]string{"lb/cluster", "lb"}), []string{"lb/cluster imports lb"}},
		{"lb/cluster imports a module", edges([2]string{"lb/cluster", "github.com/cespare/xxhash/v2"}), []string{"lb/cluster imports github.com/cespare/xxhash/v2"}},
		{"lb/ketama imports edged", edges([2]string{"lb/ketama", "internal/httpx"}), []string{"lb/ketama imports internal/httpx"}},
		{"lb/ketama imports a module", edges([2]string{"lb/ketama", "github.com/cespare/xxhash/v2"}), []string{"lb/ketama imports github.com/cespare/xxhash/v2"}},
		{"storage may import bbolt", edges([2]string{"storage", "go.etcd.io/bbolt"}), nil},
		{"storage imports edged", edges([2]string{"storage", "internal/httpx"}), []string{"storage imports internal/httpx"}},
		{"storage imports a module", edges([2]string{"storage", "github.com/prometheus/client_golang/prometheus"}), []string{"storage imports github.com/prometheus"}},
		{"storage reaches net/http", edges([2]string{"storage", "go.etcd.io/bbolt"}, [2]string{"go.etcd.io/bbolt", "net/http"}),
			[]string{"storage depends on net/http (" + mod + "/storage → go.etcd.io/bbolt → net/http)"}},
		{"loadtest packages import each other", edges([2]string{"loadtest/load", "loadtest/origin"}, [2]string{"loadtest/cmd/load", "loadtest/load"}), nil},
		{"loadtest imports edged", edges([2]string{"loadtest/origin", "lb/ketama"}), []string{"loadtest/origin imports lb/ketama"}},
		{"loadtest imports a module", edges([2]string{"loadtest", "golang.org/x/sync/errgroup"}), []string{"loadtest imports golang.org/x/sync/errgroup"}},
		{"internal/config imports edged", edges([2]string{"internal/config", "storage"}, [2]string{"internal/config", "go.yaml.in/yaml/v3"}), []string{"internal/config imports storage"}},
		{"internal/httpx imports edged", edges([2]string{"internal/httpx", "cache"}), []string{"internal/httpx imports cache"}},
		{"internal/sampleorigin imports edged", edges([2]string{"internal/sampleorigin", "internal/httpx"}), []string{"internal/sampleorigin imports internal/httpx"}},
		{"internal/logbuf imports edged", edges([2]string{"internal/logbuf", "internal/httpx"}), []string{"internal/logbuf imports internal/httpx"}},
		{"internal/sdnotify imports edged", edges([2]string{"internal/sdnotify", "internal/httpx"}), []string{"internal/sdnotify imports internal/httpx"}},
		{"internal/sketch imports edged", edges([2]string{"internal/sketch", "internal/httpx"}), []string{"internal/sketch imports internal/httpx"}},
		{"cmd/edged imports everything", edges([2]string{"cmd/edged", "storage"}, [2]string{"cmd/edged", "purge"}, [2]string{"cmd/edged", "lb"}), nil},
		{"purge imports NATS", edges([2]string{"purge", "github.com/nats-io/nats.go"}), []string{"purge imports github.com/nats-io/nats.go"}},
		{"purge imports its fleet", edges([2]string{"purge", "purge/fleet"}), []string{"purge imports purge/fleet"}},
		{"purge/selector imports purge", edges([2]string{"purge/selector", "purge"}), []string{"purge/selector imports purge"}},
		{"purge/fleet imports cache", edges([2]string{"purge/fleet", "cache"}), []string{"purge/fleet imports cache"}},
		{"purge/fleet imports NATS", edges([2]string{"purge/fleet", "purge"}, [2]string{"purge/fleet", "github.com/nats-io/nats.go/jetstream"}), nil},
		{"something imports cmd", edges([2]string{"internal/newpkg", "cmd/edged"}), []string{"internal/newpkg imports cmd/edged: nothing outside cmd/..."}},
		{"something imports loadtest", edges([2]string{"conformance", "loadtest/origin"}), []string{"conformance imports loadtest/origin: nothing outside loadtest/..."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkTable(packageTable, tt.g)
			if len(got) != len(tt.wants) {
				t.Fatalf("got %d violations %q, want %d matching %q", len(got), got, len(tt.wants), tt.wants)
			}
			for i, w := range tt.wants {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %q does not contain %q", got[i], w)
				}
			}
		})
	}
}

// TestEveryRuleCanFail gives each row of the table, alone, imports it
// forbids: an edged package outside its list, a module outside its list, and
// a chain to each package it must never reach.
func TestEveryRuleCanFail(t *testing.T) {
	for _, r := range packageTable {
		t.Run(r.pkg, func(t *testing.T) {
			from, _ := strings.CutSuffix(r.pkg, "/...")
			bad := [][][2]string{{{from, "zz/forbidden"}}}
			if !r.anyOthers {
				bad = append(bad, [][2]string{{from, "example.com/forbidden"}})
			}
			for _, n := range r.neverReach {
				bad = append(bad, [][2]string{{from, "fmt"}, {"fmt", n}})
			}
			for _, b := range bad {
				if got := checkTable([]pkgRule{r}, edges(b...)); len(got) == 0 {
					t.Errorf("no violation for %q", b)
				}
			}
		})
	}
}

// TestPendingRules: a rule for a package that does not exist yet passes
// only if marked pending.
func TestPendingRules(t *testing.T) {
	g := edges([2]string{"cache", "storage"})
	rules := []pkgRule{{pkg: "cache", ours: []string{"storage"}}, {pkg: "cache/rfc", pending: true}, {pkg: "cache/rfx"}}
	got := unusedRules(rules, g)
	if len(got) != 1 || !strings.Contains(got[0], "cache/rfx") {
		t.Errorf("unusedRules = %q, want one for cache/rfx", got)
	}
	if got := checkTable(rules, g); len(got) != 0 {
		t.Errorf("checkTable = %q, want none", got)
	}
}
