package config

import "strconv"

// adminTokens checks admin.tokens as purge checks purge.tokens: named,
// names unique, secrets long enough to resist guessing.
func (v *validator) adminTokens(tokens []AdminToken) {
	seen := make(map[string]bool)
	for i, t := range tokens {
		v.token("admin.tokens["+strconv.Itoa(i)+"]", t.Name, t.Token, seen)
	}
}

// token checks one named bearer token at path p: a name, unique among
// seen, and a secret of at least 16 characters.
func (v *validator) token(p, name, secret string, seen map[string]bool) {
	if name == "" {
		v.add(p+".name", "required")
	} else if seen[name] {
		v.add(p+".name", "duplicate token name %q", name)
	}
	seen[name] = true
	if len(secret) < 16 {
		v.add(p+".token", "must be at least 16 characters")
	}
}
