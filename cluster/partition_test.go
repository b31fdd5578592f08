package cluster_test

import (
	"sort"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/session"
)

// startFaultNode starts a node on mn, the in-memory network (memnet_test.go)
// whose links the test cuts, slows and makes lossy.
func startFaultNode(t *testing.T, mn *memNet, name string, grace time.Duration, join ...string) *testNode {
	t.Helper()
	tr := mn.newTransport()
	return buildNode(t, cluster.Config{Transport: tr, GossipAddr: tr.Addr(), Join: join, Logger: zaptest.NewLogger(t).Named(name)}, name, 1, grace)
}

// members lists a node's view of room r as "user=state " sorted by user.
func members(n *testNode) string {
	ms, _ := n.engine.RoomMembers("r")
	sort.Slice(ms, func(i, j int) bool { return ms[i].User < ms[j].User })
	out := ""
	for _, m := range ms {
		out += m.User + "=" + string(m.State) + " "
	}
	return out
}

// Partition {1,2} | {3}: each side sees the other side's sessions stale,
// then gone after grace; after the heal every node has the same view again.
func TestPartitionHealsToIdenticalViews(t *testing.T) {
	mn := newMemNet(1)
	n1 := startFaultNode(t, mn, "n1", 3*time.Second)
	n2 := startFaultNode(t, mn, "n2", 3*time.Second, n1.c.Addr())
	n3 := startFaultNode(t, mn, "n3", 3*time.Second, n1.c.Addr())
	nodes := []*testNode{n1, n2, n3}
	for i, n := range nodes {
		op, _ := n.engine.Open(session.OpenRequest{User: "u" + strconv.Itoa(i+1)})
		_ = n.engine.Enter(op.Session, "r", nil)
	}
	all := "u1=active u2=active u3=active "
	took := eventually(t, 10*time.Second, "replicated", func() bool {
		return members(n1) == all && members(n2) == all && members(n3) == all
	})
	t.Logf("replicated after %v", took)

	mn.partition([]string{n1.c.Addr(), n2.c.Addr()}, []string{n3.c.Addr()})
	eventually(t, 5*time.Second, "each side sees the other side stale", func() bool {
		return members(n1) == "u1=active u2=active u3=stale " && members(n3) == "u1=stale u2=stale u3=active "
	})
	eventually(t, 8*time.Second, "then gone after grace", func() bool {
		return members(n1) == "u1=active u2=active " && members(n2) == "u1=active u2=active " && members(n3) == "u3=active "
	})

	mn.heal()
	healed := time.Now()
	took = eventually(t, 10*time.Second, "identical views after heal", func() bool {
		return members(n1) == all && members(n2) == all && members(n3) == all
	})
	t.Logf("views identical %v after the heal", took)
	_ = healed
	for _, n := range nodes {
		checkCounts(t, n)
	}
}

func checkCounts(t *testing.T, n *testNode) {
	t.Helper()
	if c := n.engine.RoomCounts("r"); c.Online.Connections != 3 || c.Online.Users != 3 {
		t.Fatalf("%s counts %+v", n.name, c)
	}
}

// With 20 ms of delay and 20% of packets lost, every change still reaches
// every node (gaps and heads trigger pulls over streams) and the views
// converge.
func TestReplicationConvergesOnALossyNetwork(t *testing.T) {
	mn := newMemNet(1)
	n1 := startFaultNode(t, mn, "l1", 10*time.Second)
	n2 := startFaultNode(t, mn, "l2", 10*time.Second, n1.c.Addr())
	eventually(t, 5*time.Second, "joined", func() bool { return n1.c.NumMembers() == 2 && n2.c.NumMembers() == 2 })
	mn.impair(0.2, 20*time.Millisecond)
	var sids []string
	for i := 0; i < 200; i++ {
		op, err := n1.engine.Open(session.OpenRequest{User: "u" + strconv.Itoa(i%50)})
		if err != nil {
			t.Fatal(err)
		}
		_ = n1.engine.Enter(op.Session, "r", []byte(`{"i":`+strconv.Itoa(i)+`}`))
		sids = append(sids, op.Session)
	}
	for _, sid := range sids[:100] {
		_ = n1.engine.Close(sid, session.ReasonClosed, nil)
	}
	took := eventually(t, 10*time.Second, "converged", func() bool {
		a, b := n1.engine.RoomCounts("r"), n2.engine.RoomCounts("r")
		return a.Online == b.Online && b.Online.Connections == 100 && sameUsers(n1, n2)
	})
	t.Logf("converged %v after the last change (20 ms delay, 20%% loss)", took)
}

// sameUsers compares two nodes' derived presence of every test user.
func sameUsers(a, b *testNode) bool {
	for i := 0; i < 50; i++ {
		u := "u" + strconv.Itoa(i)
		pa, pb := a.engine.UserPresence(u), b.engine.UserPresence(u)
		if pa.State != pb.State || pa.Sessions != pb.Sessions {
			return false
		}
	}
	return true
}

