package config

import (
	"errors"
	"strconv"
	"strings"
)

// Error is one problem found in a configuration. Its text is
//
//	FILE:LINE: KEY.PATH: message
//
// Parts that are unknown are left out together with their colon: errors
// from Validate have no file or line ("sites[0].name: required"), and
// problems with the file as a whole have no key path ("edged.yaml:7:
// multiple YAML documents ...").
type Error struct {
	// File is the file name given to Parse or Load; "" for Validate.
	File string
	// Line is the 1-based line of the offending key (or list item); 0 when
	// unknown.
	Line int
	// Path is the key path, e.g. "sites[0].origins[1].weight"; "" when the
	// problem is not with one key.
	Path string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// join returns nil for no errors, the *Error itself for one, and
// errors.Join of all of them otherwise, so errors.As finds the first one.
func join(errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}
