package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse decodes data, the contents of the file named filename, into a
// Config: strictly (see the package documentation), filling defaults for
// omitted keys, lowercasing hosts, naming unnamed origins after their URL's
// host, and finally checking the result as Validate does.
//
// On failure Parse returns a nil Config and every problem it found, each an
// *Error naming filename, the line and the key path, ordered by line; one
// problem is returned as the bare *Error, several as an errors.Join of them
// (one per line of text). Structural problems (syntax, unknown or duplicate
// keys, wrong types, malformed values) are reported first: when there are
// any, the value checks of Validate are not run, since they would mostly
// repeat them.
//
// checks, if any, run last, on a configuration that passed everything
// else; their problems are reported like the others, with the file and
// the line of the key they name.
//
// An empty file, or one holding only comments, yields the defaults.
func Parse(filename string, data []byte, checks ...Check) (*Config, error) {
	d := &decoder{file: filename, lines: make(map[string]int)}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	c := defaults()
	if root != nil {
		d.mapping("", root.Line, root, fieldsOf(reflect.ValueOf(&c).Elem()))
	}
	if len(d.errs) == 0 {
		d.place(c.validate())
	}
	for _, check := range checks {
		if len(d.errs) > 0 {
			break
		}
		d.place(check(&c))
	}
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, join(d.errs)
	}
	return &c, nil
}

// decoder walks a yaml.Node tree against the schema, filling a Config and
// collecting errors.
type decoder struct {
	file string
	errs []*Error
	// lines maps each key path seen in the file to the line of its key (or,
	// for list items like "sites[0]", of the item).
	lines map[string]int
	// visits counts the values decoded; aliases can make it much larger
	// than the file, so it is capped at maxVisits.
	visits int
}

// maxVisits bounds the values decoded from one file, so that aliases (a
// list of aliases to sites whose origins are a list of aliases, ...) cannot
// make a small file expensive to decode. Real configurations stay far below
// it.
const maxVisits = 100_000

// visit counts one decoded value and reports whether decoding may go on.
// The first time the budget runs out it records an error at line.
func (d *decoder) visit(line int) bool {
	d.visits++
	if d.visits == maxVisits+1 {
		d.errorf(line, "", "too many values (more than %d, counting each use of an alias); use fewer aliases", maxVisits)
	}
	return d.visits <= maxVisits
}

// fieldFunc decodes the value n of the key at path, written on line.
type fieldFunc func(d *decoder, path string, line int, n *yaml.Node)

// field is one known key of a mapping.
type field struct {
	key string
	dec fieldFunc
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data as exactly one YAML document and returns its root
// node, or nil if data holds no document at all.
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, d.syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: d.file, Line: extra.Line,
			Msg: "multiple YAML documents; the configuration must be a single document"}
	case !errors.Is(err, io.EOF):
		return nil, d.syntaxError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// syntaxError turns an error from the YAML parser into an *Error.
func (d *decoder) syntaxError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return &Error{File: d.file, Line: line, Msg: "invalid YAML: " + msg}
}

// place adds problems found after decoding, each at the line of the key
// it names.
func (d *decoder) place(errs []*Error) {
	for _, e := range errs {
		e.File = d.file
		e.Line = d.lineOf(e.Path)
		d.errs = append(d.errs, e)
	}
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the line recorded for path or, failing that, for its
// nearest ancestor that was written in the file; 0 if none was.
func (d *decoder) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return 0
}

// parentPath strips the last ".key" or "[i]" from a key path.
func parentPath(p string) string {
	i := max(strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '['))
	if i < 0 {
		return ""
	}
	return p[:i]
}

// joinPath appends key to path. Keys that are not plain words (all known
// keys are) are quoted, so that an error stays on one line.
func joinPath(path, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '<')
	}) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names the kind of value n holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!timestamp":
			return "a timestamp"
		default:
			return "a value tagged " + strconv.Quote(tag)
		}
	}
	return "an unsupported YAML node"
}

func (d *decoder) typeError(line int, path, want string, n *yaml.Node) {
	d.errorf(line, path, "expected %s, got %s", want, describe(n))
}

