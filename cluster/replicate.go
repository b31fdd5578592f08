package cluster

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/presenced/presenced/crdt"
)

const (
	// udpMax: a delta message up to this size goes best-effort over UDP (one
	// packet, ~0.1 ms on a LAN); larger ones go over TCP. memberlist packets
	// are 1400 bytes; this leaves room for its label and encryption.
	udpMax = 1200
	// maxUDPBurst: a delta too big for one packet goes as up to this many
	// packets, each a delta of its own; a bigger one over TCP. Opening a TCP
	// connection per message (memberlist's SendReliable) cost a handshake
	// and a goroutine on each side: under a 2k changes/s load deltas of a
	// few entries outgrew one packet ~46 times a second. 64 packets are
	// ~77 KB, well inside a default 208 KB socket receive buffer; at 16 a
	// saturated bench node still sent ~6 deltas/s over TCP, each arriving
	// after the UDP pushes that followed it, so nearly every push landed
	// past a gap.
	maxUDPBurst = 64
	// maxDeltaEntries bounds one message; a big backlog goes as several.
	maxDeltaEntries = 1000
	// maxKeptBuf: a sender keeps its delta buffer up to this size.
	maxKeptBuf = 64 << 10
	// maxKeptEntries: a sender keeps its entries buffer up to this many.
	maxKeptEntries = 64
	// headInterval: how often a node tells each peer its own watermark, so a
	// peer that lost the last delta (UDP) notices and pulls within ~2 heads.
	headInterval = 250 * time.Millisecond
	// readyTimeout: a joining node that cannot reach some origin's entries
	// (its only holders died) becomes ready anyway after this.
	readyTimeout = 10 * time.Second
)

// peer is one other node and the sender goroutine that pushes this node's
// own changes to it: at once when the link is idle, coalesced while a send is
// in flight, so batching adds no fixed delay.
type peer struct {
	name      string
	origin    crdt.Origin
	meta      meta // as last advertised (guarded by Cluster.mu)
	node      atomic.Pointer[memberlist.Node]
	sent      uint64        // own seq this peer has been sent up to (sender goroutine only)
	holdSince atomic.Int64  // unix nanos when our held HTTP connection to it was last established
	holdTick  atomic.Int64  // monoNow() when a byte last arrived on that connection; 0 while it is down
	doubt     *doubt        // set while a gossip death of this peer is overruled (guarded by Cluster.mu)
	sentSeq   atomic.Uint64 // a copy of sent for metrics
	entries   []crdt.Entry  // the sender goroutine's delta entries (reused)
	out       packets       // the sender goroutine's delta messages (reused)
	wake      chan struct{}
	stop      chan struct{}
}

func (p *peer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Notify tells the cluster this node wrote something: every peer's sender
// wakes. It never blocks (it is called with the engine's lock held). It
// wakes the senders itself: through the worker goroutine, as it once did, a
// change waited to be scheduled once more before it left the node, and on a
// saturated machine 2-3 % of wake-ups wait over 10 ms.
func (c *Cluster) Notify() {
	if ps := c.senders.Load(); ps != nil {
		for _, p := range *ps {
			p.poke()
		}
	}
}

// publishSendersLocked refreshes the list Notify wakes. c.mu is held.
func (c *Cluster) publishSendersLocked() {
	ps := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		ps = append(ps, p)
	}
	c.senders.Store(&ps)
}

// worker processes received messages in order, off memberlist's
// goroutines, and runs the tasks queued by later.
func (c *Cluster) worker() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case b := <-c.inbox:
			c.handle(b)
		case <-c.tasksCh:
			c.mu.Lock()
			tasks := c.tasks
			c.tasks = nil
			c.mu.Unlock()
			for _, fn := range tasks {
				fn()
			}
		}
	}
}

// later queues an engine call for the worker. memberlist calls NotifyJoin
// and NotifyLeave with its node lock held; marking a node's sessions stale
// or dropping them walks every entry of that node, which must not hold up
// probes (a slow callback makes healthy members look suspect). Order is kept.
func (c *Cluster) later(fn func()) {
	c.mu.Lock()
	c.laterLocked(fn)
	c.mu.Unlock()
}

// laterLocked is later with c.mu held: the task is ordered with the
// membership change made in the same critical section.
func (c *Cluster) laterLocked(fn func()) {
	c.tasks = append(c.tasks, fn)
	select {
	case c.tasksCh <- struct{}{}:
	default:
	}
}

