package cluster

import (
	"time"

	"go.uber.org/zap"
)

// Overruling a false death. Under CPU saturation (3 nodes and a load
// generator on 2 cores: stop-the-world GC pauses of 90–210 ms, runnable
// goroutines waiting over 117 ms to run) memberlist misses probe acks and
// declares live peers dead: 12–16 times in an 8-minute benchmark. Each false
// death marked ~19.5k sessions of that peer stale here, and a moment later,
// when the peer refuted it, alive again and resynced: presence flapping.
//
// The held HTTP connection to the peer (eofhint.go) gives a second opinion:
// the peer writes a byte on it every 250 ms. When gossip says a peer is dead
// but a byte came within holdFresh, the peer is kept as it is (its sender
// runs, nothing is failed) and looked at every overruleCheck:
//   - gossip has it alive again (peerJoined): nothing happened;
//   - the connection dropped (the EOF hint has already failed the origin) or
//     its last byte is holdStale old: the death is carried out now;
//   - after overruleCap gossip has still not taken it back: carried out
//     anyway — gossip is the authority in the end.
//
// Safety: a killed process's connection ends with EOF within ~1 ms (its
// sessions are stale at once, by the hint), and a frozen or partitioned one
// stops ticking, so it is failed at most holdStale after it last spoke to us
// — later than gossip alone by at most holdStale minus its detection time
// (plus one overruleCheck). A peer is kept only while it demonstrably speaks
// to us, and never longer than overruleCap. A peer already failed (by a
// hint), superseded by a newer boot, or not ticking (an older version) is
// failed at once, as before. A graceful leave cannot be told from a death
// here (memberlist v0.6.0 never sets Node.State), but needs no special case:
// a draining node ends its holds before it leaves gossip.

const (
	holdFresh     = time.Second             // a byte this recent overrules gossip's verdict
	holdStale     = 1500 * time.Millisecond // no byte for this long: the peer is failed
	overruleCheck = 100 * time.Millisecond
	overruleCap   = 10 * time.Second
)

// doubt is a gossip death being overruled.
type doubt struct {
	departure
	since time.Time
}

// monoEpoch anchors monoNow: hold freshness is measured on the monotonic
// clock, so a wall-clock step cannot make a silent peer look fresh.
var monoEpoch = time.Now()

// monoNow is the time since monoEpoch, never 0 (0 means "no byte").
func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 }

// heardWithin reports whether a byte arrived on the held connection within d.
func (p *peer) heardWithin(d time.Duration) bool {
	t := p.holdTick.Load()
	return t != 0 && monoNow()-t < int64(d)
}

// overruleLocked decides whether gossip's verdict on d waits, and if so
// starts watching it. c.mu is held.
func (c *Cluster) overruleLocked(d departure) bool {
	p := c.peers[d.name]
	if p == nil || p.origin != d.origin || c.closed.Load() {
		return false
	}
	if p.doubt != nil {
		return true // already waiting on this peer (the cap still runs from the first verdict)
	}
	if _, failed := c.failed[d.origin]; failed || c.supersededLocked(d.origin) || !p.heardWithin(holdFresh) {
		return false
	}
	w := &doubt{departure: d, since: time.Now()}
	p.doubt = w
	c.stats.GossipDeathsOverruled.Add(1)
	c.log.Info("gossip says peer is dead but its held connection is alive: waiting", zap.String("peer", d.name))
	c.wg.Add(1) // closed is false and checked under mu, as Shutdown sets it: no Add after its Wait
	go c.awaitVerdict(p, w)
	return true
}

// awaitVerdict carries out an overruled death once the peer stops speaking
// or the cap passes, unless gossip takes the death back first.
func (c *Cluster) awaitVerdict(p *peer, w *doubt) {
	defer c.wg.Done()
	t := time.NewTicker(overruleCheck)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-p.stop:
			return
		case <-t.C:
		}
		why := ""
		c.mu.Lock()
		_, failed := c.failed[p.origin]
		switch {
		case p.doubt != w || c.closed.Load():
			c.mu.Unlock()
			return // gossip took it back (peerJoined), or shutting down
		case failed:
			why = "held connection dropped"
		case !p.heardWithin(holdStale):
			why = "held connection went silent"
		case c.supersededLocked(p.origin):
			why = "node restarted"
		case time.Since(w.since) >= overruleCap:
			why = "gossip did not take the death back"
		}
		if why != "" {
			p.doubt = nil
			c.log.Info("overruled death carried out", zap.String("peer", w.name), zap.String("why", why),
				zap.Duration("after", time.Since(w.since)))
			c.goneLocked(w.departure)
		}
		c.mu.Unlock()
		if why != "" {
			return
		}
	}
}
