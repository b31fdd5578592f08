package cluster

import (
	"time"

	"github.com/presenced/presenced/crdt"
)

// Tombstone GC. A removal (a session that left) is kept as a tombstone so an
// older write arriving late cannot bring it back. Once every live member
// holds it, it can go: each node periodically sends each peer its digest,
// and drops the tombstones covered by the element-wise minimum of its own
// and every alive peer's latest digest. A member that is down longer than
// grace has its origin dropped anyway; one that comes back after a partition
// pulls what it lacks, and a tombstone it never saw cannot matter to an
// origin that already overwrote or removed the key. The one window left — a
// delta still in flight from before the collection — is bounded by a
// message's life (milliseconds) and documented in crdt/DESIGN.md.

type peerDigest struct {
	d  crdt.Digest
	at time.Time
}

func gcInterval(profile string) time.Duration {
	if profile == ProfileLocal {
		return time.Second
	}
	return 10 * time.Second
}

func (c *Cluster) collector(interval time.Duration) {
	c.every(interval, func() {
		c.shareDigest()
		c.collect(interval)
	})
}

// shareDigest sends our digest to every peer.
func (c *Cluster) shareDigest() {
	d, err := c.cfg.Replica.Digest().MarshalBinary()
	if err != nil {
		return
	}
	msg := encodeMsg(msgDigest, c.name, d)
	c.mu.Lock()
	nodes := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		nodes = append(nodes, p)
	}
	c.mu.Unlock()
	for _, p := range nodes {
		if len(msg) <= udpMax {
			_ = c.ml.SendBestEffort(p.node.Load(), msg)
		} else {
			_ = c.ml.SendReliable(p.node.Load(), msg)
		}
	}
}

// collect drops the tombstones every alive member holds, if a recent digest
// of every alive peer is known.
func (c *Cluster) collect(every time.Duration) {
	safe := c.cfg.Replica.Digest()
	c.mu.Lock()
	for name := range c.digests {
		if _, alive := c.peers[name]; !alive {
			delete(c.digests, name)
		}
	}
	for name := range c.peers {
		pd, ok := c.digests[name]
		if !ok || time.Since(pd.at) > 3*every {
			c.mu.Unlock()
			return // not enough known to be safe
		}
		for o, s := range safe {
			safe[o] = min(s, pd.d[o])
		}
	}
	c.mu.Unlock()
	if n := c.cfg.Replica.CollectTombstones(safe); n > 0 {
		c.stats.TombstonesCollected.Add(uint64(n))
	}
}
