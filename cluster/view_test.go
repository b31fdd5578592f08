package cluster_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/session"
)

// Nodes lists this node and its peers alive, then a killed peer dead; the
// engine counts each node's sessions (stale once their owner is dead).
func TestNodesView(t *testing.T) {
	a := startNode(t, "v1", 1, 10*time.Second)
	b := startNode(t, "v2", 1, 10*time.Second, a.c.Addr())
	states := func(n *testNode) map[string]string {
		out := map[string]string{}
		for _, v := range n.c.Nodes() {
			out[v.Name] = v.State
		}
		return out
	}
	eventually(t, 5*time.Second, "both alive on both", func() bool {
		sa, sb := states(a), states(b)
		return sa["v1"] == cluster.NodeAlive && sa["v2"] == cluster.NodeAlive && sb["v1"] == cluster.NodeAlive && sb["v2"] == cluster.NodeAlive
	})
	for _, v := range a.c.Nodes() {
		if v.Self != (v.Name == "v1") || v.Gossip == "" || v.Incarnation != 1 {
			t.Fatalf("a's view of %s: %+v", v.Name, v)
		}
	}
	for i := 0; i < 3; i++ {
		if _, err := b.engine.Open(session.OpenRequest{User: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "b's sessions counted under v2 on a", func() bool {
		return a.engine.SessionsByNode()["v2"][session.Active] == 3
	})
	b.kill()
	eventually(t, 5*time.Second, "v2 dead on a, its sessions stale", func() bool {
		st := states(a)["v2"]
		return (st == cluster.NodeDead || st == cluster.NodeSuspect) && a.engine.SessionsByNode()["v2"][session.Stale] == 3
	})
	eventually(t, 5*time.Second, "v2 dead on a", func() bool { return states(a)["v2"] == cluster.NodeDead })
	for _, v := range a.c.Nodes() {
		if v.Name == "v2" && v.Since.IsZero() {
			t.Fatalf("dead node without a time: %+v", v)
		}
	}
}
