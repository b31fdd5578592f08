package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/presenced/presenced/crdt"
)

// peerJoined handles a node that joined, came back, or updated its meta.
func (c *Cluster) peerJoined(n *memberlist.Node) {
	if n.Name == c.name {
		return
	}
	m, ok := parseMeta(n)
	if !ok {
		c.log.Warn("peer without presenced meta ignored", zap.String("peer", n.Name))
		return
	}
	o := crdt.Origin{Node: m.Node, Incarnation: m.Incarnation}
	retire := c.noteOrigin(o)
	c.mu.Lock()
	if c.closed.Load() { // checked under mu: Shutdown sets it under mu, so no wg.Add races its Wait
		c.mu.Unlock()
		return
	}
	_, wasFailed := c.failed[o]
	delete(c.failed, o)
	delete(c.lost, o.Node)
	delete(c.redial, n.Name)
	// memberlist calls this with its node lock held and later mutates the
	// node in place: keep a copy, never the pointer.
	cp := *n
	p := c.peers[n.Name]
	if p == nil && !c.supersededLocked(o) && o.Node != c.self.Node {
		p = &peer{name: n.Name, origin: o, meta: m, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		p.node.Store(&cp)
		// Push only what we write from now on: the peer pulls our history
		// (from its join push/pull and our heads) from exactly its
		// watermark, instead of getting all of it twice.
		p.sent = c.cfg.Replica.Digest()[c.self]
		p.sentSeq.Store(p.sent)
		c.peers[n.Name] = p
		c.publishSendersLocked()
		c.wg.Add(2)
		go c.sender(p)
		go c.watchPeer(p, m.HTTP)
		p.poke()
		c.log.Info("peer joined", zap.String("peer", n.Name), zap.String("addr", n.Address()))
	} else if p != nil {
		p.node.Store(&cp)
		p.meta = m
		if p.doubt != nil {
			// Gossip took back a death we overruled: nothing was failed or
			// stopped, so there is nothing to resume.
			p.doubt = nil
			c.log.Info("gossip has the peer alive again: its overruled death is withdrawn", zap.String("peer", n.Name))
		}
	}
	c.mu.Unlock()
	for _, old := range retire {
		c.mu.Lock()
		delete(c.redial, memberName(old)) // its address belongs to the new boot now
		c.mu.Unlock()
		c.log.Info("node restarted: retiring its previous incarnation", zap.String("node", old.Node),
			zap.Uint64("old", old.Incarnation), zap.Uint64("new", o.Incarnation))
		c.later(func() { c.cfg.Replica.OriginRetired(old) })
	}
	if wasFailed {
		name := n.Name
		c.later(func() {
			c.cfg.Replica.OriginAlive(o)
			c.resync(name, o)
		})
	}
}

// peerLeft handles a node declared dead or gone: its sessions go stale on
// this node at once and leave after grace unless resumed elsewhere — unless
// our held connection to it says it is alive (overrule.go): then it is kept
// until gossip takes it back, the connection falls silent, or a cap.
func (c *Cluster) peerLeft(n *memberlist.Node) {
	m, ok := parseMeta(n)
	if !ok || n.Name == c.name || c.closed.Load() {
		return
	}
	// memberlist mutates n later: keep only what we need. (v0.6.0 never sets
	// Node.State, so left is false for a graceful leave too.)
	d := departure{name: n.Name, addr: n.Address(), origin: crdt.Origin{Node: m.Node, Incarnation: m.Incarnation},
		left: n.State == memberlist.StateLeft}
	c.mu.Lock()
	if !c.overruleLocked(d) {
		c.goneLocked(d)
	}
	c.mu.Unlock()
}

// departure is a member gossip declared dead or gone.
type departure struct {
	name, addr string
	origin     crdt.Origin
	left       bool
}

// goneLocked removes a departed peer and queues its failure for the engine.
// c.mu is held, so the task is queued before any later peerJoined's.
func (c *Cluster) goneLocked(d departure) {
	o := d.origin
	if p := c.peers[d.name]; p != nil {
		close(p.stop)
		delete(c.peers, d.name)
		c.publishSendersLocked()
	}
	superseded := c.supersededLocked(o)
	if !superseded {
		c.failed[o] = struct{}{}
		c.lost[o.Node] = time.Now()
		if !d.left {
			c.redial[d.name] = d.addr // dead, not departed: maybe a partition
		}
	}
	state := "dead"
	if d.left {
		state = "left"
	}
	c.log.Info("peer gone: its sessions are stale until they resume or grace ends",
		zap.String("peer", d.name), zap.String("state", state))
	if !superseded {
		c.laterLocked(func() { c.cfg.Replica.OriginFailed(o) })
	}
}

// noteOrigin records o as seen and returns older incarnations of its node
// that must be retired.
func (c *Cluster) noteOrigin(o crdt.Origin) (retire []crdt.Origin) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o.Node == c.self.Node {
		if o.Incarnation < c.self.Incarnation {
			retire = append(retire, o) // our own previous boot
		}
		return retire
	}
	cur, ok := c.origins[o.Node]
	switch {
	case !ok:
		c.origins[o.Node] = o
	case cur.Incarnation < o.Incarnation:
		c.origins[o.Node] = o
		retire = append(retire, cur)
		delete(c.failed, cur)
	case cur.Incarnation > o.Incarnation:
		retire = append(retire, o)
	}
	return retire
}

// superseded reports whether o is an older incarnation than one seen.
func (c *Cluster) superseded(o crdt.Origin) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.supersededLocked(o)
}

func (c *Cluster) supersededLocked(o crdt.Origin) bool {
	if o.Node == c.self.Node {
		return o.Incarnation < c.self.Incarnation
	}
	cur, ok := c.origins[o.Node]
	return ok && cur.Incarnation > o.Incarnation
}

// localState is what memberlist's push/pull sends: our name and our digest
// (per-origin watermarks, a few bytes per node), never the state itself, so
// the 20 MiB push/pull cap never bounds how many sessions a cluster holds.
func (c *Cluster) localState() []byte {
	d, err := c.cfg.Replica.Digest().MarshalBinary()
	if err != nil {
		return nil
	}
	return encodeMsg(0, c.name, d)
}

// mergeRemoteState compares a peer's digest with ours and pulls, from that
// peer, every origin it holds more of.
func (c *Cluster) mergeRemoteState(b []byte) {
	_, sender, body, err := decodeMsg(b)
	if err != nil {
		return
	}
	var remote crdt.Digest
	if err := remote.UnmarshalBinary(body); err != nil {
		c.log.Warn("malformed digest dropped", zap.String("from", sender))
		return
	}
	var retire []crdt.Origin
	for o := range remote {
		retire = append(retire, c.noteOrigin(o)...)
	}
	for _, o := range retire {
		c.later(func() { c.cfg.Replica.OriginRetired(o) })
	}
	ours := c.cfg.Replica.Digest()
	c.mu.Lock()
	first := c.synced.IsZero()
	if !c.ready.Load() {
		for o, s := range remote {
			c.want[o] = max(c.want[o], s)
		}
	}
	c.mu.Unlock()
	for o, s := range remote {
		if o == c.self || c.superseded(o) || ours[o] >= s {
			continue
		}
		c.stats.DigestMismatches.Add(1)
		// Pull from the worker goroutine: this runs on memberlist's.
		select {
		case c.inbox <- encodeMsg(msgWant, sender, originSeq{Origin: o, Seq: s}.encode()):
		default:
		}
	}
	if first {
		c.mu.Lock()
		if c.synced.IsZero() {
			c.synced = time.Now()
		}
		c.mu.Unlock()
	}
}
