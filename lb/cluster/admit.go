package cluster

// Admit records a miss at this node for key (a key a peer owns) and reports
// whether the key is hot here: its estimated misses over the recent
// windows, this one included, reach Config.HotThreshold. The estimate comes
// from a count-min sketch whose counters are halved every
// Config.HotWindow misses, so a key hot long ago must become hot again. It
// allocates nothing.
func (c *Cluster) Admit(key string) bool {
	if c.sketch.Add(key) >= c.cfg.HotThreshold {
		c.metrics.admitted.Inc()
		return true
	}
	c.metrics.rejected.Inc()
	return false
}
