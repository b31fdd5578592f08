package cluster_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/crdt"
	"github.com/presenced/presenced/session"
)

type raftNode struct {
	name string
	meta *cluster.Meta
	c    *cluster.Cluster
	e    *session.Engine
	down atomic.Bool
}

func startRaftNode(t *testing.T, name string, bootstrap bool, join ...string) *raftNode {
	t.Helper()
	meta, err := cluster.OpenMeta(cluster.MetaConfig{DataDir: t.TempDir(), NodeID: name, RaftAddr: "127.0.0.1:0",
		Bootstrap: bootstrap, Timing: cluster.TimingLocal, Logger: zaptest.NewLogger(t).Named(name)})
	if err != nil {
		t.Fatal(err)
	}
	var cl atomic.Pointer[cluster.Cluster]
	e := session.New(session.Config{Node: name, Incarnation: 1, OnLocalWrite: func(crdt.Entry) {
		if c := cl.Load(); c != nil {
			c.Notify()
		}
	}})
	c, err := cluster.New(cluster.Config{Replica: e, Meta: meta, GossipAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal,
		Join: join, Logger: zaptest.NewLogger(t).Named(name)})
	if err != nil {
		t.Fatal(err)
	}
	cl.Store(c)
	if err := c.Join(join); err != nil {
		t.Fatal(err)
	}
	n := &raftNode{name: name, meta: meta, c: c, e: e}
	t.Cleanup(n.stop)
	return n
}

func (n *raftNode) stop() {
	if n.down.Swap(true) {
		return
	}
	_ = n.c.Shutdown()
	_ = n.meta.Close()
	n.e.Stop()
}

func voters(n *raftNode) int {
	servers, err := n.meta.Servers()
	if err != nil {
		return 0
	}
	v := 0
	for _, s := range servers {
		if s.Voter {
			v++
		}
	}
	return v
}

// Room metadata written on any node is visible on every node, and killing
// the leader loses no acknowledged write.
func TestRaftGroupFormsWritesForwardAndSurviveLeaderLoss(t *testing.T) {
	a := startRaftNode(t, "r1", true)
	b := startRaftNode(t, "r2", false, a.c.Addr())
	c := startRaftNode(t, "r3", false, a.c.Addr())
	nodes := []*raftNode{a, b, c}
	eventually(t, 15*time.Second, "3 voters", func() bool { return voters(a) == 3 })
	eventually(t, 5*time.Second, "all ready", func() bool { return a.meta.Ready() && b.meta.Ready() && c.meta.Ready() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	follower := b
	if b.meta.IsLeader() {
		follower = c
	}
	// A leadership change right after the group forms (a loaded machine)
	// makes the outcome unknown: the client retries with the same request
	// id, as the error says, until it is known.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = follower.meta.Put(ctx, cluster.RoomMeta{Room: "written-on-follower", MaxMembers: 7}, "req-1"); err == nil {
			break
		}
		t.Logf("put on follower, attempt %d: %v", attempt+1, err)
	}
	if err != nil {
		t.Fatalf("put on follower: %v", err)
	}
	for _, n := range nodes {
		eventually(t, 5*time.Second, n.name+" sees the write", func() bool {
			m, ok := n.meta.Get("written-on-follower")
			return ok && m.MaxMembers == 7
		})
	}
	// A consistent read on a follower goes through the leader's log: it sees
	// the write at once, and reports a room that has none as not found.
	if m, err := follower.meta.GetConsistent(ctx, "written-on-follower"); err != nil || m.MaxMembers != 7 {
		t.Fatalf("consistent read on follower: %+v %v", m, err)
	}
	if _, err := follower.meta.GetConsistent(ctx, "never-written"); !errors.Is(err, cluster.ErrNotFound) {
		t.Fatalf("consistent read of a missing room: %v", err)
	}
	// Kill the leader; the survivors elect another and keep the write.
	var leader *raftNode
	for _, n := range nodes {
		if n.meta.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	leader.stop()
	var survivors []*raftNode
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	eventually(t, 10*time.Second, "new leader", func() bool {
		for _, n := range survivors {
			if n.meta.IsLeader() {
				return true
			}
		}
		return false
	})
	for _, n := range survivors {
		if m, ok := n.meta.Get("written-on-follower"); !ok || m.MaxMembers != 7 {
			t.Fatalf("%s lost an acknowledged write", n.name)
		}
	}
	// Writes still work from either survivor (retries of an unknown outcome are safe).
	for _, n := range survivors {
		var err error
		for i := 0; i < 20; i++ {
			if _, err = n.meta.Put(ctx, cluster.RoomMeta{Room: "after-" + n.name}, "req-after-"+n.name); err == nil ||
				!(errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrUnknownOutcome)) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("write on %s after leader loss: %v", n.name, err)
		}
	}
}
