package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// busyRoom serves a node where every room is busy (bulkFanout 1) with the
// given coalescing window, a watcher subscribed to "hall" and a writer in
// it.
func busyRoom(t *testing.T, o nodeOpts, window time.Duration) (n *testNode, watcher, writer *client.Client) {
	t.Helper()
	o.gateway.bulkFanout = 1
	o.gateway.coalesceWindow = window
	n = newTestNode(t, o)
	ctx := ctxT(t)
	watcher = n.dial(client.Options{User: "watcher"})
	if _, err := watcher.Subscribe(ctx, "hall"); err != nil {
		t.Fatal(err)
	}
	writer = n.dial(client.Options{User: "writer"})
	if err := writer.Enter(ctx, "hall", map[string]any{"v": 0}); err != nil {
		t.Fatal(err)
	}
	return n, watcher, writer
}

// Events of a room with bulkFanout subscribers or more reach each of them
// in one frame per coalescing window; answers are not held back.
func TestWSEventsOfABusyRoomAreCoalesced(t *testing.T) {
	readModes(t, func(t *testing.T, o nodeOpts) {
		const window = 3 * time.Second
		n, watcher, writer := busyRoom(t, o, window)
		ctx := ctxT(t)
		eventsUntil(t, watcher, func(ev *session.Event) bool { return ev.Type == session.EventOnline })
		// The counts start from a quiet server. Counted from the moment the
		// online event was read, the frame that carried it (counted just
		// after its write) and events picked up by a flush still running
		// then made 4 frames of 3 (CI, -race).
		quiet(t, n.gw)
		frames0, msgs0 := testutil.ToFloat64(n.gw.metrics.framesOut), testutil.ToFloat64(n.gw.metrics.messagesOut)
		start := time.Now()
		const updates = 10
		for i := 1; i <= updates; i++ {
			t0 := time.Now()
			if err := writer.Update(ctx, "hall", map[string]any{"v": i}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Fatalf("an answer took %v: held back with the events?", d)
			}
		}
		within := time.Since(start) < window
		evs := eventsUntil(t, watcher, func(ev *session.Event) bool {
			return ev.Type == session.EventUpdate && string(ev.Member.Data) == `{"v":10}`
		})
		var last uint64
		for _, ev := range evs {
			if ev.Version <= last {
				t.Fatalf("version %d after %d", ev.Version, last)
			}
			last = ev.Version
		}
		// The counters move just after each write: a client can have read
		// the frame first.
		eventually(t, "the messages counted", func() bool {
			return testutil.ToFloat64(n.gw.metrics.messagesOut)-msgs0 >= 2*updates
		})
		frames := testutil.ToFloat64(n.gw.metrics.framesOut) - frames0
		msgs := testutil.ToFloat64(n.gw.metrics.messagesOut) - msgs0
		// The writer's 10 answers are a frame each. The watcher's events (10
		// updates, and a state event of the writer's session that may still
		// wait in the window that was open when the updates began) take at
		// most three frames when the updates took less than one window: the
		// open window's, and one or two more. Never one per event.
		if msgs < 2*updates {
			t.Fatalf("%v messages out, want at least %d", msgs, 2*updates)
		}
		if within && frames > updates+3 || frames > updates+4 {
			t.Fatalf("%v frames for %v messages: %d answers and the events (updates within one window: %v)", frames, msgs, updates, within)
		}
	})
}

// quiet waits until no connection of s has anything queued, a flush
// running or a delayed flush due: every frame so far is written and
// counted.
func quiet(t *testing.T, s *Server) {
	t.Helper()
	eventually(t, "the server quiet", func() bool {
		s.lateMu.Lock()
		armed := s.lateArmed
		s.lateMu.Unlock()
		if armed {
			return false
		}
		s.mu.Lock()
		conns := s.connsLocked()
		s.mu.Unlock()
		for _, c := range conns {
			c.mu.Lock()
			busy := len(c.queue) > 0 || c.flushing || c.late
			c.mu.Unlock()
			if busy {
				return false
			}
		}
		return true
	})
}

// A burst bigger than a quarter of the send queue is not held for the
// window: held, it would fill the queue and drop the subscriber as slow.
// (The burst's last events, fewer than a quarter of the queue, may wait
// one window, as any event of a busy room: the window is 2 s, inside the
// 10 s waited here.) The queue is 64 and the burst 200 updates: with a
// queue of 8, a writer that was not scheduled for the time of 6 updates
// lost the watcher as a slow consumer (1 run in 24 under -race).
func TestWSBurstInABusyRoomIsNotHeldUntilTheQueueFills(t *testing.T) {
	o := nodeOpts{}
	o.gateway.SendQueue = 64
	o.gateway.RateLimit = 1e6
	_, watcher, writer := busyRoom(t, o, 2*time.Second)
	ctx := ctxT(t)
	const updates = 200
	for i := 1; i <= updates; i++ {
		if err := writer.Update(ctx, "hall", map[string]any{"v": i}); err != nil {
			t.Fatal(err)
		}
	}
	// Without the bypass the queue fills and the watcher is closed with
	// 4001.
	last := fmt.Sprintf(`{"v":%d}`, updates)
	deadline := time.After(10 * time.Second)
	for got := 0; ; got++ {
		select {
		case ev := <-watcher.Events():
			if ev.Type == session.EventUpdate && string(ev.Member.Data) == last {
				return
			}
		case <-watcher.Done():
			t.Fatalf("watcher closed after %d events: %d %s", got, watcher.CloseStatus(), watcher.CloseReason())
		case <-deadline:
			t.Fatalf("the last update not seen within 10 s; %d events", got)
		}
	}
}
