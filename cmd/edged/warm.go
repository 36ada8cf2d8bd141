package main

import (
	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/internal/config"
)

// warmOptions are the cache's warm-start bounds from cache.disk, and
// whether it is on.
func warmOptions(dc config.Disk) (cache.WarmOptions, bool) {
	rate := dc.WarmStartRate.Int64()
	if rate == 0 {
		rate = -1 // the configuration's "0 = unlimited"
	}
	return cache.WarmOptions{Timeout: dc.WarmStartTimeout.Std(), Rate: rate}, dc.Enabled && dc.WarmStart
}

// warmStart starts the cache's warm start when it is on; it runs in the
// background (the cache logs and counts what it did) and Close stops it.
func (d *daemon) warmStart() {
	if opts, on := warmOptions(d.cfg.Cache.Disk); on {
		d.cache.WarmStart(opts)
	}
}
