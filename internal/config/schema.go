package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The schema is the struct declarations in config.go: each field of Config,
// and of the types it contains, is one key of the file, described by its
// tags:
//
//	yaml:"name"       the key, required on every field.
//	default:"value"   the default, written as in the file ("10s", "64KiB",
//	                  "[a, b]"); the text of a string key is taken as is.
//	                  Without it the default is the zero value.
//	check:"rule ..."  value rules, space separated (see parseRules):
//	                  ">0", ">=0", "min=X", "max=X", "range=[X,Y]" (or
//	                  with "(" / ")" for open ends), "oneof=a|b|c", and
//	                  "if=key": the rules apply only when the sibling key
//	                  is set (not zero).
//	kind:"k"          what a string (or each string of a list) holds:
//	                  "address" (host:port, checked; empty allowed when the
//	                  default is empty), "host" (lowercased), "field" (an
//	                  HTTP field name, checked and canonicalized; an
//	                  explicit [] stays non-nil), "cidr" (checked),
//	                  "method" (a request method: a token, kept as
//	                  written, since methods are case-sensitive).
//
// Parse decodes, fills defaults and checks through these tags; Validate
// checks the same rules, then the rules between keys in validate.go; the
// tests compare docs/configuration.md, docs/edged.example.yaml and the
// generated default.yaml with them. Adding a key is adding a field.

// key is one declared key: one field of a config struct.
type key struct {
	name  string // the YAML key
	index int    // the field's index in its struct
	typ   reflect.Type
	def   string // the default tag; "" means the zero value
	kind  string
	rules []rule
	guard int // index of the field that turns the rules on; -1: always on
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[ByteSize]()
)

// keysOf returns the keys of struct type t in declaration order. It panics
// on a malformed declaration, which TestSchema rules out.
func keysOf(t reflect.Type) []key {
	ks := make([]key, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" {
			panic(fmt.Sprintf("config: %s.%s has no yaml tag", t.Name(), f.Name))
		}
		k := key{name: name, index: i, typ: f.Type, def: f.Tag.Get("default"), kind: f.Tag.Get("kind"), guard: -1}
		rules, guard, err := parseRules(f.Tag.Get("check"), f.Type)
		if err != nil {
			panic(fmt.Sprintf("config: %s.%s: %v", t.Name(), f.Name, err))
		}
		k.rules = rules
		if guard != "" {
			k.guard = slices.IndexFunc(reflect.VisibleFields(t), func(sf reflect.StructField) bool { return sf.Tag.Get("yaml") == guard })
			if k.guard < 0 {
				panic(fmt.Sprintf("config: %s.%s: if=%s names no sibling key", t.Name(), f.Name, guard))
			}
		}
		ks = append(ks, k)
	}
	return ks
}

// fieldsOf returns the decoders of the keys of the struct v points into.
func fieldsOf(v reflect.Value) []field {
	ks := keysOf(v.Type())
	fs := make([]field, len(ks))
	for i, k := range ks {
		fs[i] = field{key: k.name, dec: valueFunc(v.Field(k.index), k.kind)}
	}
	return fs
}

// valueFunc returns the decoder for the addressable value v.
func valueFunc(v reflect.Value, kind string) fieldFunc {
	switch v.Type() {
	case durationType:
		return duration(v.Addr().Interface().(*Duration))
	case sizeType:
		return size(v.Addr().Interface().(*ByteSize))
	}
	switch v.Kind() {
	case reflect.String:
		return str(v.Addr().Interface().(*string))
	case reflect.Int:
		return integer(v.Addr().Interface().(*int))
	case reflect.Bool:
		return boolean(v.Addr().Interface().(*bool))
	case reflect.Float64:
		return number(v.Addr().Interface().(*float64))
	case reflect.Struct:
		return sub(fieldsOf(v))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			return strList(v.Addr().Interface().(*[]string), kind)
		}
		return structList(v)
	}
	panic("config: no decoder for " + v.Type().String())
}

// normalizer is implemented by list items that fill derived values after
// decoding (Site names its unnamed origins).
type normalizer interface{ normalize() }

// setDefaults sets every field of the struct v points into, recursively, to
// its declared default. A default that does not decode panics; TestSchema
// decodes them all.
func setDefaults(v reflect.Value) {
	for _, k := range keysOf(v.Type()) {
		f := v.Field(k.index)
		if k.def != "" {
			d := &decoder{file: "default tag", lines: make(map[string]int)}
			// Decoded as plain values: a default is kept as written (a
			// field name is not canonicalized, so CDN-Cache-Control stays).
			valueFunc(f, "")(d, k.name, 0, defaultNode(k))
			if len(d.errs) > 0 {
				panic(fmt.Sprintf("config: bad default for %s.%s: %v", v.Type().Name(), k.name, join(d.errs)))
			}
		}
		if f.Kind() == reflect.Struct && f.Type() != durationType && f.Type() != sizeType {
			setDefaults(f)
		}
	}
}

// defaultNode turns a default tag into the YAML value it stands for: a
// string key's text as is, a list parsed as YAML, any other scalar as a
// plain YAML scalar.
func defaultNode(k key) *yaml.Node {
	switch k.typ.Kind() {
	case reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: k.def}
	case reflect.Slice:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(k.def), &doc); err != nil || len(doc.Content) == 0 {
			panic(fmt.Sprintf("config: default of %s is not a YAML list: %q", k.name, k.def))
		}
		return doc.Content[0]
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Value: k.def}
}

// defaults returns the configuration used for omitted keys.
func defaults() Config {
	var c Config
	setDefaults(reflect.ValueOf(&c).Elem())
	return c
}

// defaultSite returns a Site with every defaulted field set.
func defaultSite() Site {
	var s Site
	setDefaults(reflect.ValueOf(&s).Elem())
	return s
}

// typeName is how docs/configuration.md names the type of a key.
func typeName(k key) string {
	t := k.typ
	switch {
	case k.kind == "address":
		return "address"
	case t == durationType:
		return "duration"
	case t == sizeType:
		return "size"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int:
		return "integer"
	case reflect.Bool:
		return "boolean"
	case reflect.Float64:
		return "number"
	case reflect.Struct:
		return "mapping"
	case reflect.Slice:
		switch {
		case t.Elem().Kind() == reflect.Struct:
			return "list of " + strings.ToLower(t.Elem().Name()) + "s"
		case k.kind == "field":
			return "list of field names"
		case k.kind == "cidr":
			return "list of CIDRs"
		case k.kind == "method":
			return "list of methods"
		}
		return "list of strings"
	}
	return t.String()
}
