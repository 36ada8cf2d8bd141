package cache

import (
	"net/http"
	"testing"
)

// TestVaryValueNormalizes checks which request field values select the
// same stored variant (RFC 9111 §4.1: whitespace where the syntax allows
// it, combined field lines, and normalizations known to keep the
// semantics).
func TestVaryValueNormalizes(t *testing.T) {
	tests := []struct {
		name  string
		field string
		a, b  []string // the field's lines in two requests; nil: absent
		same  bool
	}{
		{"whitespace around separators", "Foo", []string{"1,2"}, []string{" 1 , 2 "}, true},
		{"whitespace after a separator", "Foo", []string{"1,2"}, []string{"1, 2"}, true},
		{"tabs", "Foo", []string{"1,2"}, []string{"1,\t2"}, true},
		{"lines combined", "Foo", []string{"1, 2"}, []string{"1", "2"}, true},
		{"empty members", "Foo", []string{"1,2"}, []string{",1,,2,"}, true},
		{"runs inside a member fold", "Foo", []string{"a  b"}, []string{"a b"}, true},
		{"whitespace inside a member is kept", "Foo", []string{"a b"}, []string{"ab"}, false},
		{"order matters", "Foo", []string{"1,2"}, []string{"2,1"}, false},
		{"case matters", "Foo", []string{"a"}, []string{"A"}, false},
		{"quoted commas are not separators", "Foo", []string{`"a,b"`}, []string{`"a, b"`}, false},
		{"quoted strings are kept", "Foo", []string{`x="a  b", y`}, []string{`x="a  b",y`}, true},
		{"absent differs from empty", "Foo", nil, []string{""}, false},
		{"empty is an empty list", "Foo", []string{""}, []string{" , "}, true},
		{"Accept-Language spaces and case", "Accept-Language", []string{"en-US, fr;q=0.5"}, []string{"EN-us,fr; q=0.5"}, true},
		{"Accept-Language empty members", "Accept-Language", []string{"en,fr"}, []string{"en,,fr"}, true},
		{"Accept-Language empty differs from absent", "Accept-Language", nil, []string{""}, false},
		{"Accept-Encoding set", "Accept-Encoding", []string{"gzip, br"}, []string{"br", "GZIP;q=1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ha, hb := http.Header{}, http.Header{}
			if tt.a != nil {
				ha[tt.field] = tt.a
			}
			if tt.b != nil {
				hb[tt.field] = tt.b
			}
			va, vb := varyValue(ha, tt.field), varyValue(hb, tt.field)
			if (va == vb) != tt.same {
				t.Errorf("varyValue %q = %q, %q = %q; same: %v, want %v", tt.a, va, tt.b, vb, va == vb, tt.same)
			}
		})
	}
}
