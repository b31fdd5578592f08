package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// stampOf finds the send time a writer put in its data ({"t":unix ns}) in
// an update event, without decoding the event.
func stampOf(msg []byte) (time.Time, bool) {
	if !bytes.Contains(msg, []byte(`"type":"update"`)) {
		return time.Time{}, false
	}
	i := bytes.Index(msg, []byte(`{"t":`))
	if i < 0 {
		return time.Time{}, false
	}
	rest := msg[i+5:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// subscriber opens a connection to node n that subscribes to rooms and
// hands every message to onMsg (in the connection's read goroutine), and
// each room's snapshot to onSnap (if not nil).
func subscriber(ctx context.Context, n *node, user string, rooms []string, onMsg func([]byte), onSnap func(session.Snapshot)) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second) // for the dial and the subscribes
	defer cancel()
	c, err := client.Dial(ctx, n.ws(), client.Options{User: user, Tap: func(b []byte) bool {
		if len(b) > 0 && bytes.Contains(b[:min(len(b), 40)], []byte(`"type":"`)) && !bytes.Contains(b[:min(len(b), 60)], []byte(`"id"`)) {
			onMsg(b)
			return true
		}
		return false
	}})
	if err != nil {
		return nil, err
	}
	for _, r := range rooms {
		snap, err := c.Subscribe(ctx, r)
		if err != nil {
			c.Drop()
			return nil, fmt.Errorf("subscribe %s on %s: %w", r, n.name, err)
		}
		if onSnap != nil {
			onSnap(snap)
		}
	}
	return c, nil
}

