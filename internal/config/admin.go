package config

import "strconv"

// adminTokens checks admin.tokens as purge checks purge.tokens: named,
// names unique, secrets long enough to resist guessing.
func (v *validator) adminTokens(tokens []AdminToken) {
	seen := make(map[string]bool)
	for i, t := range tokens {
		p := "admin.tokens[" + strconv.Itoa(i) + "]"
		if t.Name == "" {
			v.add(p+".name", "required")
		} else if seen[t.Name] {
			v.add(p+".name", "duplicate token name %q", t.Name)
		}
		seen[t.Name] = true
		if len(t.Token) < 16 {
			v.add(p+".token", "must be at least 16 characters")
		}
	}
}
