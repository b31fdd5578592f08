package cluster

import (
	"time"

	"go.uber.org/zap"
)

// reconnectTimeout: how long a dead peer is retried before it is forgotten.
const reconnectTimeout = 24 * time.Hour

// reconnectInterval is how often dead peers are retried, per profile.
func reconnectInterval(profile string) time.Duration {
	switch profile {
	case ProfileLocal:
		return 500 * time.Millisecond
	case ProfileWAN:
		return 10 * time.Second
	}
	return 2 * time.Second
}

// reconnector rejoins peers declared dead. memberlist alone never heals a
// partition: once each side has declared the other dead and the news has
// been gossiped, no message crosses the healed link. Like Serf, we keep
// dialling dead (not departed) peers; the push/pull of a successful join
// lets each side refute its death, and anti-entropy restores the sessions.
func (c *Cluster) reconnector(interval time.Duration) { c.every(interval, c.redialDead) }

func (c *Cluster) redialDead() {
	c.mu.Lock()
	var addrs []string
	for name, addr := range c.redial {
		p := c.lostByName(name)
		if !p.IsZero() && time.Since(p) > reconnectTimeout {
			delete(c.redial, name)
			continue
		}
		addrs = append(addrs, addr)
	}
	c.mu.Unlock()
	for _, a := range addrs {
		if _, err := c.ml.Join([]string{a}); err == nil {
			c.log.Info("reconnected to a peer declared dead", zap.String("addr", a))
		}
	}
}

// every runs fn each interval until the cluster stops; the caller has
// counted the goroutine in c.wg.
func (c *Cluster) every(interval time.Duration, fn func()) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// lostByName finds when the node behind a memberlist name failed.
func (c *Cluster) lostByName(name string) time.Time {
	for node, at := range c.lost {
		if len(name) > len(node) && name[:len(node)] == node && name[len(node)] == '-' {
			return at
		}
	}
	return time.Time{}
}
