package cluster

import (
	"time"

	"github.com/presenced/presenced/crdt"
	"go.uber.org/zap"
)

// Resync. While a node is cut off from an owner (declared dead, then alive
// again inside grace: a partition that healed, a process that froze), the
// owner may remove sessions, and its other peers may collect those
// tombstones, since tombstone GC waits only for live members. A plain pull
// from our watermark then skips them: we would keep the removed sessions
// forever (ghosts). So when an owner comes back, we re-read its whole
// origin from the owner itself, page by page, and remove what it no longer
// holds (PruneOrigin). Entries it wrote after the pages are never touched.

// resyncState is one origin being re-read.
type resyncState struct {
	from     string
	keep     map[string]struct{}
	started  time.Time
	progress time.Time // last page, or the (re)start
}

const (
	resyncStall = 30 * time.Second // give up (the owner is gone again)
	resyncRetry = time.Second      // no page for this long: ask again from the start
)

// resync starts re-reading origin o from its owner, the peer named from.
func (c *Cluster) resync(from string, o crdt.Origin) {
	c.mu.Lock()
	if rs, ok := c.resyncs[o]; ok && time.Since(rs.started) < resyncStall {
		c.mu.Unlock()
		return
	}
	rs := &resyncState{from: from, keep: map[string]struct{}{}, started: time.Now(), progress: time.Now()}
	c.resyncs[o] = rs
	c.mu.Unlock()
	c.stats.Resyncs.Add(1)
	c.requestResync(from, o, 0)
	c.retryResync(o, rs)
}

// retryResync restarts a resync whose pages stopped coming (the owner may
// not have known us as a peer yet when our request arrived).
func (c *Cluster) retryResync(o crdt.Origin, rs *resyncState) {
	time.AfterFunc(resyncRetry, func() {
		c.later(func() {
			c.mu.Lock()
			if c.resyncs[o] != rs || c.closed.Load() {
				c.mu.Unlock()
				return
			}
			if time.Since(rs.started) > resyncStall {
				delete(c.resyncs, o)
				c.mu.Unlock()
				return
			}
			stalled := time.Since(rs.progress) >= resyncRetry
			if stalled {
				// keep is not reset: pages of the first attempt may still
				// arrive, and a key the owner held at any point of the
				// resync is never pruned (a later removal reaches us as a
				// tombstone anyway).
				rs.progress = time.Now()
			}
			c.mu.Unlock()
			if stalled {
				c.requestResync(rs.from, o, 0)
			}
			c.retryResync(o, rs)
		})
	})
}

func (c *Cluster) requestResync(from string, o crdt.Origin, after uint64) {
	node := c.nodeNamed(from)
	if node == nil {
		return
	}
	msg := encodeMsg(msgResync, c.name, originSeq{Origin: o, Seq: after}.encode())
	c.async(func() { _ = c.ml.SendReliable(node, msg) })
}

// answerResync sends one page of our own origin after req.Seq. Only the
// owner answers: only it knows what it removed.
func (c *Cluster) answerResync(to string, req originSeq) {
	if req.Origin != c.self {
		return
	}
	node := c.nodeNamed(to)
	if node == nil {
		return
	}
	d := c.cfg.Replica.DeltaSince(req.Origin, req.Seq, maxDeltaEntries)
	last := byte(0)
	if len(d.Entries) < maxDeltaEntries {
		last = 1
	}
	body, err := d.AppendBinary([]byte{last})
	if err != nil {
		return
	}
	_ = c.ml.SendReliable(node, encodeMsg(msgResyncPage, c.name, body))
}

// resyncPage merges one page and, on the last, prunes what the owner no
// longer holds.
func (c *Cluster) resyncPage(sender string, body []byte) {
	if len(body) < 1 {
		return
	}
	last := body[0] == 1
	var d crdt.Delta
	if err := d.UnmarshalBinary(body[1:]); err != nil {
		c.log.Warn("malformed resync page dropped", zap.String("from", sender), zap.Error(err))
		return
	}
	c.mu.Lock()
	rs := c.resyncs[d.Origin]
	if rs == nil || rs.from != sender || d.Origin.Node != c.originNodeOf(sender) {
		c.mu.Unlock()
		return
	}
	for _, e := range d.Entries {
		rs.keep[e.Key] = struct{}{}
	}
	rs.progress = time.Now()
	if last {
		delete(c.resyncs, d.Origin)
	}
	c.mu.Unlock()
	c.mergeDelta(sender, d)
	if !last {
		c.requestResync(sender, d.Origin, d.To)
		return
	}
	if n := c.cfg.Replica.PruneOrigin(d.Origin, rs.keep, d.To); n > 0 {
		c.stats.ResyncPruned.Add(uint64(n))
		c.log.Info("resync removed entries the owner no longer holds", zap.String("peer", sender), zap.Int("entries", n))
	}
}

// originNodeOf returns the node id of the peer named name ("" if unknown).
// c.mu must be held.
func (c *Cluster) originNodeOf(name string) string {
	if p := c.peers[name]; p != nil {
		return p.origin.Node
	}
	return ""
}

// pauseThreshold: a gap this long in our own ticker means this process was
// frozen (SIGSTOP, a VM pause, a long GC stall).
const pauseThreshold = time.Second

// pauseWatch notices that this process was frozen. Its peers may have
// declared it dead meanwhile and collected tombstones it never saw, and it
// never saw them die, so nothing else would repair its replica: after a
// pause it resyncs every peer's origin.
func (c *Cluster) pauseWatch() {
	last := time.Now()
	c.every(100*time.Millisecond, func() {
		now := time.Now()
		gap := now.Sub(last)
		last = now
		if gap < pauseThreshold {
			return
		}
		c.log.Info("this process was paused: re-reading every peer", zap.Duration("pause", gap))
		c.later(func() {
			for _, p := range c.peerList() {
				c.resync(p.name, p.origin)
			}
		})
	})
}
