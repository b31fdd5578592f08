package cluster_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/crdt"
	"github.com/presenced/presenced/session"
)

// testNode is one in-process node: an engine replicated by a cluster over
// real loopback gossip (UDP and TCP) with the local profile.
type testNode struct {
	name   string
	engine *session.Engine
	c      *cluster.Cluster
	mu     sync.Mutex
	events []*session.Event
	down   bool
}

func startNode(t *testing.T, name string, inc uint64, grace time.Duration, join ...string) *testNode {
	t.Helper()
	return newTestNode(t, zaptest.NewLogger(t).Named(name), name, inc, grace, join...)
}

// startNodeB starts a node for a benchmark (logs discarded).
func startNodeB(b *testing.B, name string, join []string) *testNode {
	b.Helper()
	return newTestNode(b, zap.NewNop(), name, 1, 15*time.Second, join...)
}

func newTestNode(t testing.TB, log *zap.Logger, name string, inc uint64, grace time.Duration, join ...string) *testNode {
	t.Helper()
	return buildNode(t, cluster.Config{GossipAddr: "127.0.0.1:0", Join: join, Logger: log}, name, inc, grace)
}

// buildNode starts an engine and its cluster from cfg (Replica and, unless
// set, Profile are filled in) and joins cfg.Join.
func buildNode(t testing.TB, cfg cluster.Config, name string, inc uint64, grace time.Duration) *testNode {
	t.Helper()
	n := &testNode{name: name}
	var cl atomic.Pointer[cluster.Cluster]
	n.engine = session.New(session.Config{Node: name, Incarnation: inc, Grace: grace,
		OnLocalWrite: func(crdt.Entry) {
			if c := cl.Load(); c != nil {
				c.Notify()
			}
		}})
	cfg.Replica, cfg.Profile = n.engine, cluster.ProfileLocal
	if p := os.Getenv("CLUSTER_BENCH_PROFILE"); p != "" {
		cfg.Profile = p // e.g. lan, to measure its failure detection
	}
	c, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl.Store(c)
	n.c = c
	if err := c.Join(cfg.Join); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.kill)
	return n
}

// kill stops the node without a goodbye, as kill -9 would.
func (n *testNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return
	}
	n.down = true
	_ = n.c.Shutdown()
	n.engine.Stop()
}