// mapping decodes the mapping n at path against fields. A null n leaves
// every field at its default.
func (d *decoder) mapping(path string, line int, n *yaml.Node, fields []field) {
	if !d.visit(line) {
		return
	}
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.typeError(line, path, "a mapping", n)
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && d.visits <= maxVisits; i += 2 {
		kline := n.Content[i].Line
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.errorf(kline, path, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errorf(kline, joinPath(path, k.Value), "merge keys are not supported")
			continue
		}
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(kline, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = kline
		fi := slices.IndexFunc(fields, func(f field) bool { return f.key == k.Value })
		if fi < 0 {
			d.errorf(kline, p, "unknown key (known: %s)", knownKeys(k.Value, fields))
			continue
		}
		d.lines[p] = kline
		fields[fi].dec(d, p, kline, n.Content[i+1])
	}
}

// knownKeys lists the keys of fields, closest to the misspelt key first.
func knownKeys(key string, fields []field) string {
	type cand struct {
		key  string
		dist int
	}
	cs := make([]cand, len(fields))
	for i, f := range fields {
		cs[i] = cand{f.key, editDistance(key, f.key)}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return cmp.Compare(a.dist, b.dist) })
	keys := make([]string, len(cs))
	for i, c := range cs {
		keys[i] = c.key
	}
	return strings.Join(keys, ", ")
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 {
		a = a[:64]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sequence calls item for each element of the sequence n at path. It
// returns false, having called nothing, if n is null or not a sequence.
func (d *decoder) sequence(path string, line int, n *yaml.Node, item func(path string, line int, n *yaml.Node)) bool {
	if !d.visit(line) {
		return false
	}
	n = resolve(n)
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(line, path, "a sequence", n)
		return false
	}
	for i, c := range n.Content {
		if d.visits > maxVisits {
			break
		}
		p := path + "[" + strconv.Itoa(i) + "]"
		d.lines[p] = c.Line
		item(p, c.Line, c)
	}
	return true
}

// scalar resolves n and checks it is a non-null scalar whose tag is one of
// tags; otherwise it reports a type error (expected want) and returns nil.
// A null n returns nil silently: the field keeps its default.
func (d *decoder) scalar(path string, line int, n *yaml.Node, want string, tags ...string) *yaml.Node {
	if !d.visit(line) {
		return nil
	}
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.ScalarNode || !slices.Contains(tags, n.ShortTag()) {
		d.typeError(line, path, want, n)
		return nil
	}
	return n
}

func str(dst *string) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		if n = d.scalar(path, line, n, "a string", "!!str"); n != nil {
			*dst = n.Value
		}
	}
}

func integer(dst *int) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		if n = d.scalar(path, line, n, "an integer", "!!int"); n == nil {
			return
		}
		var v int
		if err := n.Decode(&v); err != nil {
			d.errorf(line, path, "integer %s out of range", n.Value)
			return
		}
		*dst = v
	}
}

func boolean(dst *bool) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		if n = d.scalar(path, line, n, "a boolean (true or false)", "!!bool"); n == nil {
			return
		}
		var v bool
		if err := n.Decode(&v); err != nil {
			d.errorf(line, path, "invalid boolean %q", n.Value)
			return
		}
		*dst = v
	}
}

func number(dst *float64) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		if n = d.scalar(path, line, n, "a number", "!!float", "!!int"); n == nil {
			return
		}
		var v float64
		if err := n.Decode(&v); err != nil {
			d.errorf(line, path, "invalid number %q", n.Value)
			return
		}
		*dst = v
	}
}

func duration(dst *Duration) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		if n = d.scalar(path, line, n, `a duration (like "5s")`, "!!str", "!!int"); n == nil {
			return
		}
		if n.ShortTag() == "!!int" {
			var v int64
			if err := n.Decode(&v); err != nil || v != 0 {
				d.errorf(line, path, `invalid duration %s: missing unit (like "%ss")`, n.Value, n.Value)
				return
			}
			*dst = 0
			return
		}
		v, err := ParseDuration(n.Value)
		if err != nil {
			d.errorf(line, path, "%v", err)
			return
		}
		*dst = v
	}
}

func size(dst *ByteSize) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		if n = d.scalar(path, line, n, `a size (like "64KiB")`, "!!str", "!!int"); n == nil {
			return
		}
		if n.ShortTag() == "!!int" {
			var v int64
			if err := n.Decode(&v); err != nil {
				d.errorf(line, path, "invalid size %s: too large", n.Value)
				return
			}
			if v < 0 {
				d.errorf(line, path, "invalid size %s: must not be negative", n.Value)
				return
			}
			*dst = ByteSize(v)
			return
		}
		v, err := ParseByteSize(n.Value)
		if err != nil {
			d.errorf(line, path, "%v", err)
			return
		}
		*dst = v
	}
}

// sub decodes a nested mapping.
func sub(fields []field) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		d.mapping(path, line, n, fields)
	}
}

// strList decodes a sequence of strings holding kind (see schema.go):
// hosts are lowercased, field names checked and canonicalized, methods
// checked (and kept as written). An explicit empty sequence is kept as
// empty (not nil).
func strList(dst *[]string, kind string) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		out := []string{}
		ok := d.sequence(path, line, n, func(p string, l int, item *yaml.Node) {
			var s string
			str(&s)(d, p, l, item)
			switch kind {
			case "host":
				s = strings.ToLower(s)
			case "field":
				if s != "" && !validFieldName(s) {
					d.errorf(l, p, "invalid header field name %q", s)
					return
				}
				s = textproto.CanonicalMIMEHeaderKey(s)
			case "method":
				if s == "" || !validFieldName(s) {
					d.errorf(l, p, "invalid method %q: want a token such as GET (case-sensitive)", s)
					return
				}
			}
			out = append(out, s)
		})
		if ok {
			*dst = out
		}
	}
}

// structList decodes a sequence of mappings into the slice v points to.
// Each item starts from its type's defaults and is normalized after
// decoding when its type has a normalize method.
func structList(v reflect.Value) fieldFunc {
	return func(d *decoder, path string, line int, n *yaml.Node) {
		out := reflect.MakeSlice(v.Type(), 0, 0)
		ok := d.sequence(path, line, n, func(p string, l int, item *yaml.Node) {
			e := reflect.New(v.Type().Elem())
			setDefaults(e.Elem())
			d.mapping(p, l, item, fieldsOf(e.Elem()))
			if nz, ok := e.Interface().(normalizer); ok {
				nz.normalize()
			}
			out = reflect.Append(out, e.Elem())
		})
		if ok && out.Len() > 0 {
			v.Set(out)
		}
	}
}

func validFieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
