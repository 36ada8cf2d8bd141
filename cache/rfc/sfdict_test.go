package rfc

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestSFParseDictionary follows the parsing algorithms of RFC 9651 §4.2
// case by case: what a Dictionary is, and every way one fails.
func TestSFParseDictionary(t *testing.T) {
	i := func(n int64) sfMember { return sfMember{kind: sfInteger, num: n} }
	dec := func(thousandths int64) sfMember { return sfMember{kind: sfDecimal, num: thousandths} }
	str := func(s string) sfMember { return sfMember{kind: sfString, str: s} }
	tok := func(s string) sfMember { return sfMember{kind: sfToken, str: s} }
	yes, no := sfMember{kind: sfBoolean, num: 1}, sfMember{kind: sfBoolean}
	bad := sfDictionary(nil)
	tests := []struct {
		name  string
		lines []string
		want  sfDictionary // nil: fails to parse
	}{
		// §4.2.2 Dictionaries.
		{"two members", []string{"a=1, b=2"}, sfDictionary{"a": i(1), "b": i(2)}},
		{"no space after comma", []string{"a=1,b=2"}, sfDictionary{"a": i(1), "b": i(2)}},
		{"OWS around comma", []string{"a=1 ,\tb=2"}, sfDictionary{"a": i(1), "b": i(2)}},
		{"bare key is Boolean true", []string{"no-store, max-age=5"}, sfDictionary{"no-store": yes, "max-age": i(5)}},
		{"repeated key keeps the last value", []string{"a=1, a=2"}, sfDictionary{"a": i(2)}},
		{"key may start with *", []string{"*a_b-c.d*=1"}, sfDictionary{"*a_b-c.d*": i(1)}},
		{"empty field", []string{""}, sfDictionary{}},
		{"blank field", []string{"   "}, sfDictionary{}},
		{"field lines combined", []string{"a=1", "b=2"}, sfDictionary{"a": i(1), "b": i(2)}},
		{"empty field line adds nothing", []string{"a=1", ""}, sfDictionary{"a": i(1)}},
		{"trailing comma", []string{"a=1,"}, bad},
		{"trailing comma and space", []string{"a=1, "}, bad},
		{"leading comma", []string{",a=1"}, bad},
		{"empty member", []string{"a=1,,b=2"}, bad},
		{"trailing garbage after a member", []string{"max-age=60 &&&&"}, bad},
		{"trailing garbage member", []string{"max-age=60, &&&&"}, bad},
		{"upper-case key", []string{"Max-Age=60"}, bad},
		{"key starting with a digit", []string{"1a=1"}, bad},
		{"space before =", []string{"a =1"}, bad},
		{"space after =", []string{"a= 1"}, bad},
		{"non-ASCII anywhere", []string{"a=1, b=\"\u00e9\""}, bad},
		{"a line ending in a comma", []string{"a=1,", "b=2"}, bad},

		// §4.2.4 Integers and Decimals.
		{"zero", []string{"a=0"}, sfDictionary{"a": i(0)}},
		{"negative", []string{"a=-10"}, sfDictionary{"a": i(-10)}},
		{"15 digits", []string{"a=999999999999999"}, sfDictionary{"a": i(999999999999999)}},
		{"16 digits", []string{"a=1000000000000000"}, bad},
		{"leading zeros", []string{"a=007"}, sfDictionary{"a": i(7)}},
		{"plus sign", []string{"a=+1"}, bad},
		{"minus alone", []string{"a=-"}, bad},
		{"double minus", []string{"a=--1"}, bad},
		{"decimal", []string{"a=60.5"}, sfDictionary{"a": dec(60500)}},
		{"negative decimal", []string{"a=-1.25"}, sfDictionary{"a": dec(-1250)}},
		{"decimal 12.3 digits", []string{"a=123456789012.123"}, sfDictionary{"a": dec(123456789012123)}},
		{"decimal 13 integer digits", []string{"a=1234567890123.1"}, bad},
		{"decimal 4 fraction digits", []string{"a=1.1234"}, bad},
		{"decimal ending in a dot", []string{"a=1."}, bad},
		{"two dots", []string{"a=1.2.3"}, bad},
		{"number then letters", []string{"a=10s"}, bad},

		// §4.2.5 Strings.
		{"string", []string{`a="10000"`}, sfDictionary{"a": str("10000")}},
		{"string with escapes", []string{`a="x\"y\\z"`}, sfDictionary{"a": str(`x"y\z`)}},
		{"string with comma", []string{`a="x, y", b=1`}, sfDictionary{"a": str("x, y"), "b": i(1)}},
		{"other escape", []string{`a="x\y"`}, bad},
		{"unterminated string", []string{`a="x`}, bad},
		{"control byte in string", []string{"a=\"x\x01\""}, bad},
		{"tab in string", []string{"a=\"x\ty\""}, bad},

		// §4.2.6 Tokens.
		{"token", []string{"a=foo/bar:baz"}, sfDictionary{"a": tok("foo/bar:baz")}},
		{"token with upper case and *", []string{"a=*Foo"}, sfDictionary{"a": tok("*Foo")}},

		// §4.2.7 Byte Sequences.
		{"byte sequence", []string{"a=:aGVsbG8=:"}, sfDictionary{"a": {kind: sfByteSeq}}},
		{"byte sequence without padding", []string{"a=:aGVsbG8:"}, sfDictionary{"a": {kind: sfByteSeq}}},
		{"empty byte sequence", []string{"a=::"}, sfDictionary{"a": {kind: sfByteSeq}}},
		{"byte sequence bad character", []string{"a=:aGVs*:"}, bad},
		{"byte sequence bad length", []string{"a=:a:"}, bad},
		{"byte sequence padding inside", []string{"a=:aG=Vs:"}, bad},
		{"unterminated byte sequence", []string{"a=:aGVs"}, bad},

		// §4.2.8 Booleans.
		{"true", []string{"a=?1"}, sfDictionary{"a": yes}},
		{"false", []string{"a=?0"}, sfDictionary{"a": no}},
		{"boolean 2", []string{"a=?2"}, bad},
		{"boolean alone", []string{"a=?"}, bad},

		// §4.2.9 Dates, §4.2.10 Display Strings (RFC 9651).
		{"date", []string{"a=@1659578233"}, sfDictionary{"a": {kind: sfDate, num: 1659578233}}},
		{"decimal date", []string{"a=@1.5"}, bad},
		{"display string", []string{`a=%"caf%c3%a9"`}, sfDictionary{"a": {kind: sfDisplayString, str: "café"}}},
		{"display string upper-case hex", []string{`a=%"%C3%A9"`}, bad},
		{"display string invalid UTF-8", []string{`a=%"%c3"`}, bad},
		{"display string without quote", []string{"a=%x"}, bad},
		{"unterminated display string", []string{`a=%"x`}, bad},

		// §4.2.1.2 Inner Lists, §4.2.3.2 Parameters.
		{"inner list", []string{`a=(1 "x" foo);p=1`}, sfDictionary{"a": {kind: sfInnerList, list: []sfMember{i(1), str("x"), tok("foo")}}}},
		{"inner list extra spaces", []string{"a=( 1  2 )"}, sfDictionary{"a": {kind: sfInnerList, list: []sfMember{i(1), i(2)}}}},
		{"empty inner list", []string{"a=()"}, sfDictionary{"a": {kind: sfInnerList}}},
		{"inner list with commas", []string{"a=(1,2)"}, bad},
		{"inner list with a tab", []string{"a=(1\t2)"}, bad},
		{"unterminated inner list", []string{"a=(1 2"}, bad},
		{"nested inner list", []string{"a=((1))"}, bad},
		{"parameters on a bare key", []string{"a;p=1;q, b"}, sfDictionary{"a": yes, "b": yes}},
		{"parameters on an item", []string{"a=1;p=?0;q=\"x\""}, sfDictionary{"a": i(1)}},
		{"space after semicolon", []string{"a=1; p=1"}, sfDictionary{"a": i(1)}},
		{"space before semicolon", []string{"a=1 ;p=1"}, bad},
		{"upper-case parameter key", []string{"a=1;P=1"}, bad},
		{"bad parameter value", []string{"a=1;p=&"}, bad},
		{"parameter value inner list", []string{"a=1;p=(1)"}, bad},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sfParseDictionary(tc.lines)
			if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sfParseDictionary(%q) = %#v, %v; want %#v", tc.lines, got, ok, tc.want)
			}
		})
	}
}

