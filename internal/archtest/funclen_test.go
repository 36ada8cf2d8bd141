package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxFuncLines is the most lines a non-test function may span, from the
// line of its func keyword to the line of its closing brace (its doc comment
// not counted). House rule: "no function over 100 lines outside parsers'
// single switch tables" (issue 13).
const maxFuncLines = 100

// longFuncAllowed lists the functions that may be longer, by file (relative
// to the module root) and name (Type.Method for methods), each with why.
//
// The one lasting reason is a parser's single switch table: one switch whose
// cases are the grammar, with no part that a name would explain; none exists
// today. The issue 13 entries are functions being split on other branches;
// the lead removes each as its branch lands. An entry that names no function
// over the limit fails the test, so the list can only shrink.
var longFuncAllowed = []struct{ file, fn, why string }{}

func TestFunctionLength(t *testing.T) {
	root := moduleRoot(t)
	var long []longFunc
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found, err := longFuncs(filepath.ToSlash(rel), src, maxFuncLines)
		long = append(long, found...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range long {
		allowed := slices.ContainsFunc(longFuncAllowed, func(a struct{ file, fn, why string }) bool {
			return a.file == f.file && a.fn == f.fn
		})
		if !allowed {
			t.Errorf("%s: %s is %d lines, over %d: split it where a name explains each part", f.file, f.fn, f.lines, maxFuncLines)
		}
	}
	for _, a := range longFuncAllowed {
		if !slices.ContainsFunc(long, func(f longFunc) bool { return a.file == f.file && a.fn == f.fn }) {
			t.Errorf("longFuncAllowed names %s in %s, which is not over %d lines (or is gone): remove the entry", a.fn, a.file, maxFuncLines)
		}
	}
}

// longFunc is a function over the limit.
type longFunc struct {
	file, fn string
	lines    int
}

// longFuncs parses one non-generated Go file and returns its functions over
// max lines: declared functions and methods, and function literals outside
// any function (in package-level variables). A literal inside a function
// counts as part of that function.
func longFuncs(file string, src []byte, max int) ([]longFunc, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	var long []longFunc
	add := func(name string, from, to token.Pos) {
		if n := fset.Position(to).Line - fset.Position(from).Line + 1; n > max {
			long = append(long, longFunc{file, name, n})
		}
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Body != nil {
				add(funcName(d), d.Type.Func, d.Body.Rbrace)
			}
		case *ast.GenDecl:
			ast.Inspect(d, func(n ast.Node) bool {
				if lit, ok := n.(*ast.FuncLit); ok {
					add(fmt.Sprintf("func literal at line %d", fset.Position(lit.Pos()).Line), lit.Pos(), lit.End())
					return false
				}
				return true
			})
		}
	}
	return long, nil
}

// funcName is Name for a function and Type.Name for a method (type
// parameters dropped).
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + d.Name.Name
	}
	return d.Name.Name
}

// moduleRoot is the directory holding go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}
