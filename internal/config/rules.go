package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// rule is one value check from a check tag.
type rule struct {
	// must completes "must ..." in the error, e.g. "be at least 1MiB".
	must string
	ok   func(v reflect.Value) bool
}

// parseRules parses a check tag for a field of type t. It returns the rules
// and the key named by "if=", if any.
func parseRules(tag string, t reflect.Type) (rules []rule, guard string, err error) {
	for _, r := range strings.Fields(tag) {
		name, arg, _ := strings.Cut(r, "=")
		if r == ">0" || r == ">=0" {
			name = r
		}
		var ru rule
		switch name {
		case ">0":
			ru, err = boundRule(t, "0", "be greater than 0", func(c int) bool { return c > 0 })
		case ">=0":
			ru, err = boundRule(t, "0", "not be negative", func(c int) bool { return c >= 0 })
		case "min":
			ru, err = boundRule(t, arg, "be at least "+arg, func(c int) bool { return c >= 0 })
		case "max":
			ru, err = boundRule(t, arg, "be at most "+arg, func(c int) bool { return c <= 0 })
		case "range":
			ru, err = rangeRule(t, arg)
		case "oneof":
			ru = oneofRule(strings.Split(arg, "|"))
		case "if":
			guard = arg
			continue
		default:
			err = fmt.Errorf("unknown rule %q", r)
		}
		if err != nil {
			return nil, "", err
		}
		rules = append(rules, ru)
	}
	return rules, guard, nil
}

// boundRule compares a value with bound (written as in the file); good
// says whether compare(value, bound) is acceptable.
func boundRule(t reflect.Type, bound, must string, good func(c int) bool) (rule, error) {
	b, err := parseValue(t, bound)
	if err != nil {
		return rule{}, err
	}
	return rule{must: must, ok: func(v reflect.Value) bool { return good(compare(v, b)) }}, nil
}

// rangeRule parses "[lo,hi]", with "(" or ")" for an excluded end.
func rangeRule(t reflect.Type, arg string) (rule, error) {
	lo, hi, ok := strings.Cut(strings.Trim(arg, "[]()"), ",")
	if !ok || len(arg) < 2 {
		return rule{}, fmt.Errorf("range %q: want [lo,hi]", arg)
	}
	loOpen, hiOpen := arg[0] == '(', arg[len(arg)-1] == ')'
	l, err := parseValue(t, lo)
	if err != nil {
		return rule{}, err
	}
	h, err := parseValue(t, hi)
	if err != nil {
		return rule{}, err
	}
	var must string
	switch {
	case !loOpen && !hiOpen:
		must = "be between " + lo + " and " + hi
	case loOpen && !hiOpen:
		must = "be greater than " + lo + " and at most " + hi
	case !loOpen && hiOpen:
		must = "be at least " + lo + " and less than " + hi
	default:
		must = "be greater than " + lo + " and less than " + hi
	}
	return rule{must: must, ok: func(v reflect.Value) bool {
		cl, ch := compare(v, l), compare(v, h)
		return (cl > 0 || !loOpen && cl == 0) && (ch < 0 || !hiOpen && ch == 0)
	}}, nil
}

func oneofRule(values []string) rule {
	must := "be one of " + strings.Join(values, ", ") + ";"
	if n := len(values); n <= 3 {
		must = "be " + strings.Join(values[:n-1], ", ") + " or " + values[n-1]
	}
	return rule{must: must, ok: func(v reflect.Value) bool {
		s := fmt.Sprint(v.Interface())
		for _, x := range values {
			if s == x {
				return true
			}
		}
		return false
	}}
}

// parseValue decodes s, written as in the file, as a value of type t.
func parseValue(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	d := &decoder{file: "check tag", lines: make(map[string]int)}
	valueFunc(v, "")(d, s, 0, defaultNode(key{typ: t, def: s}))
	if len(d.errs) > 0 {
		return v, errors.New(d.errs[0].Error())
	}
	return v, nil
}

// compare orders two numeric values of the same type.
func compare(a, b reflect.Value) int {
	switch a.Kind() {
	case reflect.Float64:
		x, y := a.Float(), b.Float()
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case reflect.Int, reflect.Int64:
		x, y := a.Int(), b.Int()
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	panic("config: cannot compare " + a.Type().String())
}

// show formats a value for "got ..." in an error.
func show(v reflect.Value) string {
	switch {
	case v.Type() == durationType || v.Type() == sizeType:
		return fmt.Sprint(v.Interface())
	case v.Kind() == reflect.String:
		return strconv.Quote(v.String())
	case v.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// message is the error for a value v that breaks r.
func (r rule) message(v reflect.Value) string {
	msg := "must " + r.must
	if !strings.HasSuffix(msg, ";") {
		msg += ","
	}
	return msg + " got " + show(v)
}
