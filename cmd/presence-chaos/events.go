package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// watcher subscribes to every room on one node and checks its event
// stream: versions go up by exactly one (no gap, no duplicate), and the
// snapshot with every event applied equals the node's own listing at the
// same version.
type watcher struct {
	n      *node
	rooms  []string
	v      *violations
	events atomic.Int64 // events applied
	checks atomic.Int64 // view == listing comparisons made
}

type checkReq struct {
	room    string
	version uint64
	members map[string]session.State
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		if !w.n.ready() {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		w.session(ctx)
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// session is one connection: subscribe, then apply events and answer
// checks until the connection fails.
func (w *watcher) session(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	c, err := client.Dial(dctx, "ws://"+w.n.http+"/v1/ws", client.Options{User: "watcher-" + w.n.name, NoAutoPing: true, EventBuffer: 1 << 16})
	cancel()
	if err != nil {
		return
	}
	defer c.Drop()
	views := map[string]*session.RoomView{}
	lastEvent := map[string]uint64{} // version of the last event applied (0 after a snapshot)
	subscribe := func(room string) bool {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		snap, err := c.Subscribe(sctx, room)
		if err != nil {
			return false
		}
		views[room], lastEvent[room] = session.NewRoomView(snap), 0
		return true
	}
	for _, r := range w.rooms {
		if !subscribe(r) {
			return
		}
	}
	checks := make(chan checkReq, 1)
	qctx, stopQueries := context.WithCancel(ctx)
	defer stopQueries()
	go w.query(qctx, c, checks)

	apply := func(ev *session.Event) bool {
		v := views[ev.Room]
		if v == nil {
			return true
		}
		if ev.Version <= lastEvent[ev.Room] && lastEvent[ev.Room] != 0 {
			w.v.add("event_duplicate", fmt.Sprintf("%s room %s: event v%d after v%d", w.n.name, ev.Room, ev.Version, lastEvent[ev.Room]))
			return true
		}
		if err := v.Apply(ev); errors.Is(err, session.ErrVersionGap) {
			w.v.add("event_gap", fmt.Sprintf("%s room %s: %v", w.n.name, ev.Room, err))
			return subscribe(ev.Room)
		}
		if ev.Version == v.Version {
			lastEvent[ev.Room] = ev.Version
		}
		w.events.Add(1)
		return true
	}
	ping := time.NewTicker(time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			_, err := c.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		case ev := <-c.Events():
			if !apply(ev) {
				return
			}
		case req := <-checks:
			if !w.check(ctx, c, views, req, apply) {
				return
			}
		}
		if c.Dropped.Load() > 0 {
			w.v.add("event_gap", fmt.Sprintf("%s: the client's event buffer overflowed", w.n.name))
			return
		}
	}
}

// check brings the room's view to the listing's version, applying events in
// order, and compares. A view already past that version is skipped.
func (w *watcher) check(ctx context.Context, c *client.Client, views map[string]*session.RoomView, req checkReq, apply func(*session.Event) bool) bool {
	deadline := time.After(3 * time.Second)
	for {
		v := views[req.room]
		if v.Version > req.version {
			return true
		}
		if v.Version == req.version {
			w.checks.Add(1)
			got := map[string]session.State{}
			for sid, m := range v.Members {
				got[sid] = m.State
			}
			if d := diffStates(got, req.members); d != "" {
				w.v.add("event_mismatch", fmt.Sprintf("%s room %s v%d: snapshot+events differ from the node's listing: %s", w.n.name, req.room, req.version, d))
			}
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-c.Done():
			return false
		case <-deadline:
			w.v.add("event_gap", fmt.Sprintf("%s room %s: listing at v%d, but events stop at v%d for 3 s", w.n.name, req.room, req.version, v.Version))
			return false
		case ev := <-c.Events():
			if !apply(ev) {
				return false
			}
		}
	}
}

// query asks the node for a room's members every second, round robin.
func (w *watcher) query(ctx context.Context, c *client.Client, out chan<- checkReq) {
	for i := 0; ; i++ {
		if !sleepCtx(ctx, time.Second) {
			return
		}
		room := w.rooms[i%len(w.rooms)]
		var body struct {
			Version uint64           `json:"version"`
			Members []session.Member `json:"members"`
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Query(qctx, "members", room, nil, &body)
		cancel()
		if err != nil {
			continue
		}
		req := checkReq{room: room, version: body.Version, members: map[string]session.State{}}
		for _, m := range body.Members {
			req.members[m.Session] = m.State
		}
		select {
		case out <- req:
		case <-ctx.Done():
			return
		}
	}
}

// diffStates describes how two session→state maps differ ("" if equal),
// listing at most three differences.
func diffStates(a, b map[string]session.State) string {
	var d []string
	for k, x := range a {
		if y, ok := b[k]; !ok {
			d = append(d, fmt.Sprintf("%s only in the view (%s)", short(k), x))
		} else if x != y {
			d = append(d, fmt.Sprintf("%s %s vs %s", short(k), x, y))
		}
	}
	for k, y := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s only in the listing (%s)", short(k), y))
		}
	}
	if len(d) == 0 {
		return ""
	}
	sort.Strings(d)
	if len(d) > 3 {
		d = append(d[:3], fmt.Sprintf("and %d more", len(d)-3))
	}
	return fmt.Sprint(d)
}

func short(sid string) string {
	if len(sid) > 10 {
		return sid[:10]
	}
	return sid
}
