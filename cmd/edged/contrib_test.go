package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The operator files in contrib/: the Grafana dashboard, the Prometheus
// alerting rules and their promtool tests. Every PromQL expression must
// parse (promtool, Prometheus's own parser) and name only series edged
// exports, with labels those series have, as read from the /metrics of
// running daemons: one alone with the disk tier, a TLS listener, health
// checks and a purge; two in a PoP.

var (
	contribDashboard = filepath.Join("..", "..", "contrib", "grafana", "edged.json")
	contribRules     = filepath.Join("..", "..", "contrib", "prometheus", "edged.rules.yml")
	contribRuleTests = filepath.Join("..", "..", "contrib", "prometheus", "edged.rules.test.yml")
)

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = []string{"instance", "job"}

// eventOnly are series a daemon exports only once their event has happened
// (a labelled counter with no child yet): they must still be documented
// in docs/metrics.md or docs/purge.md, and take the labels named there.
var eventOnly = map[string][]string{
	"edged_refused_connections_total":    {"reason"},
	"edged_cache_revalidations_total":    {"result"},
	"edged_cache_stale_on_error_total":   {"reason"},
	"edged_upstream_ejections_total":     {"pool", "shard", "reason"},
	"edged_peer_fallbacks_total":         {"reason"},
	"edged_cluster_peer_ejections_total": {"peer"},
	"edged_peer_requests_total":          {"site", "cache"},
}

// dashboard is the part of Grafana's JSON model the test reads.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// namedExpr is one PromQL expression and where it comes from.
type namedExpr struct{ where, expr string }

func readDashboard(t *testing.T) (dashboard, []namedExpr) {
	t.Helper()
	b, err := os.ReadFile(contribDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", contribDashboard, err)
	}
	var exprs []namedExpr
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				exprs = append(exprs, namedExpr{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		json.Unmarshal(v.Query, &q)
		// label_values(SELECTOR, label): the selector is PromQL.
		if m := regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`).FindStringSubmatch(q.Query); m != nil {
			exprs = append(exprs, namedExpr{"variable " + v.Name, m[1]})
		} else {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, q.Query)
		}
	}
	return d, exprs
}

func readRules(t *testing.T) (ruleFile, []namedExpr) {
	t.Helper()
	b, err := os.ReadFile(contribRules)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", contribRules, err)
	}
	var exprs []namedExpr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, namedExpr{fmt.Sprintf("alert %s (%s)", r.Alert, r.Labels["severity"]), r.Expr})
		}
	}
	return rf, exprs
}

// grafanaVars replaces the dashboard's variables by values that make the
// expression plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$instance", ".*", "$site", ".*")

// stripStrings blanks PromQL string literals, so that label values are
// not taken for names.
func stripStrings(expr string) string {
	return regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`+"`[^`]*`").ReplaceAllStringFunc(expr, func(s string) string {
		return `""`
	})
}

// metricRefs are the series an expression names (edged_, go_, process_),
// each with the label names its matchers use, plus the labels of its
// by/without clauses.
func metricRefs(expr string) (refs map[string][]string, grouping []string) {
	e := stripStrings(expr)
	refs = map[string][]string{}
	sel := regexp.MustCompile(`\b((?:edged|go|process)_[a-zA-Z0-9_]*)\s*(\{[^}]*\})?`)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	for _, m := range sel.FindAllStringSubmatch(e, -1) {
		var ls []string
		for _, lm := range label.FindAllStringSubmatch(m[2], -1) {
			ls = append(ls, lm[1])
		}
		refs[m[1]] = append(refs[m[1]], ls...)
	}
	for _, m := range regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`).FindAllStringSubmatch(e, -1) {
		for l := range strings.SplitSeq(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouping = append(grouping, l)
			}
		}
	}
	return refs, grouping
}

// exportedSeries maps each family a daemon's /metrics text shows (with
// _bucket, _sum, _count as their own names) to its label names.
func exportedSeries(metrics string, into map[string]map[string]bool) {
	line := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	for l := range strings.SplitSeq(metrics, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ls := into[m[1]]
		if ls == nil {
			ls = map[string]bool{}
			into[m[1]] = ls
		}
		for _, lm := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`).FindAllStringSubmatch(m[2], -1) {
			ls[lm[1]] = true
		}
	}
}

