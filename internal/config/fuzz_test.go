package config_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/config"
)

// FuzzParse checks that Parse never panics, that every failure is made of
// *config.Error values naming the file, and that whatever it accepts also
// passes Validate.
func FuzzParse(f *testing.F) {
	f.Add(config.DefaultYAML())
	if b, err := os.ReadFile("../../docs/edged.example.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"---\n",
		"listen: [a]\n",
		"cache: {memory: {max_bytes: 1GiB, max_object_bytes: 2GiB}}\n",
		"sites: [{name: a, hosts: ['*'], origins: [{url: 'http://o:1', weight: 0}]}]\n",
		"sites: &s [*s]\n",
		"a: &a [*a, *a]\nsites: *a\n",
		"listen: \":1\"\n---\nlisten: \":2\"\n",
		"cache:\n  <<: {fill_timeout: 1s}\n",
		"{? [a]: b}\n",
		"server: {idle_timeout: 99999999999999999999h, max_header_bytes: 99999999999999999999}\n",
		"sites:\n  - name: a\n    hosts: ['*.EXAMPLE.com', 'a*.b', '[::1]', '::1']\n    origins: [{url: 'https://[::1]:443'}]\n",
		"\t\x00",
		"\"a\\nb\": 1\n",
		"cache: {\"x\\ny\": 1}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("Config and error both returned")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}