func (c *Cluster) sender(p *peer) {
	defer c.wg.Done()
	head := time.NewTicker(headInterval)
	defer head.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-p.stop:
			return
		case <-p.wake:
			c.push(p)
		case <-head.C:
			c.push(p)
			c.sendHead(p)
		}
	}
}

// push sends p every own entry it has not been sent.
func (c *Cluster) push(p *peer) {
	for {
		d := c.cfg.Replica.AppendDeltaSince(p.entries, c.self, p.sent, maxDeltaEntries)
		if d.Entries != nil && cap(d.Entries) <= maxKeptEntries {
			p.entries = d.Entries[:0]
		}
		if len(d.Entries) == 0 {
			p.sent = max(p.sent, d.To)
			p.sentSeq.Store(p.sent)
			return
		}
		sent := c.sendDelta(p.node.Load(), d, &p.out)
		clear(d.Entries) // drop the references to values until the next push
		if !sent {
			return // retried on the next wake or head
		}
		p.sent = d.To
		p.sentSeq.Store(p.sent)
	}
}

func (c *Cluster) sendDelta(to *memberlist.Node, d crdt.Delta, out *packets) bool {
	if err := c.deliverDelta(to, d, out); err != nil {
		c.log.Debug("send delta", zap.String("to", to.Name), zap.Error(err))
		return false
	}
	c.stats.DeltasSent.Add(1)
	return true
}

// deliverDelta sends d over UDP, as up to maxUDPBurst packets, or over TCP.
// A sender passes its own packets, reused from push to push (their
// allocation was a fifth of a node's in churn); nil allocates.
func (c *Cluster) deliverDelta(to *memberlist.Node, d crdt.Delta, p *packets) error {
	if p == nil {
		p = new(packets)
	}
	defer p.trim()
	ok, err := p.split(c.name, d)
	if err != nil {
		return err
	}
	if !ok {
		msg, err := deltaMsg(c.name, d)
		if err != nil {
			return err
		}
		c.stats.DeltasSentReliable.Add(1)
		return c.ml.SendReliable(to, msg)
	}
	for _, m := range p.msgs {
		if err := c.ml.SendBestEffort(to, m); err != nil {
			return err
		}
	}
	return nil
}

// packets is a delta split into messages of at most udpMax bytes, encoded
// into one buffer (memberlist copies what it sends, so a sender reuses
// both from push to push).
type packets struct {
	buf  []byte
	msgs [][]byte
}

// split encodes d as delta messages of at most udpMax bytes, in order:
// halves, each covering its part of d's range (the first ends at its last
// entry's seq, where the second begins), until each fits. ok is false when
// that would take more than maxUDPBurst packets or one entry alone is too
// big. It replaces what p held.
func (p *packets) split(name string, d crdt.Delta) (ok bool, err error) {
	p.buf, p.msgs = p.buf[:0], p.msgs[:0]
	return p.add(name, d)
}

func (p *packets) add(name string, d crdt.Delta) (ok bool, err error) {
	start := len(p.buf)
	b, err := appendDeltaMsg(p.buf, name, d)
	if err != nil {
		return false, err
	}
	// Messages before this one stay valid if b moved: they keep the array
	// they were written to, which nothing writes again.
	if msg := b[start:len(b):len(b)]; len(msg) <= udpMax {
		p.buf, p.msgs = b, append(p.msgs, msg)
		return len(p.msgs) <= maxUDPBurst, nil
	}
	size := len(b) - start
	p.buf = b[:start]
	// A full page (a pull's answer: the asker asks for the next page when
	// it gets maxDeltaEntries) stays whole; so does one that cannot fit.
	if len(d.Entries) < 2 || len(d.Entries) >= maxDeltaEntries || len(p.msgs) >= maxUDPBurst || size > maxUDPBurst*udpMax {
		return false, nil
	}
	mid := len(d.Entries) / 2
	// The first part ends at its last entry, or at d.To when that is lower:
	// a delta may carry entries above its range (held past a gap), and a
	// part claiming them as its range would move the receiver's watermark
	// over the gap.
	first := crdt.Delta{Origin: d.Origin, From: d.From, To: min(d.Entries[mid-1].Seq, d.To), Entries: d.Entries[:mid]}
	rest := crdt.Delta{Origin: d.Origin, From: first.To, To: d.To, Entries: d.Entries[mid:]}
	if ok, err = p.add(name, first); !ok {
		return false, err
	}
	return p.add(name, rest)
}

// trim lets go of a buffer a big delta grew past maxKeptBuf, and of the
// messages' references into it.
func (p *packets) trim() {
	if cap(p.buf) > maxKeptBuf {
		p.buf = nil
	}
	clear(p.msgs[:cap(p.msgs)])
	p.msgs = p.msgs[:0]
}

