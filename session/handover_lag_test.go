package session

import (
	"testing"
	"time"
)

// A resume on a node whose replica has the session record but not yet the
// session's room membership (it lags the old owner): once the membership
// arrives, both nodes list the member, and they keep listing it after the
// old owner's grace. The old owner noticed the dropped connection after the
// resume (its stale write carries a newer clock than the takeover): the
// new owner re-asserts, so the old owner's grace timer never ends the
// session. Found by presence-chaos (a false offline while connected).
func TestResumeOnLaggingNodeKeepsMembership(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	a := New(Config{Node: "a", Incarnation: 1, Clock: clock, Grace: 10 * time.Second})
	b := New(Config{Node: "b", Incarnation: 1, Clock: clock, Grace: 10 * time.Second})
	defer a.Stop()
	defer b.Stop()
	op, err := a.Open(OpenRequest{User: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	d := a.DeltaSince(a.Origin(), 0, 1) // the session record only
	if _, err := b.Merge(d); err != nil {
		t.Fatal(err)
	}
	if err := a.Enter(op.Session, "r", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	a.Disconnect(op.Session, op.Attach)
	if _, err := b.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	ship(t, b, a)
	ship(t, a, b)
	ship(t, b, a)
	for _, e := range []*Engine{a, b} {
		ms, _ := e.RoomMembers("r")
		t.Logf("before grace: node %s members %d", e.Origin().Node, len(ms))
	}
	clock.Advance(30 * time.Second)
	ship(t, a, b)
	ship(t, b, a)
	for _, e := range []*Engine{a, b} {
		ms, _ := e.RoomMembers("r")
		t.Logf("after grace: node %s members %d", e.Origin().Node, len(ms))
		if len(ms) != 1 {
			t.Errorf("node %s: members %+v", e.Origin().Node, ms)
		}
	}
}