// A partition longer than grace, during which an owner removes a session
// and its peers on the same side collect the tombstone (the cut-off node's
// origin was dropped at the end of grace, so it no longer holds collection
// back): after the heal, the node that was cut off must not keep the removed
// session (a ghost). It re-reads the owner's origin and prunes what the owner
// no longer holds.
func TestLongPartitionLeavesNoGhost(t *testing.T) {
	mn := newMemNet(2)
	const grace = 3 * time.Second
	n1 := startFaultNode(t, mn, "g1", grace)
	n2 := startFaultNode(t, mn, "g2", grace, n1.c.Addr())
	n3 := startFaultNode(t, mn, "g3", grace, n1.c.Addr())
	nodes := []*testNode{n1, n2, n3}
	var sids []string
	for i, n := range nodes {
		op, _ := n.engine.Open(session.OpenRequest{User: "u" + strconv.Itoa(i+1)})
		_ = n.engine.Enter(op.Session, "r", nil)
		sids = append(sids, op.Session)
	}
	all := "u1=active u2=active u3=active "
	eventually(t, 10*time.Second, "replicated", func() bool {
		return members(n1) == all && members(n2) == all && members(n3) == all
	})
	mn.partition([]string{n1.c.Addr(), n2.c.Addr()}, []string{n3.c.Addr()})
	eventually(t, 10*time.Second, "n1 and n2 drop n3's sessions after grace", func() bool {
		return members(n1) == "u1=active u2=active " && members(n2) == "u1=active u2=active "
	})
	if err := n1.engine.Close(sids[0], session.ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "n1 and n2 collected u1's tombstone", func() bool {
		return members(n2) == "u2=active " && n1.engine.Stats().Tombstones == 0 && n2.engine.Stats().Tombstones == 0
	})
	mn.heal()
	want := "u2=active u3=active "
	took := eventually(t, 10*time.Second, "identical views without u1 after the heal", func() bool {
		return members(n1) == want && members(n2) == want && members(n3) == want
	})
	t.Logf("views identical %v after the heal", took)
}

// While a member is declared dead but inside grace, tombstones it has not
// seen are kept: it may come back (a thawed process, a healed partition)
// with older writes of those keys, and only the tombstones make them lose.
// After it is back and holds them, they are collected everywhere.
func TestTombstonesHeldForAMemberDeclaredDead(t *testing.T) {
	mn := newMemNet(3)
	const grace = 20 * time.Second
	n1 := startFaultNode(t, mn, "h1", grace)
	n2 := startFaultNode(t, mn, "h2", grace, n1.c.Addr())
	n3 := startFaultNode(t, mn, "h3", grace, n1.c.Addr())
	op, _ := n1.engine.Open(session.OpenRequest{User: "u1"})
	_ = n1.engine.Enter(op.Session, "r", nil)
	op3, _ := n3.engine.Open(session.OpenRequest{User: "u3"})
	_ = n3.engine.Enter(op3.Session, "r", nil)
	all := "u1=active u3=active "
	eventually(t, 10*time.Second, "replicated", func() bool { return members(n2) == all && members(n3) == all })
	mn.partition([]string{n1.c.Addr(), n2.c.Addr()}, []string{n3.c.Addr()})
	eventually(t, 10*time.Second, "n3 declared dead", func() bool {
		return members(n1) == "u1=active u3=stale " && members(n2) == "u1=active u3=stale "
	})
	if err := n1.engine.Close(op.Session, session.ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "n2 has the removal", func() bool { return members(n2) == "u3=stale " })
	// Several collection rounds (1 s each in the local profile) pass.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if n1.engine.Stats().Tombstones == 0 || n2.engine.Stats().Tombstones == 0 {
			t.Fatal("a tombstone n3 has not seen was collected while n3 is inside grace")
		}
		time.Sleep(100 * time.Millisecond) // polling a condition that must keep holding
	}
	mn.heal()
	eventually(t, 15*time.Second, "n3 has the removal, then tombstones collected everywhere", func() bool {
		return members(n1) == "u3=active " && members(n3) == "u3=active " && n1.engine.Stats().Tombstones == 0 &&
			n2.engine.Stats().Tombstones == 0 && n3.engine.Stats().Tombstones == 0
	})
}

// A node that took a session over died before one peer heard of it, and was
// retired: the old owner and everyone that saw the takeover hold nothing of
// the session any more, but that peer still holds the old owner's entries,
// and the old owner, alive, will never write them again. The census (each
// owner's count of its live entries) shows the peer holds more than the
// owner; it re-reads the owner's origin and drops them.
func TestCensusRemovesEntriesTheOwnerLostToARetiredTakeover(t *testing.T) {
	mn := newMemNet(4)
	n1 := startFaultNode(t, mn, "c1", time.Minute)
	n2 := startFaultNode(t, mn, "c2", time.Minute, n1.c.Addr())
	op, _ := n1.engine.Open(session.OpenRequest{User: "u1"})
	_ = n1.engine.Enter(op.Session, "r", nil)
	eventually(t, 10*time.Second, "replicated", func() bool { return members(n2) == "u1=active " })
	// A node outside this test's view takes the session over; only n1 hears
	// of it before the node is replaced by a restart.
	gone := session.New(session.Config{Node: "c9", Incarnation: 1})
	defer gone.Stop()
	if _, err := gone.Merge(n1.engine.DeltaSince(n1.engine.Origin(), 0, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Resume(op.ResumeToken, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.engine.Merge(gone.DeltaSince(gone.Origin(), 0, 0)); err != nil {
		t.Fatal(err)
	}
	n1.engine.OriginRetired(gone.Origin())
	if members(n1) != "" || members(n2) != "u1=active " {
		t.Fatalf("set-up: n1 %q, n2 %q", members(n1), members(n2))
	}
	took := eventually(t, 10*time.Second, "n2 drops what n1 no longer holds", func() bool { return members(n2) == "" })
	t.Logf("repaired %v after the divergence", took)
}
