package cluster

// Hooks for the package's external tests (compiled only into tests).

const (
	HoldStale   = holdStale
	OverruleCap = overruleCap
)

// GossipDeathsOverruled is the presenced_cluster_gossip_deaths_overruled_total counter.
func (c *Cluster) GossipDeathsOverruled() uint64 { return c.stats.GossipDeathsOverruled.Load() }

// Overruling counts the peers whose gossip death is being overruled now.
func (c *Cluster) Overruling() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.peers {
		if p.doubt != nil {
			n++
		}
	}
	return n
}

// HeardFrom reports whether our held connection to the peer whose stable
// name is node delivered a byte within holdFresh.
func (c *Cluster) HeardFrom(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.peers {
		if p.origin.Node == node && p.heardWithin(holdFresh) {
			return true
		}
	}
	return false
}
