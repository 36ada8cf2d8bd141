package purge_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/purge"
)

func TestRunCLI(t *testing.T) {
	p, rec, _ := newTestPurger(t, purge.Config{})
	srv := httptest.NewServer(p)
	defer srv.Close()
	t.Setenv(purge.TokenEnv, "")

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := purge.RunCLI(args, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run("-admin", srv.URL, "-token", allToken, "--url", "https://a.example/x", "--url", "http://a.example/y",
		"--tag", "t1", "--prefix", "a.example/img/", "--host", "b.example", "--soft")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res purge.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.ID == "" || !res.Soft || res.Matched.URLs != 2 {
		t.Fatalf("stdout %q: %v", out, err)
	}
	want := purge.Selector{URLs: []string{"https://a.example/x", "http://a.example/y"}, Tags: []string{"t1"},
		Prefixes: []string{"a.example/img/"}, Hosts: []string{"b.example"}, Soft: true}
	if got := rec.selectors(); len(got) != 1 || !equalSel(got[0], want) {
		t.Fatalf("invalidator got %+v", got)
	}

	// Receipt lookup, token from the environment, admin without scheme.
	t.Setenv(purge.TokenEnv, allToken)
	code, out, errs = run("-admin", strings.TrimPrefix(srv.URL, "http://"), "-receipt", res.ID)
	if code != 0 || !strings.Contains(out, `"origin": "node-1"`) {
		t.Fatalf("receipt: exit %d: %s %s", code, out, errs)
	}
	t.Setenv(purge.TokenEnv, "")

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"wrong token", []string{"-admin", srv.URL, "-token", "wrong", "--tag", "x"}, 1, "401 Unauthorized): invalid bearer token"},
		{"site-limited", []string{"-admin", srv.URL, "-token", siteToken, "--tag", "x"}, 1, "may not purge by tag"},
		{"unknown receipt", []string{"-admin", srv.URL, "-token", allToken, "-receipt", "abc"}, 1, "404"},
		{"unreachable", []string{"-admin", "http://127.0.0.1:1", "-token", allToken, "--tag", "x"}, 1, "edged purge:"},
		{"no selector", []string{"-admin", srv.URL, "-token", allToken}, 2, "empty selector"},
		{"no token", []string{"-admin", srv.URL, "--tag", "x"}, 2, "no token"},
		{"relative url", []string{"-admin", srv.URL, "-token", allToken, "--url", "/x"}, 2, "not an absolute"},
		{"unknown flag", []string{"-admin", srv.URL, "--nope"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"-token", allToken, "https://a.example/"}, 2, "unexpected argument"},
		{"bad admin", []string{"-admin", "ftp://x", "-token", allToken, "--tag", "x"}, 2, "-admin"},
		{"receipt and selector", []string{"-token", allToken, "-receipt", "abc", "--tag", "x"}, 2, "cannot be combined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(rec.selectors())
			code, _, errs := run(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.msg)
			}
			if len(rec.selectors()) != n {
				t.Fatal("purged")
			}
		})
	}
	if code, _, _ := run("-h"); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
}

func equalSel(a, b purge.Selector) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