func (c *Cluster) sendHead(p *peer) {
	wm := c.cfg.Replica.Digest()[c.self]
	if wm == 0 {
		return
	}
	_ = c.ml.SendBestEffort(p.node.Load(), encodeMsg(msgHead, c.name, originSeq{Origin: c.self, Seq: wm}.encode()))
}

// receive queues a message from memberlist (which reuses its buffer).
func (c *Cluster) receive(b []byte) {
	select {
	case c.inbox <- append([]byte(nil), b...):
	default:
		c.stats.Dropped.Add(1) // heads and anti-entropy repair what is dropped
	}
}

func (c *Cluster) handle(b []byte) {
	typ, sender, body, err := decodeMsg(b)
	if err != nil {
		c.log.Warn("malformed cluster message dropped", zap.Error(err))
		return
	}
	switch typ {
	case msgDelta:
		var d crdt.Delta
		if err := d.UnmarshalBinary(body); err != nil {
			c.log.Warn("malformed delta dropped", zap.String("from", sender), zap.Error(err))
			return
		}
		c.mergeDelta(sender, d)
	case msgHead:
		os, err := decodeOriginSeq(body)
		if err != nil {
			return
		}
		c.checkHead(sender, os)
	case msgPull:
		os, err := decodeOriginSeq(body)
		if err != nil {
			return
		}
		c.async(func() { c.answerPull(sender, os) })
	case msgResync:
		os, err := decodeOriginSeq(body)
		if err != nil {
			return
		}
		c.async(func() { c.answerResync(sender, os) })
	case msgResyncPage:
		c.resyncPage(sender, body)
	case msgCensus:
		c.onCensus(sender, body)
	case msgDigest:
		var d crdt.Digest
		if d.UnmarshalBinary(body) == nil {
			c.mu.Lock()
			if p := c.peers[sender]; p != nil {
				c.digests[sender] = peerDigest{d: d, origin: p.origin, at: time.Now()}
			}
			c.mu.Unlock()
		}
	case msgMetaCmd:
		c.bg.Add(1)
		go func(body []byte) {
			defer c.bg.Done()
			c.answerMetaCmd(sender, body)
		}(append([]byte(nil), body...))
	case msgMetaResult:
		c.deliverMetaResult(body)
	case msgWant:
		os, err := decodeOriginSeq(body)
		if err != nil || c.superseded(os.Origin) || c.isFailed(os.Origin) || c.cfg.Replica.Digest()[os.Origin] >= os.Seq {
			return
		}
		c.pull(sender, os.Origin)
	}
}

func (c *Cluster) mergeDelta(sender string, d crdt.Delta) {
	if d.Origin == c.self || c.superseded(d.Origin) {
		return
	}
	if !c.admitRelay(sender, d.Origin) {
		return
	}
	c.stats.DeltasReceived.Add(1)
	gap, err := c.cfg.Replica.Merge(d)
	if err != nil {
		if !errors.Is(err, crdt.ErrClockAhead) {
			c.log.Debug("delta refused", zap.String("from", sender), zap.Error(err))
		}
		return
	}
	c.mu.Lock()
	_, pulling := c.pulling[d.Origin]
	full := len(d.Entries) >= maxDeltaEntries
	if pulling && !full && !gap {
		delete(c.pulling, d.Origin) // the last page of a pull
	}
	c.mu.Unlock()
	switch {
	case pulling && full:
		// A pull is paged: ask for the next page from where we are now, one
		// page at a time, so pages never race each other.
		c.pullNow(sender, d.Origin)
	case gap:
		c.stats.GapsSeen.Add(1)
		// A push ahead of what we hold. Usually the delta before it is
		// still on its way (it went over TCP, this one over UDP) and fills
		// the gap in a moment; the replica then moves its watermark past
		// both. So look again after gapWait and pull only if the gap is
		// still open; and while a pull of this origin is in flight its
		// answer covers the gap (pull asks again only once it stalled).
		// (Pulling at every such push, as this once did, sent a page of up
		// to 1,000 entries per push under load.)
		o, from := d.Origin, d.From
		time.AfterFunc(gapWait, func() {
			c.later(func() {
				if wm, _ := c.cfg.Replica.Census(o); !c.closed.Load() && wm < from {
					c.stats.GapsRepaired.Add(1)
					c.pull(sender, o)
				}
			})
		})
	}
}

