package cluster_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/session"
)

// A node that joins while a dead node's sessions are inside grace sees them
// stale (never active), and they leave everywhere after grace and stay gone:
// no survivor pulls them back from another.
func TestJoinerInsideGraceSeesNoGhosts(t *testing.T) {
	a, _, c := threeNodes(t, 3*time.Second)
	op, err := c.engine.Open(session.OpenRequest{User: "u0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.engine.Enter(op.Session, "r", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "replicated", func() bool { return a.engine.RoomCounts("r").Online.Connections == 1 })
	c.kill()
	eventually(t, 3*time.Second, "stale on a", func() bool { return a.engine.UserPresence("u0").State == session.Stale })
	d := startNode(t, "n4", 1, 3*time.Second, a.c.Addr())
	eventually(t, 3*time.Second, "the joiner has it", func() bool { return d.engine.RoomCounts("r").Online.Connections == 1 })
	if st := d.engine.UserPresence("u0").State; st != session.Stale {
		t.Fatalf("the joiner shows a dead node's session as %s", st)
	}
	eventually(t, 8*time.Second, "gone everywhere", func() bool {
		return a.engine.RoomCounts("r").Online.Connections == 0 && d.engine.RoomCounts("r").Online.Connections == 0
	})
	// Watch a few anti-entropy rounds: nobody brings it back.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if a.engine.RoomCounts("r").Online.Connections != 0 || d.engine.RoomCounts("r").Online.Connections != 0 {
			t.Fatal("a dead node's session came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
