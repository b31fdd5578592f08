package cluster_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/session"
)

// holdServer serves /internal/v1/hold as the gateway does — a byte every
// 250 ms — for a node whose HTTPAddr points at it, and lets a test make it
// fall silent (a frozen or cut-off process) without closing the connection.
// It stands outside the node, so the test decides what the hold says while
// the memNet decides what gossip says.
type holdServer struct {
	srv     *httptest.Server
	silent  atomic.Bool
	holding atomic.Int32
	done    chan struct{}
}

// newHoldServer must be called before the nodes start: its cleanup then runs
// after theirs.
func newHoldServer(t *testing.T) *holdServer {
	h := &holdServer{done: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.holding.Add(1)
		defer h.holding.Add(-1)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-h.done:
				return
			case <-tick.C:
				if h.silent.Load() {
					continue
				}
				if _, err := w.Write([]byte{'\n'}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(func() { close(h.done); h.srv.Close() })
	return h
}

// overrulePair starts a (no hold of its own) and b (its hold served by h) on
// a memNet, with b's session "bob" in room r replicated to a, and a's hold
// to b ticking.
func overrulePair(t *testing.T, mn *memNet, h *holdServer) (a, b *testNode) {
	t.Helper()
	a = startFaultNode(t, mn, "o1", 30*time.Second)
	tr := mn.newTransport()
	b = buildNode(t, cluster.Config{Transport: tr, GossipAddr: tr.Addr(), Join: []string{a.c.Addr()},
		HTTPAddr: strings.TrimPrefix(h.srv.URL, "http://"), Logger: zaptest.NewLogger(t).Named("o2")}, "o2", 1, 30*time.Second)
	a.subscribe(t, "r")
	op, err := b.engine.Open(session.OpenRequest{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.engine.Enter(op.Session, "r", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob replicated to a", func() bool { return a.engine.UserPresence("bob").State == session.Active })
	eventually(t, 5*time.Second, "a hears b's hold ticking", func() bool { return a.c.HeardFrom("o2") })
	return a, b
}

// cutAndAwaitOverrule partitions a from b and waits until a's gossip has
// declared b dead and a overruled it, checking all along that bob never
// went stale on a.
func cutAndAwaitOverrule(t *testing.T, mn *memNet, a, b *testNode) time.Time {
	t.Helper()
	mn.partition([]string{a.c.Addr()}, []string{b.c.Addr()})
	eventually(t, 10*time.Second, "a's gossip declares b dead and a overrules it", func() bool {
		if st := a.engine.UserPresence("bob").State; st != session.Active {
			t.Fatalf("bob is %s on a while b's hold ticks", st)
		}
		return a.c.GossipDeathsOverruled() == 1 && a.c.Overruling() == 1
	})
	if n := a.c.NumMembers(); n != 1 {
		t.Fatalf("a's gossip has %d members: b should be dead in it", n)
	}
	return time.Now()
}

// Gossip declares b dead (all gossip between a and b is cut) while b's held
// HTTP connection keeps ticking: a keeps b's sessions active, and when
// gossip takes b back nothing was failed, nothing flaps, and replication
// from b goes on.
func TestGossipDeathOverruledWhileTheHoldTicks(t *testing.T) {
	mn := newMemNet(1)
	h := newHoldServer(t)
	a, b := overrulePair(t, mn, h)
	at := cutAndAwaitOverrule(t, mn, a, b)
	// Stay cut past holdStale: the ticking hold, not luck, keeps b.
	watchUntil := time.Now().Add(cluster.HoldStale + 500*time.Millisecond)
	for time.Now().Before(watchUntil) {
		if st := a.engine.UserPresence("bob").State; st != session.Active {
			t.Fatalf("bob went %s on a while b's hold ticked", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mn.heal()
	took := eventually(t, cluster.OverruleCap/2, "gossip takes b back on a", func() bool {
		if st := a.engine.UserPresence("bob").State; st != session.Active {
			t.Fatalf("bob went %s on a during the heal", st)
		}
		return a.c.NumMembers() == 2 && a.c.Overruling() == 0
	})
	t.Logf("gossip took b back %v after the heal", took)
	if f := flaps(a); len(f) != 0 {
		t.Fatalf("a saw b's session flap: %v", f)
	}
	for _, v := range a.c.Nodes() {
		if v.Name == "o2" && v.State != cluster.NodeAlive {
			t.Fatalf("a shows b as %s", v.State)
		}
	}
	// b's sender to a was never stopped: a new session of b still arrives.
	op, _ := b.engine.Open(session.OpenRequest{User: "bob2"})
	_ = b.engine.Enter(op.Session, "r", nil)
	eventually(t, 5*time.Second, "a new session of b replicated to a", func() bool {
		return a.engine.UserPresence("bob2").State == session.Active
	})
	// The withdrawn overrule is over for good: nothing fails b when its cap
	// would have passed.
	for time.Since(at) < cluster.OverruleCap+time.Second {
		if st := a.engine.UserPresence("bob").State; st != session.Active {
			t.Fatalf("bob went %s on a %v after the overrule that gossip withdrew", st, time.Since(at))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f := flaps(a); len(f) != 0 {
		t.Fatalf("a saw b's session flap after the heal: %v", f)
	}
}

// flaps lists the events n saw that show a session or user other than
// active, or gone. (An update that keeps the state, e.g. a newer
// last_active after b resynced with a when the cut healed, is no flap: b
// declared a dead meanwhile: a serves no hold in this test.)
func flaps(n *testNode) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, ev := range n.events {
		switch {
		case ev.Type == session.EventLeave || ev.Type == session.EventOffline,
			ev.Type == session.EventUpdate && ev.Member != nil && ev.Member.State != session.Active,
			ev.Type == session.EventState && ev.State != session.Active:
			out = append(out, string(ev.JSON()))
		}
	}
	return out
}

// A peer whose death was overruled is failed soon after its hold stops
// speaking: silent (a frozen or partitioned process: no byte, connection
// open) within holdStale, or dropped (a killed one: EOF) at once.
func TestOverruledDeathCarriedOutWhenTheHoldStops(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stop   func(h *holdServer)
		within time.Duration
	}{
		{"silent", func(h *holdServer) { h.silent.Store(true) }, cluster.HoldStale + time.Second},
		{"eof", func(h *holdServer) { h.silent.Store(true); h.srv.CloseClientConnections() }, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mn := newMemNet(1)
			h := newHoldServer(t)
			a, b := overrulePair(t, mn, h)
			cutAndAwaitOverrule(t, mn, a, b)
			tc.stop(h)
			took := eventually(t, tc.within, "b failed on a", func() bool {
				return a.engine.UserPresence("bob").State == session.Stale && a.c.Overruling() == 0
			})
			t.Logf("bob stale on a %v after b's hold stopped", took)
			for _, v := range a.c.Nodes() {
				if v.Name == "o2" && v.State != cluster.NodeDead {
					t.Fatalf("a shows b as %s after failing it", v.State)
				}
			}
		})
	}
}

// Gossip is the authority in the end: a peer whose hold keeps ticking but
// which gossip never takes back is failed after overruleCap.
func TestOverruledDeathCarriedOutAtTheCap(t *testing.T) {
	mn := newMemNet(1)
	h := newHoldServer(t)
	a, b := overrulePair(t, mn, h)
	at := cutAndAwaitOverrule(t, mn, a, b)
	took := eventually(t, cluster.OverruleCap+3*time.Second, "b failed on a at the cap", func() bool {
		st := a.engine.UserPresence("bob").State
		if st != session.Active && time.Since(at) < cluster.OverruleCap-time.Second {
			t.Fatalf("bob went %s on a %v after the overrule, before the cap", st, time.Since(at))
		}
		return st == session.Stale
	})
	t.Logf("bob stale on a %v after the overrule (cap %v)", took, cluster.OverruleCap)
	if n := a.c.Overruling(); n != 0 {
		t.Fatalf("a still overrules %d peer(s) after the cap", n)
	}
	eventually(t, 2*time.Second, "a dropped its hold to b", func() bool { return h.holding.Load() == 0 })
}