func (n *testNode) subscribe(t *testing.T, room string) {
	_, cancel, err := n.engine.Subscribe(room, func(ev *session.Event) {
		n.mu.Lock()
		n.events = append(n.events, ev)
		n.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
}

func (n *testNode) count(typ session.EventType, reason session.Reason) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, ev := range n.events {
		if ev.Type == typ && (reason == "" || ev.Reason == reason) {
			k++
		}
	}
	return k
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Errorf("%s: not true within %v", what, within)
			t.FailNow()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func threeNodes(t *testing.T, grace time.Duration) (a, b, c *testNode) {
	a = startNode(t, "n1", 1, grace)
	b = startNode(t, "n2", 1, grace, a.c.Addr())
	c = startNode(t, "n3", 1, grace, a.c.Addr())
	eventually(t, 5*time.Second, "3 members everywhere", func() bool {
		return a.c.NumMembers() == 3 && b.c.NumMembers() == 3 && c.c.NumMembers() == 3
	})
	return a, b, c
}

func TestAnyNodeSeesSessionsOwnedAnywhere(t *testing.T) {
	a, b, c := threeNodes(t, 10*time.Second)
	b.subscribe(t, "lobby")
	c.subscribe(t, "lobby")
	op, err := a.engine.Open(session.OpenRequest{User: "alice", Location: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.engine.Enter(op.Session, "lobby", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, time.Second, "enter seen on n2 and n3", func() bool {
		return b.count(session.EventEnter, "") == 1 && c.count(session.EventEnter, "") == 1
	})
	t.Logf("enter on n1 seen by subscribers on n2 and n3 after %v", took)
	for _, n := range []*testNode{a, b, c} {
		cnt := n.engine.RoomCounts("lobby")
		if cnt.Online.Users != 1 || cnt.Here.Connections != 1 {
			t.Fatalf("%s counts %+v", n.name, cnt)
		}
		if p := n.engine.UserPresence("alice"); p.State != session.Active || p.Sessions != 1 {
			t.Fatalf("%s presence %+v", n.name, p)
		}
	}
}

func TestKilledNodeSessionsGoStaleThenLeave(t *testing.T) {
	const sessions = 1000
	a, b, c := threeNodes(t, time.Second)
	a.subscribe(t, "r")
	b.subscribe(t, "r")
	for i := 0; i < sessions; i++ {
		op, err := c.engine.Open(session.OpenRequest{User: fmt.Sprintf("u%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.engine.Enter(op.Session, "r", nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "all sessions replicated", func() bool {
		return a.engine.RoomCounts("r").Online.Connections == sessions && b.engine.RoomCounts("r").Online.Connections == sessions
	})
	killed := time.Now()
	c.kill()
	took := eventually(t, 3*time.Second, "stale on every survivor", func() bool {
		return a.engine.UserPresence("u0").State == session.Stale && b.engine.UserPresence("u0").State == session.Stale
	})
	t.Logf("kill → stale everywhere: %v", took)
	eventually(t, 5*time.Second, "leave(node_failure) everywhere", func() bool {
		return a.count(session.EventLeave, session.ReasonNodeFailure) == sessions && b.count(session.EventLeave, session.ReasonNodeFailure) == sessions
	})
	t.Logf("kill → gone everywhere: %v", time.Since(killed))
	for _, n := range []*testNode{a, b} {
		if cnt := n.engine.RoomCounts("r"); cnt.Online.Connections != 0 {
			t.Fatalf("%s ghosts: %+v", n.name, cnt)
		}
	}
}

func TestLateJoinerCatchesUpBeforeReady(t *testing.T) {
	a := startNode(t, "n1", 1, 10*time.Second)
	const sessions = 3000
	for i := 0; i < sessions; i++ {
		op, _ := a.engine.Open(session.OpenRequest{User: fmt.Sprintf("u%d", i%1000)})
		_ = a.engine.Enter(op.Session, "big", []byte(`{"k":"v"}`))
	}
	b := startNode(t, "n2", 1, 10*time.Second, a.c.Addr())
	eventually(t, 10*time.Second, "joiner ready", b.c.Ready)
	if n := b.engine.RoomCounts("big").Online.Connections; n != sessions {
		t.Fatalf("ready with %d of %d sessions", n, sessions)
	}
}

func TestRestartedNodeRetiresPreviousIncarnation(t *testing.T) {
	a := startNode(t, "n1", 1, 30*time.Second)
	b := startNode(t, "n2", 1, 30*time.Second, a.c.Addr())
	a.subscribe(t, "r")
	op, _ := b.engine.Open(session.OpenRequest{User: "old"})
	_ = b.engine.Enter(op.Session, "r", nil)
	eventually(t, 2*time.Second, "replicated", func() bool { return a.engine.RoomCounts("r").Online.Connections == 1 })
	b.kill()
	b2 := startNode(t, "n2", 2, 30*time.Second, a.c.Addr())
	_ = b2
	eventually(t, 3*time.Second, "old incarnation retired at once (not after 30s grace)", func() bool {
		return a.engine.RoomCounts("r").Online.Connections == 0
	})
}

// A client of a killed node that resumes on another node inside grace is
// never seen to leave or enter, on any node, and stays after grace.
func TestClientResumesOnAnotherNodeAfterKill(t *testing.T) {
	a, b, c := threeNodes(t, 2*time.Second)
	a.subscribe(t, "r")
	b.subscribe(t, "r")
	op, err := c.engine.Open(session.OpenRequest{User: "mover"})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.engine.Enter(op.Session, "r", []byte(`{"k":1}`))
	eventually(t, 2*time.Second, "replicated", func() bool {
		return a.engine.RoomCounts("r").Online.Users == 1 && b.engine.RoomCounts("r").Online.Users == 1
	})
	c.kill()
	eventually(t, 3*time.Second, "stale on a", func() bool { return a.engine.UserPresence("mover").State == session.Stale })
	if _, err := b.engine.Resume(op.ResumeToken, "mover"); err != nil {
		t.Fatalf("resume on b: %v", err)
	}
	eventually(t, time.Second, "active again on a", func() bool { return a.engine.UserPresence("mover").State == session.Active })
	// Watch past the 2 s grace: the session must stay on every node.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []*testNode{a, b} {
			if n.engine.RoomCounts("r").Online.Users != 1 {
				t.Fatalf("%s lost the resumed session", n.name)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range []*testNode{a, b} {
		if k := n.count(session.EventLeave, "") + n.count(session.EventEnter, ""); k != 1 { // the one enter before the kill
			t.Fatalf("%s saw %d enter/leave events, want only the first enter", n.name, k)
		}
		if ms, _ := n.engine.RoomMembers("r"); len(ms) != 1 || string(ms[0].Data) != `{"k":1}` {
			t.Fatalf("%s members %+v", n.name, ms)
		}
	}
}

// Removals are kept as tombstones until every live member holds them, then
// collected on every node.
func TestTombstonesCollectedOnceEveryMemberHasThem(t *testing.T) {
	a, b, c := threeNodes(t, 10*time.Second)
	for i := 0; i < 50; i++ {
		op, _ := a.engine.Open(session.OpenRequest{User: fmt.Sprintf("t%d", i)})
		_ = a.engine.Enter(op.Session, "r", nil)
		_ = a.engine.Close(op.Session, session.ReasonClosed, nil)
	}
	eventually(t, 5*time.Second, "replicated", func() bool {
		return b.engine.Stats().Tombstones > 0 && c.engine.Stats().Tombstones > 0
	})
	eventually(t, 10*time.Second, "tombstones collected everywhere", func() bool {
		return a.engine.Stats().Tombstones == 0 && b.engine.Stats().Tombstones == 0 && c.engine.Stats().Tombstones == 0
	})
	for _, n := range []*testNode{a, b, c} {
		if cnt := n.engine.RoomCounts("r"); cnt.Online.Connections != 0 {
			t.Fatalf("%s: %+v", n.name, cnt)
		}
	}
}

func startWith(t *testing.T, name string, cfg cluster.Config) (*cluster.Cluster, error) {
	t.Helper()
	e := session.New(session.Config{Node: name, Incarnation: 1})
	t.Cleanup(e.Stop)
	cfg.Replica, cfg.GossipAddr, cfg.Profile, cfg.Logger = e, "127.0.0.1:0", cluster.ProfileLocal, zaptest.NewLogger(t).Named(name)
	c, err := cluster.New(cfg)
	if err == nil {
		t.Cleanup(func() { _ = c.Shutdown() })
	}
	return c, err
}

// A node with another cluster label, or without the gossip key, cannot join.
func TestLabelAndKeyRefuseStrangers(t *testing.T) {
	key := "8o1+eKL8bJ7eP0Ut9VH0Ck3H7xWqvqYzXy1JmGH2S0Y="
	other := "Cl3Q1dJ4T3C6yAGs5JpQ9V1xN7S1H3hZp0a0n7i5nU4="
	a, err := startWith(t, "a", cluster.Config{Label: "prod", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	good, err := startWith(t, "good", cluster.Config{Label: "prod", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("same label and key: %v", err)
	}
	wrongLabel, _ := startWith(t, "wronglabel", cluster.Config{Label: "staging", Key: key})
	if err := wrongLabel.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a node with another label joined")
	}
	wrongKey, _ := startWith(t, "wrongkey", cluster.Config{Label: "prod", Key: other})
	if err := wrongKey.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a node with another key joined")
	}
	// Rotation, step 1: a node that still encrypts with the old key but also
	// accepts the new one joins nodes that know only the old key.
	rotating, _ := startWith(t, "rotating", cluster.Config{Label: "prod", Key: key + "," + other})
	if err := rotating.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("node mid-rotation could not join: %v", err)
	}
	if _, err := startWith(t, "badkey", cluster.Config{Key: "not base64!"}); err == nil {
		t.Fatal("a malformed key was accepted")
	}
	eventually(t, 3*time.Second, "a sees good and rotating, not the strangers", func() bool { return a.NumMembers() == 3 })
}

// A dropped hold connection marks the peer's sessions stale at once; if
// gossip still sees the peer alive, the hint is withdrawn and nobody left.
func TestEOFHintIsWithdrawnWhenThePeerIsAlive(t *testing.T) {
	done := make(chan struct{})
	var holding atomic.Int32
	hold := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holding.Add(1)
		defer holding.Add(-1)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); hold.Close() }) // after the nodes stop (cleanups run last-in first-out)
	a := startNode(t, "h1", 1, 30*time.Second)
	// b advertises the hold server as its HTTP address.
	b := &testNode{name: "h2"}
	var cl atomic.Pointer[cluster.Cluster]
	b.engine = session.New(session.Config{Node: "h2", Incarnation: 1, Grace: 30 * time.Second, OnLocalWrite: func(crdt.Entry) {
		if c := cl.Load(); c != nil {
			c.Notify()
		}
	}})
	c, err := cluster.New(cluster.Config{Replica: b.engine, GossipAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal,
		HTTPAddr: strings.TrimPrefix(hold.URL, "http://"), Logger: zaptest.NewLogger(t).Named("h2")})
	if err != nil {
		t.Fatal(err)
	}
	cl.Store(c)
	b.c = c
	t.Cleanup(b.kill)
	if err := c.Join([]string{a.c.Addr()}); err != nil {
		t.Fatal(err)
	}
	a.subscribe(t, "r")
	op, _ := b.engine.Open(session.OpenRequest{User: "held"})
	_ = b.engine.Enter(op.Session, "r", nil)
	eventually(t, 2*time.Second, "replicated", func() bool { return a.engine.UserPresence("held").State == session.Active })
	eventually(t, 2*time.Second, "a holds a connection to b", func() bool { return holding.Load() > 0 })
	hold.CloseClientConnections()
	eventually(t, 3*time.Second, "stale at once on the hint", func() bool { return a.engine.UserPresence("held").State == session.Stale })
	eventually(t, 10*time.Second, "hint withdrawn: b is alive", func() bool { return a.engine.UserPresence("held").State == session.Active })
	if n := a.count(session.EventLeave, ""); n != 0 {
		t.Fatalf("%d leaves for a peer that never died", n)
	}
}