// writers opens count sessions on node n in room, each updating its data
// with a send-time stamp every 1/rate seconds, until ctx ends.
func writers(ctx context.Context, n *node, room, prefix string, count int, rate float64, sent *atomic.Int64) (func(), error) {
	var cs []*client.Client
	for i := 0; i < count; i++ {
		// A node out of files accepts nothing and a dial would wait for ever:
		// bounded, it is an error in the report instead of a stalled run.
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		c, err := client.Dial(dctx, n.ws(), client.Options{User: fmt.Sprintf("%s%d", prefix, i), EventBuffer: 1})
		if err == nil {
			if err = c.Enter(dctx, room, map[string]any{"t": time.Now().UnixNano()}); err != nil {
				c.Drop()
			}
		}
		cancel()
		if err != nil {
			for _, c := range cs {
				c.Drop()
			}
			return nil, fmt.Errorf("writer %d of %d on %s: %w", i+1, count, n.name, err)
		}
		cs = append(cs, c)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	every := time.Duration(float64(time.Second) / rate)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the writers' phases over one period.
			if !sleepCtx(wctx, every*time.Duration(i)/time.Duration(len(cs))) {
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
				}
				uctx, ucancel := context.WithTimeout(wctx, 2*time.Second)
				if c.Update(uctx, room, map[string]any{"t": time.Now().UnixNano()}) == nil {
					sent.Add(1)
				}
				ucancel()
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		for _, c := range cs {
			c.Drop()
		}
	}, nil
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

// propResult is cross-node propagation: a change at node A, the event at
// subscribers on the other nodes.
type propResult struct {
	Rate     float64 `json:"changes_per_s"`
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	Latency  dist    `json:"latency"`
}

func measurePropagation(ctx context.Context, nodes []*node, rate float64, d time.Duration, progress func(string, ...any)) (propResult, error) {
	const room = "bench-prop"
	var lat samples
	var got atomic.Int64
	var subs []*client.Client
	defer func() {
		for _, s := range subs {
			s.Drop()
		}
	}()
	for i, n := range nodes[1:] {
		s, err := subscriber(ctx, n, fmt.Sprintf("prop-sub%d", i), []string{room}, func(b []byte) {
			if t, ok := stampOf(b); ok {
				lat.add(time.Since(t))
				got.Add(1)
			}
		}, nil)
		if err != nil {
			return propResult{}, err
		}
		subs = append(subs, s)
	}
	// Writers at 40/s each stay under the per-connection rate limit (50/s).
	count := max(1, int(rate/40))
	var sent atomic.Int64
	stop, err := writers(ctx, nodes[0], room, "prop-w", count, rate/float64(count), &sent)
	if err != nil {
		return propResult{}, err
	}
	sleepCtx(ctx, time.Second) // warm-up: enters and first updates
	lat.reset()
	s0, g0 := sent.Load(), got.Load()
	progress("propagation: %d writers on %s, %.0f changes/s, subscribers on %d other nodes, %v", count, nodes[0].name, rate, len(nodes)-1, d)
	sleepCtx(ctx, d)
	res := propResult{Sent: sent.Load() - s0, Received: got.Load() - g0, Latency: lat.dist()}
	res.Rate = float64(res.Sent) / d.Seconds()
	stop()
	return res, nil
}

// fanResult is fan-out: every update in one room delivered to every
// subscriber of that room, on every node.
type fanResult struct {
	Subscribers   int     `json:"subscribers"`
	UpdatesPerSec float64 `json:"updates_per_s"`
	Deliveries    int64   `json:"deliveries"`
	PerSec        float64 `json:"deliveries_per_s"`
	Latency       dist    `json:"latency"`
	Dropped       int     `json:"subscribers_dropped"`
}

func measureFanOut(ctx context.Context, nodes []*node, subs int, rate float64, d time.Duration, progress func(string, ...any)) (fanResult, error) {
	const room = "bench-fan"
	var lat samples
	var got atomic.Int64
	var cs []*client.Client
	defer func() {
		for _, c := range cs {
			c.Drop()
		}
	}()
	// Sample one delivery in 16 for latency (cheap, and still thousands per second).
	var seq atomic.Int64
	for i := 0; i < subs; i++ {
		n := nodes[i%len(nodes)]
		c, err := subscriber(ctx, n, fmt.Sprintf("fan-sub%d", i), []string{room}, func(b []byte) {
			if !bytes.Contains(b, []byte(`"type":"update"`)) {
				return
			}
			got.Add(1)
			if seq.Add(1)%16 == 0 {
				if t, ok := stampOf(b); ok {
					lat.add(time.Since(t))
				}
			}
		}, nil)
		if err != nil {
			return fanResult{}, err
		}
		cs = append(cs, c)
	}
	// Each writer waits for its answer before the next update: at 10/s
	// each, an answer may take 100 ms before a writer falls behind (at 40/s
	// the writers reached 46 of 130 updates/s under the full load, at 15/s
	// 123 of 130).
	count := max(1, int(rate/10))
	var sent atomic.Int64
	var stops []func()
	for i := 0; i < count; i++ { // writers spread over the nodes too
		stop, err := writers(ctx, nodes[i%len(nodes)], room, fmt.Sprintf("fan-w%d-", i), 1, rate/float64(count), &sent)
		if err != nil {
			return fanResult{}, err
		}
		stops = append(stops, stop)
	}
	sleepCtx(ctx, time.Second)
	lat.reset()
	s0, g0 := sent.Load(), got.Load()
	progress("fan-out: %d subscribers over %d nodes, %d writers, %.0f updates/s, %v", subs, len(nodes), count, rate, d)
	sleepCtx(ctx, d)
	res := fanResult{Subscribers: subs, Deliveries: got.Load() - g0, Latency: lat.dist()}
	res.UpdatesPerSec = float64(sent.Load()-s0) / d.Seconds()
	res.PerSec = float64(res.Deliveries) / d.Seconds()
	for _, stop := range stops {
		stop()
	}
	for _, c := range cs {
		select {
		case <-c.Done():
			res.Dropped++
		default:
		}
	}
	return res, nil
}

// killResult: kill -9 of a node, until every one of its sessions is shown
// stale on every survivor (read from room events).
type killResult struct {
	Node       string             `json:"node"`
	Sessions   int                `json:"sessions"`     // connected to the victim at the kill
	Listed     int                `json:"listed"`       // of those, listed in a room by the survivors (the most of any)
	AllStaleMS map[string]float64 `json:"all_stale_ms"` // per survivor; -1: not all within the timeout
	PerSession dist               `json:"per_session"`
}

func measureKill(ctx context.Context, nodes []*node, victim *node, victimPrefix string, victimSessions int, rooms []string, progress func(string, ...any)) (killResult, error) {
	res := killResult{Node: victim.name, Sessions: victimSessions, AllStaleMS: map[string]float64{}}
	var per samples
	// What each survivor must show stale: the victim's sessions it lists in
	// the rooms' snapshots just before the kill. (Not simply every session
	// connected to the victim: a churn pair whose enter failed after its
	// leave left that session in no room, so no room can show it stale.)
	type tally struct {
		mu     sync.Mutex
		expect map[string]bool
		seen   map[string]bool
		first  time.Time
		last   time.Time
	}
	var killedAt atomic.Int64
	tallies := map[string]*tally{}
	var cs []*client.Client
	defer func() {
		for _, c := range cs {
			c.Drop()
		}
	}()
	needle := []byte(`"user":"` + victimPrefix)
	for _, n := range nodes {
		if n == victim {
			continue
		}
		t := &tally{expect: map[string]bool{}, seen: map[string]bool{}}
		tallies[n.name] = t
		// One connection per room: a burst of thousands of events at once
		// stays far below any one connection's send queue.
		for _, r := range rooms {
			c, err := subscriber(ctx, n, "kill-sub-"+n.name+"-"+r, []string{r}, func(b []byte) {
				if !bytes.Contains(b, []byte(`"state":"stale"`)) || !bytes.Contains(b, needle) || !bytes.Contains(b, []byte(`"type":"update"`)) {
					return
				}
				var ev struct {
					Member struct {
						Session string `json:"session"`
					} `json:"member"`
				}
				if json.Unmarshal(b, &ev) != nil || killedAt.Load() == 0 {
					return
				}
				now := time.Now()
				t.mu.Lock()
				if t.expect[ev.Member.Session] && !t.seen[ev.Member.Session] {
					t.seen[ev.Member.Session] = true
					if t.first.IsZero() {
						t.first = now
					}
					t.last = now
					per.add(now.Sub(time.Unix(0, killedAt.Load())))
				}
				t.mu.Unlock()
			}, func(snap session.Snapshot) {
				t.mu.Lock()
				defer t.mu.Unlock()
				for _, m := range snap.Members {
					if strings.HasPrefix(m.User, victimPrefix) && m.State != session.Stale {
						t.expect[m.Session] = true
					}
				}
			})
			if err != nil {
				return res, err
			}
			cs = append(cs, c)
		}
	}
	for name, t := range tallies {
		if len(t.expect) != victimSessions {
			progress("%s lists %d of %s's %d connected sessions in the rooms (the others are in no room: a churn pair of theirs failed between its leave and its enter)", name, len(t.expect), victim.name, victimSessions)
		}
		res.Listed = max(res.Listed, len(t.expect))
	}
	progress("kill -9 %s (%d sessions); waiting for them to show stale on %d survivors", victim.name, victimSessions, len(tallies))
	killedAt.Store(time.Now().UnixNano())
	if err := syscall.Kill(victim.pid(), syscall.SIGKILL); err != nil {
		return res, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for _, t := range tallies {
			t.mu.Lock()
			if len(t.seen) < len(t.expect) {
				done = false
			}
			t.mu.Unlock()
		}
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	k := time.Unix(0, killedAt.Load())
	for name, t := range tallies {
		t.mu.Lock()
		if len(t.expect) == 0 {
			res.AllStaleMS[name] = -1
			progress("%s listed none of %s's sessions before the kill", name, victim.name)
		} else if len(t.seen) >= len(t.expect) {
			res.AllStaleMS[name] = ms(t.last.Sub(k))
			progress("%s: first of the victim's sessions shown stale %.0f ms after the kill, the last %.0f ms", name, ms(t.first.Sub(k)), ms(t.last.Sub(k)))
		} else {
			res.AllStaleMS[name] = -1
			progress("%s: only %d of the %d sessions it listed shown stale after 30 s", name, len(t.seen), len(t.expect))
		}
		t.mu.Unlock()
	}
	res.PerSession = per.dist()
	return res, nil
}
