package edge

import (
	"net/http"
	"testing"
)

func TestFieldSetMatch(t *testing.T) {
	def := newFieldSet(defaultUnkeyedHeaders[:])
	tests := []struct {
		name string
		want bool
	}{
		{"X-Forwarded-Host", true},
		{"X-Forwarded-Anything", true},
		{"X_forwarded_host", true},
		{"X-Forwarded-", true},
		{"X-Forwarded-For", false}, // edged extends it
		{"X_forwarded_for", true},  // not edged's field: CGI would read it as X-Forwarded-For
		{"X-Forwarded", false},
		{"X-Forwardedness", false},
		{"X-Original-Url", true},
		{"X-Rewrite-Url", true},
		{"X-Override-Host", true},
		{"Forwarded", true},
		{"X-Real-Ip", true},
		{"X-Real-Ipx", false},
		{"X-Host", true},
		{"X-Hostname", false},
		{"X-Custom-Ip-Authorization", true},
		{"X-Http-Method", true},
		{"X-Http-Method-Override", true},
		{"X-Method-Override", true},
		{"Accept", false},
		{"X-Requested-With", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := def.match(tt.name); got != tt.want {
			t.Errorf("default set: match(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if all := newFieldSet([]string{"*"}); !all.match("Accept") || all.match("X-Forwarded-For") {
		t.Error(`"*" should match every field but X-Forwarded-For`)
	}
	if none := newFieldSet([]string{}); none.match("X-Forwarded-Host") {
		t.Error("an empty set matched")
	}
	if own := newFieldSet([]string{"x-forwarded-for"}); !own.match("X-Forwarded-For") {
		t.Error("X-Forwarded-For listed by name should match")
	}
}

// Stripping a typical request's fields costs no allocation.
func TestFieldSetStripAllocs(t *testing.T) {
	def := newFieldSet(defaultUnkeyedHeaders[:])
	hd := http.Header{
		"Accept": {"*/*"}, "Accept-Encoding": {"gzip"}, "User-Agent": {"x"}, "Cookie": {"a=b"},
		"X-Requested-With": {"XMLHttpRequest"}, "Referer": {"https://example.com/"}, "Accept-Language": {"en"},
	}
	if n := testing.AllocsPerRun(100, func() { def.strip(hd) }); n != 0 {
		t.Errorf("strip allocated %v times per request", n)
	}
	if len(hd) != 7 {
		t.Errorf("strip removed ordinary fields: %v", hd)
	}
}

func BenchmarkFieldSetStrip(b *testing.B) {
	def := newFieldSet(defaultUnkeyedHeaders[:])
	hd := http.Header{
		"Accept": {"*/*"}, "Accept-Encoding": {"gzip"}, "User-Agent": {"x"}, "Cookie": {"a=b"},
		"X-Requested-With": {"XMLHttpRequest"}, "Referer": {"https://example.com/"}, "Accept-Language": {"en"},
		"X-Forwarded-For": {"192.0.2.1"},
	}
	b.ReportAllocs()
	for b.Loop() {
		def.strip(hd)
	}
}