// scrapeFleet starts the daemons and returns what their /metrics export.
func scrapeFleet(t *testing.T) map[string]map[string]bool {
	t.Helper()
	o := newSizedOrigin(t)
	certFile, keyFile, _ := selfSigned(t, "cdn.example")
	cfg := fmt.Sprintf(`log:
  access: false
tls:
  listen: 127.0.0.1:0
  certificates:
    - cert: %s
      key: %s
purge:
  tokens:
    - name: ops
      token: %s
sites:
  - name: shop
    hosts: ["cdn.example"]
    origins:
      - url: %s
    upstream:
      health_check:
        enabled: true
        path: /obj/health-10
        interval: 100ms
`, certFile, keyFile, testToken, o.URL)
	l, _ := startDaemon(t, "-config", writeConfig(t, cfg))
	trafficForStatus(t, l)
	if code, res := postPurge(t, l.Admin, testToken, `{"tags":["promo"]}`); code != 200 {
		t.Fatalf("purge: %d %v", code, res)
	}
	exported := map[string]map[string]bool{}
	_, m := fetch(t, "http://"+l.Admin+"/metrics")
	exportedSeries(m, exported)

	nodes := startPoP(t, 2, o.URL, "")
	for i := range 10 {
		for _, nd := range nodes {
			fetchHost(t, "http://"+nd.l.Edge+fmt.Sprintf("/obj/pop%d-100", i), "cdn.example")
		}
	}
	for _, nd := range nodes {
		_, m := fetch(t, "http://"+nd.l.Admin+"/metrics")
		exportedSeries(m, exported)
	}
	return exported
}

func TestContribNamesExportedSeries(t *testing.T) {
	_, dexprs := readDashboard(t)
	_, rexprs := readRules(t)
	exprs := append(dexprs, rexprs...)
	// The promtool tests' input series must be real series too.
	b, err := os.ReadFile(contribRuleTests)
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTestFile
	if err := yaml.Unmarshal(b, &rt); err != nil {
		t.Fatalf("%s: %v", contribRuleTests, err)
	}
	for i, tc := range rt.Tests {
		for _, s := range tc.InputSeries {
			exprs = append(exprs, namedExpr{fmt.Sprintf("rule test %d input %s", i, s.Series), s.Series})
		}
	}
	if len(dexprs) < 40 || len(rexprs) < 10 {
		t.Fatalf("only %d dashboard and %d rule expressions found", len(dexprs), len(rexprs))
	}

	exported := scrapeFleet(t)
	var docs string
	for _, f := range []string{"metrics.md", "purge.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", f))
		if err != nil {
			t.Fatal(err)
		}
		docs += string(b)
	}
	labelsOf := func(name string) (map[string]bool, bool) {
		if ls, ok := exported[name]; ok {
			return ls, true
		}
		if ls, ok := eventOnly[name]; ok && strings.Contains(docs, "`"+name+"`") {
			m := map[string]bool{}
			for _, l := range ls {
				m[l] = true
			}
			return m, true
		}
		return nil, false
	}
	used := map[string]bool{}
	for _, e := range exprs {
		refs, grouping := metricRefs(grafanaVars.Replace(e.expr))
		if len(refs) == 0 {
			t.Errorf("%s names no edged series: %s", e.where, e.expr)
		}
		all := map[string]bool{"le": true}
		for _, l := range scrapeLabels {
			all[l] = true
		}
		for name, labels := range refs {
			used[name] = true
			ls, ok := labelsOf(name)
			if !ok {
				t.Errorf("%s: %s is not exported by edged", e.where, name)
				continue
			}
			maps.Copy(all, ls)
			for _, l := range labels {
				if !ls[l] && !slices.Contains(scrapeLabels, l) {
					t.Errorf("%s: %s has no label %q (it has %v)", e.where, name, l, slices.Sorted(maps.Keys(ls)))
				}
			}
		}
		for _, l := range grouping {
			if !all[l] {
				t.Errorf("%s: groups by %q, which none of its series has", e.where, l)
			}
		}
	}
	t.Logf("%d expressions name %d distinct series", len(exprs), len(used))
}

