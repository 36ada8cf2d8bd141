package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/config"
)

// TestEveryKeyReachesItsPackage changes one configuration value at a time
// and checks that the package configurations the daemon builds from it
// change too. A key added to internal/config but not passed on to its
// package fails here, and so does a package default silently standing in
// for a configured value.
func TestEveryKeyReachesItsPackage(t *testing.T) {
	newBase := func() *config.Config {
		c := config.Default()
		c.Sites = []config.Site{config.NewSite("a", []string{"a.example"}, "http://127.0.0.1:1")}
		c.TLS.Certificates = []config.Certificate{{Cert: "c.pem", Key: "k.pem"}}
		c.Purge.Tokens = []config.PurgeToken{{Name: "n", Token: "0123456789abcdef", Sites: []string{"a"}}}
		return c
	}
	// Keys the daemon uses itself (listeners, logging, shutdown, whether
	// to open the disk tier) and the purge keys newPurger passes to
	// purge.Config.
	direct := []string{"Listen", "Admin.", "TLS.Listen", "Log.Level", "Log.Access", "Log.AccessFile", "Server.ShutdownTimeout",
		"Cache.Disk.Enabled", "Purge.Tokens", "Purge.AllowCIDRs", "Purge.Node", "Purge.NATS.",
		// The peer listener, what it advertises, and the secret file (read
		// at start) are the daemon's too.
		"Cluster.Listen", "Cluster.Advertise", "Cluster.SecretFile"}
	want := packageConfigs(newBase())
	var paths []string
	leaves(reflect.ValueOf(newBase()).Elem(), "", func(path string, _ reflect.Value) { paths = append(paths, path) })
	if len(paths) < 60 {
		t.Fatalf("found %d keys, want every key", len(paths))
	}
	for i, path := range paths {
		if underAny(direct, path) {
			continue
		}
		c := newBase()
		n := 0
		leaves(reflect.ValueOf(c).Elem(), "", func(_ string, v reflect.Value) {
			if n == i {
				change(path, v)
			}
			n++
		})
		if got := packageConfigs(c); got == want {
			t.Errorf("changing %s changes no package configuration: is it passed on?", path)
		}
	}
}

// packageConfigs prints every package configuration the daemon builds
// from cfg (without callbacks, metrics or loggers).
func packageConfigs(cfg *config.Config) string {
	opts, err := storageOptions(cfg.Cache.Disk, nil)
	out := fmt.Sprintf("%+v\n%+v %v\n%+v\n%+v\n%+v\n%+v\n%+v\n",
		cacheConfig(cfg, nil, nil, nil), opts, err,
		handlerConfig(cfg, nil, nil, nil, nil, nil, nil), serverConfig(cfg.Server, nil, nil),
		certsConfig(cfg.TLS, nil, nil), connLimits(cfg.Server, nil), proxyProtocol(cfg.Server, nil))
	for _, s := range cfg.Sites {
		out += fmt.Sprintf("%+v\n%+v\n", poolConfig(s, nil, nil), *edgeSite(s, nil))
	}
	cc := clusterConfig(cfg, nodeName(cfg), "", nil, nil, nil, nil)
	gossip := cc.Gossip
	cc.Gossip = nil
	out += fmt.Sprintf("%+v\n", tracingSettings(cfg.Tracing))
	wo, warm := warmOptions(cfg.Cache.Disk)
	out += fmt.Sprintf("%+v %v\n", wo, warm)
	return out + fmt.Sprintf("%+v\n%+v\n", cc, gossip)
}

// leaves calls fn for every value of the struct v that holds no keys of
// its own (lists of strings included), with its Go field path; list items
// are walked as "[i]".
func leaves(v reflect.Value, path string, fn func(path string, v reflect.Value)) {
	for i := range v.NumField() {
		f, p := v.Field(i), path+v.Type().Field(i).Name
		switch {
		case f.Kind() == reflect.Struct:
			leaves(f, p+".", fn)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for j := range f.Len() {
				leaves(f.Index(j), fmt.Sprintf("%s[%d].", p, j), fn)
			}
		default:
			fn(p, f)
		}
	}
}

// change sets v to another valid value of its kind.
func change(path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 7)
	case reflect.Float64:
		v.SetFloat(v.Float()/2 + 1) // 0 (a bound off) changes too
	case reflect.String:
		alt := map[string]string{"TLS.MinVersion": "1.3", "Cache.Disk.Fsync": "always", "Cache.Disk.Admission": "second-hit", "Server.HTTP1": "net/http",
			"Sites[0].Upstream.TLS.MinVersion": "1.3"}
		if a, ok := alt[path]; ok {
			v.SetString(a)
		} else {
			v.SetString(v.String() + "x")
		}
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.ValueOf("X-Changed")))
	default:
		panic("change: unexpected kind " + v.Kind().String() + " at " + path)
	}
}

// underAny reports whether path is one of prefixes, or under one ending in
// "." or naming a list.
func underAny(prefixes []string, path string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasSuffix(p, ".") && strings.HasPrefix(path, p) || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// TestStaleIfErrorZeroDisables checks that sites[].cache.stale_if_error: 0
// reaches the site's policy as "no default window", not as the policy's
// zero value (a day).
func TestStaleIfErrorZeroDisables(t *testing.T) {
	for _, tc := range []struct {
		set  config.Duration
		want time.Duration
	}{
		{config.Duration(24 * time.Hour), 24 * time.Hour},
		{config.Duration(time.Minute), time.Minute},
		{0, 0},
	} {
		s := config.NewSite("a", []string{"a.example"}, "http://127.0.0.1:1")
		s.Cache.StaleIfError = tc.set
		p := edgeSite(s, nil).Policy
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {"max-age=60"}}}
		if got := p.Evaluate(&http.Request{Method: http.MethodGet, Header: http.Header{}}, resp).StaleIfError; got != tc.want {
			t.Errorf("stale_if_error %v: the policy gives a window of %v, want %v", tc.set, got, tc.want)
		}
	}
}

// checkConfigAt checks that -check-config and starting both accept file
// (want "") or both fail with an error that begins with file and then want
// (":LINE: key.path: message").
func checkConfigAt(t *testing.T, file, want string) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-check-config", file}, &out, &out, nil)
	if want == "" {
		if err != nil {
			t.Errorf("-check-config: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), file+want) {
		t.Errorf("-check-config: %v; want %q", err, file+want)
	}
	_, err = loadConfig(&options{config: file, set: map[string]bool{}})
	if err == nil || !strings.Contains(err.Error(), file+want) {
		t.Errorf("starting: %v; want %q", err, file+want)
	}
}