// async runs a blocking send off the worker goroutine, so a black-holed
// peer's TCP timeout never stalls replication from everyone else. Only the
// worker calls it; Shutdown waits for these after the worker has stopped.
func (c *Cluster) async(fn func()) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn()
	}()
}

// admitRelay decides whether entries of origin o, received from sender,
// may be merged. The origin's own deltas always are (they prove it alive).
// Relayed entries of an origin declared dead are refused, so a peer that
// still holds them cannot bring sessions back after this node dropped them.
// Relayed entries of an origin this node has never seen alive (it joined
// after that node died) are merged as failed: stale, and gone after grace.
func (c *Cluster) admitRelay(sender string, o crdt.Origin) bool {
	c.mu.Lock()
	p := c.peers[sender]
	direct := p != nil && p.origin == o
	_, failed := c.failed[o]
	known := false
	for _, q := range c.peers {
		if q.origin == o {
			known = true
			break
		}
	}
	if direct {
		c.mu.Unlock()
		return true
	}
	if failed {
		c.mu.Unlock()
		return false
	}
	if known {
		c.mu.Unlock()
		return true
	}
	c.failed[o] = struct{}{}
	c.mu.Unlock()
	c.log.Info("entries of a node not alive here: shown stale until it joins or grace ends", zap.String("origin", o.String()))
	c.cfg.Replica.OriginFailed(o)
	return true
}

func (c *Cluster) isFailed(o crdt.Origin) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.failed[o]
	return ok
}

// checkHead pulls when a peer's watermark stayed ahead of ours across two
// heads (one head may simply overtake a delta in flight).
func (c *Cluster) checkHead(sender string, h originSeq) {
	if c.superseded(h.Origin) {
		return
	}
	ours := c.cfg.Replica.Digest()[h.Origin]
	c.mu.Lock()
	prev, lagging := c.lag[h.Origin]
	switch {
	case ours >= h.Seq:
		delete(c.lag, h.Origin)
		lagging = false
	case lagging && prev == ours:
		delete(c.lag, h.Origin)
	default:
		c.lag[h.Origin] = ours
		lagging = false
	}
	c.mu.Unlock()
	if lagging {
		c.stats.GapsRepaired.Add(1)
		c.pull(sender, h.Origin)
	}
}

// gapWait: how long a gap may stay open before it is pulled (a delta sent
// earlier over TCP may arrive after the next one, sent over UDP).
const gapWait = 100 * time.Millisecond

// pullStall: a pull that brought nothing for this long is retried (its
// request or answer went over UDP and was lost, or a TCP answer is stuck).
const pullStall = 750 * time.Millisecond

// pull asks peer `from` for origin o's entries after what we hold, unless a
// pull of o is already streaming (a big backlog arrives as many messages;
// asking again on every head or gap would send it several times).
func (c *Cluster) pull(from string, o crdt.Origin) {
	node := c.nodeNamed(from)
	if node == nil {
		return
	}
	c.mu.Lock()
	if at, ok := c.pulling[o]; ok && time.Since(at) < pullStall {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.pullNow(from, o)
}

// pullNow sends a pull request for o to peer `from` (one page).
func (c *Cluster) pullNow(from string, o crdt.Origin) {
	node := c.nodeNamed(from)
	if node == nil {
		return
	}
	c.mu.Lock()
	c.pulling[o] = time.Now()
	c.mu.Unlock()
	c.stats.Pulls.Add(1)
	after := c.cfg.Replica.Digest()[o]
	// A pull is a few bytes: UDP, no connection to set up (a TCP stream per
	// message costs a handshake, and seconds when a SYN is lost on a busy
	// host). A lost one is asked again after pullStall.
	_ = c.ml.SendBestEffort(node, encodeMsg(msgPull, c.name, originSeq{Origin: o, Seq: after}.encode()))
}

// answerPull sends one page (up to maxDeltaEntries) of origin o's entries
// after seq to the asking peer; it asks for the next page when this one is
// merged. An empty page still tells the asker our watermark.
func (c *Cluster) answerPull(to string, req originSeq) {
	node := c.nodeNamed(to)
	if node == nil {
		return
	}
	d := c.cfg.Replica.DeltaSince(req.Origin, req.Seq, maxDeltaEntries)
	_ = c.deliverDelta(node, d, nil) // the usual repair, one lost delta, is one packet
}

// peerList returns the alive peers now.
func (c *Cluster) peerList() []*peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	return out
}

func (c *Cluster) nodeNamed(name string) *memberlist.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.peers[name]; p != nil {
		return p.node.Load()
	}
	return nil
}
