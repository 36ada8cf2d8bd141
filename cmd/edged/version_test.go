package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/testkit"
)

func TestVersionFlag(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-version"}, &out, io.Discard, nil); err != nil {
		t.Fatalf("edged -version: %v", err)
	}
	for _, want := range []string{"edged ", "commit:", "built:", "go:      " + runtime.Version()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("edged -version printed\n%s\nwant it to contain %q", out.String(), want)
		}
	}
}

func TestVersionOverrides(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "v9.8.7", "0123abc", "2026-12-05T15:00:00Z"
	id := identity()
	if id.Version != "v9.8.7" || id.Commit != "0123abc" || id.Date != "2026-12-05T15:00:00Z" {
		t.Errorf("identity() = %+v, want the -ldflags -X values", id)
	}
	if got := (buildIdentity{Commit: "abc", Modified: true}).commitLabel(); got != "abc-modified" {
		t.Errorf("commitLabel of a modified tree = %q", got)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	l, _ := startDaemon(t)
	_, body := fetch(t, "http://"+l.Admin+"/metrics")
	re := regexp.MustCompile(`(?m)^edged_build_info\{commit="[^"]+",go_version="` + regexp.QuoteMeta(runtime.Version()) + `",version="[^"]+"\} 1$`)
	if !re.MatchString(body) {
		t.Errorf("/metrics has no edged_build_info line matching %s", re)
	}
}

func TestHealthcheck(t *testing.T) {
	l, _ := startDaemon(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	closed := testkit.RefusedAddr(t)
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"healthy", []string{"-url", "http://" + l.Admin + "/healthz"}, 0, ""},
		{"503", []string{"-url", down.URL + "/healthz"}, 1, "503 Service Unavailable"},
		{"refused", []string{"-url", "http://" + closed + "/healthz"}, 1, "connection refused"},
		{"bad url", []string{"-url", "::"}, 1, "missing protocol scheme"},
		{"extra argument", []string{"now"}, 2, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			if code := runHealthcheck(tc.args, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.message) || (tc.message == "") != (stderr.Len() == 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.message)
			}
		})
	}
}

// -h names the subcommands and says what each signal does.
func TestUsageText(t *testing.T) {
	var out strings.Builder
	_, err := parseFlags([]string{"-h"}, &out)
	if err == nil {
		t.Fatal("-h: no error")
	}
	for _, want := range []string{"edged -version", "edged healthcheck", "SIGHUP reloads the configuration file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h does not say %q:\n%s", want, out.String())
		}
	}
}
