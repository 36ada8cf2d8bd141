// Package tmpdeps pins dependencies until the real code imports them; removed once it does.
package tmpdeps

import (
	_ "github.com/dgraph-io/ristretto/v2"
	_ "github.com/pquerna/cachecontrol"
	_ "github.com/pquerna/cachecontrol/cacheobject"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/sync/singleflight"
)