// sfSerialize writes d back as members of a field (RFC 9651 §4.1, for the
// values the parser keeps; a Byte Sequence's bytes are not kept, so it
// becomes ::).
func sfSerialize(d sfDictionary) []string {
	var parts []string
	for k, m := range d {
		if m.isTrue() {
			parts = append(parts, k)
			continue
		}
		parts = append(parts, k+"="+sfSerializeItem(m))
	}
	return parts
}

func sfSerializeItem(m sfMember) string {
	switch m.kind {
	case sfInteger:
		return strconv.FormatInt(m.num, 10)
	case sfDecimal:
		sign, n := "", m.num
		if n < 0 {
			sign, n = "-", -n
		}
		return sign + strconv.FormatInt(n/1000, 10) + "." + strconv.FormatInt(1000+n%1000, 10)[1:]
	case sfString:
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(m.str) + `"`
	case sfToken:
		return m.str
	case sfByteSeq:
		return "::"
	case sfBoolean:
		return "?" + strconv.FormatInt(m.num, 10)
	case sfDate:
		return "@" + strconv.FormatInt(m.num, 10)
	case sfDisplayString:
		var b strings.Builder
		for _, c := range []byte(m.str) {
			if c == '%' || c == '"' || c < 0x20 || c >= 0x7f {
				b.WriteString("%" + strconv.FormatInt(int64(c)>>4, 16) + strconv.FormatInt(int64(c)&15, 16))
			} else {
				b.WriteByte(c)
			}
		}
		return `%"` + b.String() + `"`
	case sfInnerList:
		items := make([]string, len(m.list))
		for i, it := range m.list {
			items[i] = sfSerializeItem(it)
		}
		return "(" + strings.Join(items, " ") + ")"
	}
	panic("unknown kind")
}