// The dashboard's shape: what Grafana needs to import it anywhere.
func TestContribDashboardModel(t *testing.T) {
	d, _ := readDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want ≥ 36", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && string(v.Query) != `"prometheus"` {
			t.Errorf("datasource variable queries %s, want prometheus", v.Query)
		}
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" || vars["site"] != "query" {
		t.Errorf("variables %v, want datasource (datasource), instance and site (query)", vars)
	}
	ids := map[int]bool{}
	var titles []string
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			titles = append(titles, p.Title)
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, "edged_") && !strings.Contains(tg.Expr, `instance=~"$instance"`) {
					t.Errorf("panel %q: %q ignores the instance variable", p.Title, tg.Expr)
				}
			}
		}
	}
	walk(d.Panels)
	// The views the issue asks for, by title.
	for _, want := range []string{"Requests by site", "Hit ratio by site", "Bytes served by tier", "Origin requests by shard",
		"Origin errors by shard", "Request latency (arrival to last byte)", "Request latency heatmap", "Coalescing", "Purge rate",
		"Purge propagation lag", "Disk tier fill", "Evictions", "Certificate expiry (days left)", "Cluster members", "Peer fetches",
		"Peer fallbacks to origin"} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q", want)
		}
	}
}

// Every alert has a for:, a severity, a summary and a description, and
// every alert the issue asks for exists and is exercised by a promtool
// test that expects it to fire.
func TestContribRulesModel(t *testing.T) {
	rf, _ := readRules(t)
	b, err := os.ReadFile(contribRuleTests)
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTestFile
	if err := yaml.Unmarshal(b, &rt); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Alert == "" || r.For == "" || (r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical") ||
				r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("group %s: rule %q lacks alert, for, severity (warning|critical), summary or description", g.Name, r.Alert)
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no promtool test expects it to fire", r.Alert)
			}
		}
	}
	for _, want := range []string{"EdgedHitRatioCollapse", "EdgedOriginErrorRate", "EdgedShardDown", "EdgedShardEjected",
		"EdgedPurgePropagationLag", "EdgedDiskFull", "EdgedCertificateExpiring", "EdgedPoPMembersBelowExpected"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// promtool checks the rules, runs their unit tests, and parses every
// dashboard expression (as recording rules of a scratch file).
func TestContribPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "SKIP: no promtool (install Debian's package: apt-get install -y --no-install-recommends prometheus); the rules and dashboard expressions are not parsed"
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", contribRules)
	run("test", "rules", contribRuleTests)

	_, exprs := readDashboard(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		expr := grafanaVars.Replace(e.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a Grafana variable the test does not know: %s", e.where, e.expr)
		}
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:expr_%d\n        expr: %s\n", i, q)
	}
	scratch := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(scratch, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", scratch)
}

func TestMetricRefs(t *testing.T) {
	for _, tc := range []struct {
		expr     string
		refs     string
		grouping string
	}{
		{`sum by (site) (rate(edged_requests_total{instance=~".*",cache="hit"}[5m]))`, `map[edged_requests_total:[instance cache]]`, `[site]`},
		{`histogram_quantile(0.99, sum by (le, pool) (rate(edged_upstream_duration_seconds_bucket[5m])))`,
			`map[edged_upstream_duration_seconds_bucket:[]]`, `[le pool]`},
		{`edged_disk_bytes / edged_disk_max_bytes > 1.05`, `map[edged_disk_bytes:[] edged_disk_max_bytes:[]]`, `[]`},
		{`edged_tls_cert_expiry_seconds{name="edged_not_a_metric"} - time()`, `map[edged_tls_cert_expiry_seconds:[name]]`, `[]`},
		{`go_goroutines{instance=~"a"} + process_resident_memory_bytes`, `map[go_goroutines:[instance] process_resident_memory_bytes:[]]`, `[]`},
	} {
		refs, grouping := metricRefs(tc.expr)
		if got := fmt.Sprint(refs); got != tc.refs {
			t.Errorf("metricRefs(%s) refs = %s, want %s", tc.expr, got, tc.refs)
		}
		if got := fmt.Sprint(grouping); got != tc.grouping {
			t.Errorf("metricRefs(%s) grouping = %s, want %s", tc.expr, got, tc.grouping)
		}
	}
}
