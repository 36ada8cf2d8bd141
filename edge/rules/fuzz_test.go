package rules

import (
	"regexp"
	"strings"
	"testing"
)

// globRegexp is the reference meaning of a wildcard pattern, as a regular
// expression: '*' any run of bytes, '?' one byte, the rest literal.
func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`(?:.|[\x80-\xff])`)
		default:
			b.WriteString(regexp.QuoteMeta(string([]byte{c})))
		}
	}
	b.WriteString(`\z`)
	return regexp.MustCompile(b.String())
}

// FuzzGlob holds the wildcard matcher, and its fast shapes (exact, prefix,
// suffix), to a regular expression built from the same pattern.
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"/static/*", "/static/a.css"}, {"*.css", "/a/b.css"}, {"/", "/"}, {"*", ""},
		{"/v?/*/img/*", "/v2/x/img/y"}, {"a*b*c", "aXbYbZc"}, {"**a", "ba"}, {"?", ""}, {"*?*", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			return
		}
		// Byte-wise '?' needs byte-wise input for the reference: map
		// every byte to one Latin-1 rune is overkill; keep ASCII.
		for i := 0; i < len(pattern); i++ {
			if pattern[i] >= 0x80 {
				return
			}
		}
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return
			}
		}
		want := globRegexp(pattern).MatchString(s)
		if got := globMatch(pattern, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, want %v", pattern, s, got, want)
		}
		g := compileGlob(pattern)
		if got := g.match(s); got != want {
			t.Fatalf("compiled glob %q (kind %d) on %q = %v, want %v", pattern, g.kind, s, got, want)
		}
	})
}

// cookieRef is the reference reading of a Cookie line: split at ';',
// trim optional whitespace (SP and HTAB, RFC 9110 §5.6.3: not Unicode
// space, nor form feed), split at the first '='.
func cookieRef(line, name string) (string, bool) {
	for _, pair := range strings.Split(line, ";") {
		n, v, ok := strings.Cut(strings.Trim(pair, " \t"), "=")
		if ok && strings.Trim(n, " \t") == name {
			v = strings.Trim(v, " \t")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// FuzzCookie holds the scanning cookie lookup to the splitting one.
func FuzzCookie(f *testing.F) {
	for _, s := range [][2]string{
		{"a=1; session=xyz", "session"}, {"xsession=1; session=2", "session"}, {"a=\"q\"", "a"},
		{"a = 1 ;b=2", "a"}, {"a", "a"}, {"a=1;a=2", "a"}, {"; =x; a=", "a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, line, name string) {
		if name == "" || strings.ContainsAny(name, "=; \t") {
			return
		}
		v, ok := cookieIn(line, name)
		wv, wok := cookieRef(line, name)
		if v != wv || ok != wok {
			t.Fatalf("cookieIn(%q, %q) = %q, %v; want %q, %v", line, name, v, ok, wv, wok)
		}
	})
}
