package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// balancer is the load balancer in front of the cluster: it sends a new
// connection to a random node among those answering /readyz.
type balancer struct {
	mu    sync.Mutex
	ready []*node
}

func (b *balancer) set(ready []*node) {
	b.mu.Lock()
	b.ready = ready
	b.mu.Unlock()
}

func (b *balancer) pick(rng *rand.Rand) *node {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ready) == 0 {
		return nil
	}
	return b.ready[rng.IntN(len(b.ready))]
}

func (b *balancer) snapshot() []*node {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*node(nil), b.ready...)
}

// driverStats counts what the simulated tabs did.
type driverStats struct {
	connects, resumes, resumeFailed, closes, crashes, updates, reconnects atomic.Int64
}

// driver runs simulated users, each with several tabs (sessions), through
// the public WebSocket protocol, and records the ground truth.
type driver struct {
	lb    *balancer
	tr    *truth
	rooms []string
	stats driverStats
	churn bool // tabs close and crash now and then
	ping  time.Duration
	wg    sync.WaitGroup
}

// tab is one browser tab of user: it stays in room, reconnecting (and
// resuming) through the balancer whenever its connection fails.
func (d *driver) tab(ctx context.Context, user, room string, seed uint64) {
	defer d.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 7))
	var sid, resume string
	defer func() {
		if sid != "" { // stopped while reconnecting: that session is over too
			d.tr.disconnected(sid, time.Now(), true)
		}
	}()
	// Start over a spread of time so the cluster is not hit at once.
	if !sleepCtx(ctx, time.Duration(rng.IntN(3000))*time.Millisecond) {
		return
	}
	for ctx.Err() == nil {
		n := d.lb.pick(rng)
		if n == nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := client.Dial(dctx, "ws://"+n.http+"/v1/ws", client.Options{User: user, Resume: resume, Location: room,
			Device: session.Device{Kind: "web"}, NoAutoPing: true})
		cancel()
		if err != nil {
			sleepCtx(ctx, time.Duration(100+rng.IntN(400))*time.Millisecond)
			continue
		}
		d.stats.connects.Add(1)
		w := c.Welcome
		now := time.Now()
		if sid != "" && w.Session != sid {
			d.stats.resumeFailed.Add(1)
			d.tr.disconnected(sid, now, true) // the old session is over
		}
		if w.Resumed {
			d.stats.resumes.Add(1)
		}
		sid, resume = w.Session, w.ResumeToken
		d.tr.connected(sid, user, n.name, now)
		if !w.Resumed {
			ectx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := c.Enter(ectx, room, map[string]any{"tab": seed})
			cancel()
			if err != nil {
				c.Drop()
				d.tr.disconnected(sid, time.Now(), false)
				continue
			}
			d.tr.entered(sid, room, time.Now())
		}
		switch d.live(ctx, c, rng, sid, room) {
		case tabReconnect:
			d.stats.reconnects.Add(1)
			sleepCtx(ctx, time.Duration(50+rng.IntN(250))*time.Millisecond)
		case tabNew:
			sid, resume = "", ""
			sleepCtx(ctx, time.Duration(500+rng.IntN(1500))*time.Millisecond)
		case tabStop:
			return
		}
	}
}

type tabNext int

const (
	tabReconnect tabNext = iota // the connection failed: resume elsewhere
	tabNew                      // the session ended (closed or crashed): open a new one
	tabStop
)

// live keeps a connected tab going: heartbeats (a ping that times out
// means the node is gone or frozen), data updates, and now and then an
// explicit close or a crash.
func (d *driver) live(ctx context.Context, c *client.Client, rng *rand.Rand, sid, room string) tabNext {
	lastPong := time.Now()
	for {
		wait := d.ping/2 + time.Duration(rng.Int64N(int64(d.ping)))
		select {
		case <-ctx.Done():
			d.closeTab(c, sid)
			return tabStop
		case <-c.Done():
			d.tr.disconnected(sid, lastPong, false) // drained (1012) or cut: resume elsewhere
			return tabReconnect
		case <-time.After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		_, err := c.Ping(pctx)
		cancel()
		if err != nil {
			c.Drop()
			d.tr.disconnected(sid, lastPong, false)
			return tabReconnect
		}
		lastPong = time.Now()
		if !d.churn {
			continue
		}
		switch r := rng.IntN(1000); {
		case r < 3: // explicit close, then a new tab
			if d.closeTab(c, sid) {
				d.stats.closes.Add(1)
			}
			return tabNew
		case r < 5: // the tab crashes: no close, never resumed
			c.Drop()
			d.stats.crashes.Add(1)
			d.tr.disconnected(sid, lastPong, true)
			return tabNew
		case r < 15:
			uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if c.Update(uctx, room, map[string]any{"n": rng.IntN(1000)}) == nil {
				d.stats.updates.Add(1)
			}
			cancel()
		}
	}
}

// closeTab ends the session explicitly. The truth records the end before
// the close is sent: the node removes the session as soon as it reads the
// close, before its answer reaches us, and an oracle sample in between must
// not take the missing session for a false offline.
func (d *driver) closeTab(c *client.Client, sid string) bool {
	d.tr.disconnected(sid, time.Now(), true)
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := c.CloseSession(cctx, session.ReasonClosed, nil)
	cancel()
	c.Drop()
	return err == nil
}

// start launches users×tabs tabs; user i's tabs are in room i % len(rooms).
func (d *driver) start(ctx context.Context, users, tabs int, seed uint64) {
	for u := 0; u < users; u++ {
		for t := 0; t < tabs; t++ {
			d.wg.Add(1)
			go d.tab(ctx, fmt.Sprintf("user%04d", u), d.rooms[u%len(d.rooms)], seed*1_000_003+uint64(u*tabs+t))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
