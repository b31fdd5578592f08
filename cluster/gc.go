package cluster

import (
	"time"

	"github.com/presenced/presenced/crdt"
)

// Tombstone GC. A removal (a session that left) is kept as a tombstone so an
// older write arriving late cannot bring it back. Once every live member
// holds it, it can go: each node periodically sends each peer its digest,
// and drops the tombstones covered by the element-wise minimum of its own
// and every alive peer's latest digest. A member declared dead holds back
// collection until it is back or its origin is dropped at the end of grace
// (see collect); one that comes back pulls what it lacks. The one window
// left — a delta still in flight from before the collection — is bounded by
// a message's life (milliseconds) and documented in crdt/DESIGN.md.

type peerDigest struct {
	d      crdt.Digest
	origin crdt.Origin // the sender's
	at     time.Time
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
		c.shareCensus()
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
	for _, p := range c.peerList() {
		if len(msg) <= udpMax {
			_ = c.ml.SendBestEffort(p.node.Load(), msg)
		} else {
			_ = c.ml.SendReliable(p.node.Load(), msg)
		}
	}
}

// collect drops the tombstones every member holds, if a recent digest of
// every alive peer is known. A member declared dead whose entries are still
// kept (inside grace) counts too, with the last digest it sent: it may come
// back (a healed partition, a thawed process) holding older writes of keys
// removed meanwhile — a session resumed elsewhere and then ended — and only
// the tombstones make those writes lose when they arrive. Once its origin is
// dropped, its writes are refused and its digest no longer matters.
func (c *Cluster) collect(every time.Duration) {
	safe := c.cfg.Replica.Digest()
	failed := map[crdt.Origin]bool{}
	for _, o := range c.cfg.Replica.FailedOrigins() {
		failed[o] = true
	}
	c.mu.Lock()
	for name, pd := range c.digests {
		_, alive := c.peers[name]
		switch {
		case alive:
		case failed[pd.origin] || c.failingLocked(pd.origin):
			delete(failed, pd.origin)
			minDigest(safe, pd.d)
		default:
			delete(c.digests, name)
		}
	}
	if len(failed) > 0 {
		c.mu.Unlock()
		return // a failed member we have no digest of: it may hold anything
	}
	for name := range c.peers {
		pd, ok := c.digests[name]
		if !ok || time.Since(pd.at) > 3*every {
			c.mu.Unlock()
			return // not enough known to be safe
		}
		minDigest(safe, pd.d)
	}
	c.mu.Unlock()
	if n := c.cfg.Replica.CollectTombstones(safe); n > 0 {
		c.stats.TombstonesCollected.Add(uint64(n))
	}
}

// failingLocked: o was declared dead a moment ago and the engine may not
// have been told yet (that call is queued on the worker).
func (c *Cluster) failingLocked(o crdt.Origin) bool {
	_, failed := c.failed[o]
	at, ok := c.lost[o.Node]
	return failed && ok && time.Since(at) < failingWindow
}

// failingWindow bounds how long the engine may take to be told of a failure.
const failingWindow = 5 * time.Second

// minDigest lowers safe to what d covers, origin by origin.
func minDigest(safe, d crdt.Digest) {
	for o, s := range safe {
		safe[o] = min(s, d[o])
	}
}