// FuzzSFDictionary: the parser never panics, accepts only ASCII, gives
// only well-formed keys, and what it accepts serializes (RFC 9651 §4.1) to
// a field that parses to the same dictionary, whether as one field line or
// split into two at a member boundary.
func FuzzSFDictionary(f *testing.F) {
	for _, s := range []string{
		"max-age=60, no-store", `max-age="10000"`, "max-age=60, &&&&", "a=(1 2);p=?1, b=:aGk=:",
		`a=%"caf%c3%a9", b=@1, c=-1.5, d=*tok/x`, "", "a=1,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, ok := sfParseDictionary([]string{in})
		if !ok {
			return
		}
		for i := 0; i < len(in); i++ {
			if in[i] >= 0x80 {
				t.Fatalf("accepted non-ASCII %q", in)
			}
		}
		for k := range d {
			if _, ok := (&sfParser{s: k}).key(); !ok || strings.ContainsAny(k, " ,=;") {
				t.Fatalf("key %q from %q", k, in)
			}
		}
		parts := sfSerialize(d)
		out := strings.Join(parts, ", ")
		back, ok := sfParseDictionary([]string{out})
		if !ok || !reflect.DeepEqual(back, d) {
			t.Fatalf("%q parsed to %#v, serialized to %q, which parsed to %#v, %v", in, d, out, back, ok)
		}
		if len(parts) > 1 {
			lines := []string{parts[0], strings.Join(parts[1:], ",")}
			two, ok := sfParseDictionary(lines)
			if !ok || !reflect.DeepEqual(two, d) {
				t.Fatalf("%q as two lines %q parsed to %#v, %v", out, lines, two, ok)
			}
		}
	})
}
