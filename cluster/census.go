package cluster

import "go.uber.org/zap"

// Census. Watermarks say whether a replica has every write of an origin;
// they cannot say whether it still holds entries the origin itself no longer
// does. That happens when the writes that replaced them are lost with their
// writer: a client resumes a session on node B (B's takeover overwrites A's
// entries), B dies before C hears of it and is retired; A and everyone that
// saw B's writes now hold nothing of the session, C still holds A's older
// entries — shown forever, since A is alive and will never write them again.
// So each owner periodically tells its peers how many live entries it writes
// (with its watermark); a peer caught up to that watermark whose count is
// different in two such rounds, with no equal one between, re-reads the
// owner's origin (resync: merge it, prune what it no longer holds). Rounds
// at another watermark say nothing (a busy owner is rarely caught up with
// at the instant of its census). Counts differ briefly while deltas of
// other origins that overwrite the owner's entries are in flight, hence two
// rounds; if such a delta is held up longer (its writer cut off from us but
// not from the owner), the resync removes the owner's overwritten entry here
// a little early: the key shows nothing until the newer write arrives.

const censusRounds = 2

// shareCensus tells every peer what this node holds of its own origin.
func (c *Cluster) shareCensus() {
	wm, live := c.cfg.Replica.Census(c.self)
	msg := encodeMsg(msgCensus, c.name, census{originSeq{c.self, wm}, uint64(live)}.encode())
	for _, p := range c.peerList() {
		_ = c.ml.SendBestEffort(p.node.Load(), msg)
	}
}

// onCensus compares an owner's census with what we hold of its origin.
func (c *Cluster) onCensus(sender string, body []byte) {
	cs, err := decodeCensus(body)
	if err != nil {
		c.log.Warn("malformed census dropped", zap.String("from", sender), zap.Error(err))
		return
	}
	o := cs.Origin
	wm, live := c.cfg.Replica.Census(o) // before c.mu: the engine's lock is never taken under it
	c.mu.Lock()
	p := c.peers[sender]
	if p == nil || p.origin != o { // only an owner speaks for its origin
		c.mu.Unlock()
		return
	}
	if wm != cs.Seq { // not caught up (or the census raced a write): says nothing
		c.mu.Unlock()
		return
	}
	if uint64(live) == cs.Live {
		delete(c.censusMiss, o)
		c.mu.Unlock()
		return
	}
	c.censusMiss[o]++
	repair := c.censusMiss[o] >= censusRounds
	if repair {
		delete(c.censusMiss, o)
	}
	c.mu.Unlock()
	if repair {
		c.stats.CensusRepairs.Add(1)
		c.log.Info("holding a different set of a peer's entries than the peer: re-reading them",
			zap.String("peer", sender), zap.Int("here", live), zap.Uint64("there", cs.Live))
		c.resync(sender, o)
	}
}
