package rules

// globMatch reports whether s matches the wildcard pattern: '*' matches any
// run of bytes (including none, and including '/'), '?' matches exactly one
// byte, and every other byte matches itself. There is no escape and no
// class: paths and parameter names hold '*' and '?' so rarely that a
// regular expression (path_regex) is the way to say them. It allocates
// nothing and runs in O(len(s) × len(pattern)) at worst, with one
// backtracking point (the last star), as shell globbing does.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0 // the last '*' seen in pattern, and where in s it resumes
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			// Let the last star take one more byte and try again.
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// glob is a compiled wildcard pattern, with the common shapes answered
// without the general matcher: an exact string, a prefix ("/static/*"), a
// suffix ("*.css").
type glob struct {
	pattern string
	kind    globKind
	lit     string // the literal part for exact, prefix and suffix
}

type globKind uint8

const (
	globExact globKind = iota
	globPrefix
	globSuffix
	globAny // "*"
	globGeneral
)

func compileGlob(pattern string) glob {
	g := glob{pattern: pattern, kind: globGeneral}
	stars, quests := 0, 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*':
			stars++
		case '?':
			quests++
		}
	}
	n := len(pattern)
	switch {
	case quests > 0:
	case stars == 0:
		g.kind, g.lit = globExact, pattern
	case pattern == "*" || stars == n:
		g.kind = globAny
	case stars == 1 && pattern[n-1] == '*':
		g.kind, g.lit = globPrefix, pattern[:n-1]
	case stars == 1 && pattern[0] == '*':
		g.kind, g.lit = globSuffix, pattern[1:]
	}
	return g
}

// match reports whether s matches g. The prefix case, the most common in
// rules ("/static/*"), is small enough to be inlined.
func (g *glob) match(s string) bool {
	if g.kind == globPrefix {
		// The prefix's last byte first: most paths a prefix rule sees
		// differ there or earlier, and one byte is cheaper than a memequal.
		n := len(g.lit)
		return len(s) >= n && (n == 0 || s[n-1] == g.lit[n-1]) && s[:n] == g.lit
	}
	return g.matchOther(s)
}

func (g *glob) matchOther(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.lit
	case globSuffix:
		n := len(g.lit)
		return len(s) >= n && (n == 0 || s[len(s)-1] == g.lit[n-1]) && s[len(s)-n:] == g.lit
	case globAny:
		return true
	}
	return globMatch(g.pattern, s)
}

// globs matches when any of its patterns does.
type globs []glob

func (gs globs) match(s string) bool {
	if len(gs) == 1 {
		return gs[0].match(s)
	}
	for i := range gs {
		if gs[i].match(s) {
			return true
		}
	}
	return false
}

func compileGlobs(patterns []string) globs {
	if len(patterns) == 0 {
		return nil
	}
	out := make(globs, len(patterns))
	for i, p := range patterns {
		out[i] = compileGlob(p)
	}
	return out
}
