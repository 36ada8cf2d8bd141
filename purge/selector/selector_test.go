package selector_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/purge/selector"
)

var both = []string{"http", "https"}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want selector.Prefix
	}{
		{"a.example", selector.Prefix{Schemes: both, Host: "a.example"}},
		{"a.example/", selector.Prefix{Schemes: both, Host: "a.example", Path: "/"}},
		{"a.example:8080/img/", selector.Prefix{Schemes: both, Host: "a.example:8080", Path: "/img/"}},
		{"HTTPS://a.example/img?x", selector.Prefix{Schemes: []string{"https"}, Host: "a.example", Path: "/img?x"}},
		{"http://[::1]:80/x", selector.Prefix{Schemes: []string{"http"}, Host: "[::1]:80", Path: "/x"}},
	}
	for _, tc := range tests {
		got, err := selector.ParsePrefix(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePrefix(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "/x", "ftp://a.example/", "https:///x", "a.example?x", "a..example/", "-a.example/", "a.example/#x", "::1/x"} {
		if _, err := selector.ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q): no error", bad)
		}
	}
}

// Parse hands a consumer every part it needs, so that nobody parses the
// strings again: URL parts as net/url gives them, prefixes split, tags and
// hosts as written.
func TestParse(t *testing.T) {
	sel := selector.Selector{
		URLs:     []string{"https://A.example:8443/a%2Fb/c%20d?y=2&x=1", "HTTP://b.example"},
		Prefixes: []string{"a.example/img/", "https://b.example"},
		Tags:     []string{"t1", "cat:shoes"},
		Hosts:    []string{"C.example:8080", "[::1]"},
		Soft:     true,
	}
	got, err := sel.Parse()
	if err != nil {
		t.Fatal(err)
	}
	want := selector.Parsed{
		URLs: []selector.URL{
			{Scheme: "https", Host: "A.example:8443", Path: "/a%2Fb/c%20d", RawQuery: "y=2&x=1"},
			{Scheme: "http", Host: "b.example"},
		},
		Prefixes: []selector.Prefix{
			{Schemes: both, Host: "a.example", Path: "/img/"},
			{Schemes: []string{"https"}, Host: "b.example"},
		},
		Tags:  []string{"t1", "cat:shoes"},
		Hosts: []string{"C.example:8080", "[::1]"},
		Soft:  true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
	wantHosts := []string{"A.example:8443", "b.example", "a.example", "b.example", "C.example:8080", "[::1]"}
	if hs := got.HostsNamed(); !reflect.DeepEqual(hs, wantHosts) {
		t.Fatalf("HostsNamed = %q, want %q", hs, wantHosts)
	}
	if p, err := (selector.Selector{}).Parse(); err != nil || !reflect.DeepEqual(p, selector.Parsed{}) {
		t.Fatalf("empty selector: %+v, %v", p, err)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("x", selector.MaxTagLen+1)
	tests := []struct {
		sel selector.Selector
		max int
		msg string // "" means valid
	}{
		{selector.Selector{Tags: []string{"a"}}, 0, ""},
		{selector.Selector{}, 0, "empty selector"},
		{selector.Selector{Tags: []string{"a", "b"}}, 1, "too many items: 2 URLs, prefixes, tags and hosts in one purge; the limit is 1"},
		{selector.Selector{Tags: make([]string, selector.DefaultMaxItems+1)}, 0, "the limit is 1000"},
		{selector.Selector{URLs: []string{"/x"}}, 0, `urls[0] "/x": not an absolute http or https URL`},
		{selector.Selector{URLs: []string{"https://u@a.example/"}}, 0, "user info"},
		{selector.Selector{URLs: []string{"https://a.example/#f"}}, 0, "fragment"},
		{selector.Selector{URLs: []string{"https://a.example/ x"}}, 0, "whitespace"},
		{selector.Selector{Prefixes: []string{"ok.example", "/x"}}, 0, `prefixes[1] "/x": prefix needs a host part`},
		{selector.Selector{Tags: []string{""}}, 0, `tags[0] "": empty tag`},
		{selector.Selector{Tags: []string{long}}, 0, "tag longer than 1024 bytes"},
		{selector.Selector{Hosts: []string{"a.example:0"}}, 0, `hosts[0] "a.example:0": invalid port "0"`},
		{selector.Selector{Hosts: []string{"::1"}}, math.MaxInt, "invalid host:port (an IPv6 address needs brackets)"},
		{selector.Selector{Hosts: []string{"[::1]:443", "10.0.0.1", "a_b.example"}}, 0, ""},
	}
	for _, tc := range tests {
		err := tc.sel.Validate(tc.max)
		if tc.msg == "" {
			if err != nil {
				t.Errorf("Validate(%+v) = %v", tc.sel, err)
			}
			continue
		}
		var se *selector.Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Validate(%+v) = %v, want an *Error containing %q", tc.sel, err, tc.msg)
		}
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		sel  selector.Selector
		want string
	}{
		{selector.Selector{}, "none"},
		{selector.Selector{URLs: []string{"u"}}, "url"},
		{selector.Selector{Hosts: []string{"h"}, Soft: true}, "host"},
		{selector.Selector{Prefixes: []string{"p"}, Tags: []string{"t"}}, "mixed"},
	} {
		if got := tc.sel.Kind(); got != tc.want {
			t.Errorf("Kind(%+v) = %q, want %q", tc.sel, got, tc.want)
		}
	}
}
