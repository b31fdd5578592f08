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

// A session resumed on b and then ended there; the old owner a, cut off
// meanwhile, notices its client's dropped connection only afterwards and
// writes the session's record (stale) with a newer clock but an older owner
// epoch. b, which ended it, removes it again: every node shows it gone at
// once, not for the old owner's grace. Found by presence-chaos (a thawed
// node brought an ended session back as stale on some nodes).
func TestOldOwnerWriteAfterEndElsewhereDoesNotResurrect(t *testing.T) {
	clock, a, b, c, op := threeWithSession(t)
	// a freezes; the client resumes on b, then closes its session there.
	clock.Advance(2 * time.Second)
	if _, err := b.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(op.Session, ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	ship(t, b, c)
	// a thaws and notices the dropped connection.
	clock.Advance(time.Second)
	a.Disconnect(op.Session, op.Attach)
	ship(t, a, b)
	ship(t, a, c)
	ship(t, b, a)
	ship(t, b, c)
	for _, e := range []*Engine{a, b, c} {
		if p := e.UserPresence("zoe"); p.State != Offline {
			t.Errorf("node %s: zoe %s, want offline", e.Origin().Node, p.State)
		}
		if ms, _ := e.RoomMembers("r"); len(ms) != 0 {
			t.Errorf("node %s: members %+v", e.Origin().Node, ms)
		}
		checkInvariants(t, e)
	}
	if a.Heartbeat(op.Session) == nil {
		t.Error("a still owns the session")
	}
}

// The old owner a, cut off while its client resumed on b, ends the session
// at the end of its own grace (a removal with a newer clock, older epoch).
// b, which owns the live session, writes it again: it stays listed on every
// node, and b's subscribers never see it leave.
func TestOldOwnerEndAfterResumeElsewhereIsOverruled(t *testing.T) {
	clock, a, b, c, op := threeWithSession(t)
	if _, err := b.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	ship(t, b, c)
	var leaves int
	_, cancel, _ := b.Subscribe("r", func(ev *Event) {
		if ev.Type == EventLeave {
			leaves++
		}
	})
	defer cancel()
	a.Disconnect(op.Session, op.Attach)
	clock.Advance(11 * time.Second) // a's grace ends: it removes the session
	ship(t, a, b)
	ship(t, a, c)
	ship(t, b, a)
	ship(t, b, c)
	for _, e := range []*Engine{a, b, c} {
		if ms, _ := e.RoomMembers("r"); len(ms) != 1 || ms[0].State != Active {
			t.Errorf("node %s: members %+v", e.Origin().Node, ms)
		}
		checkInvariants(t, e)
	}
	if leaves != 0 {
		t.Errorf("b's subscriber saw %d leaves", leaves)
	}
}

// threeWithSession starts engines a, b and c on one fake clock, with zoe's
// session opened on a, in room r, and replicated to b and c.
func threeWithSession(t *testing.T) (*FakeClock, *Engine, *Engine, *Engine, Opened) {
	t.Helper()
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	cfg := func(n string) Config { return Config{Node: n, Incarnation: 1, Clock: clock, Grace: 10 * time.Second} }
	a, b, c := New(cfg("a")), New(cfg("b")), New(cfg("c"))
	t.Cleanup(a.Stop)
	t.Cleanup(b.Stop)
	t.Cleanup(c.Stop)
	op, err := a.Open(OpenRequest{User: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enter(op.Session, "r", nil); err != nil {
		t.Fatal(err)
	}
	ship(t, a, b)
	ship(t, a, c)
	return clock, a, b, c, op
}

// The client resumes on b, then (before a heard of it) back on a, its first
// owner: a's resume starts a newer epoch than b's takeover, so b drops the
// session when it hears of it, and b's grace never ends a session that is
// connected to a.
func TestResumeBackOnTheOldOwnerKeepsTheSession(t *testing.T) {
	clock, a, b, c, op := threeWithSession(t)
	a.Disconnect(op.Session, op.Attach)
	clock.Advance(time.Second)
	if _, err := b.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	b.Disconnect(op.Session, 0)
	clock.Advance(time.Second)
	if _, err := a.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, from := range []*Engine{a, b} {
			for _, to := range []*Engine{a, b, c} {
				if from != to {
					ship(t, from, to)
				}
			}
		}
	}
	clock.Advance(30 * time.Second) // every grace is over
	ship(t, a, b)
	ship(t, a, c)
	ship(t, b, a)
	ship(t, b, c)
	for _, e := range []*Engine{a, b, c} {
		if ms, _ := e.RoomMembers("r"); len(ms) != 1 || ms[0].State != Active {
			t.Errorf("node %s: members %+v", e.Origin().Node, ms)
		}
		checkInvariants(t, e)
	}
	if a.Heartbeat(op.Session) != nil {
		t.Error("a does not own the session its client is connected to")
	}
}

// The old owner a, cut off while the session was resumed on b and ended
// there, acts on a message it read late: it enters another room. b, which
// ended the session, removes that membership, so no node keeps it (as a
// pending membership of a session that will never have a record again).
func TestOldOwnerEnterAfterEndElsewhereIsRemoved(t *testing.T) {
	clock, a, b, c, op := threeWithSession(t)
	clock.Advance(time.Second)
	if _, err := b.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(op.Session, ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	ship(t, b, c)
	clock.Advance(time.Second)
	if err := a.Enter(op.Session, "r2", nil); err != nil {
		t.Fatal(err)
	}
	ship(t, a, b)
	ship(t, a, c)
	ship(t, b, a)
	ship(t, b, c)
	for _, e := range []*Engine{a, b, c} {
		e.mu.Lock()
		_, held := e.sessions[op.Session]
		ent, live := e.data.Get(memberKey(op.Session, "r2"))
		e.mu.Unlock()
		if held || live {
			t.Errorf("node %s still holds the session (%v) or its r2 membership (%+v)", e.Origin().Node, held, ent)
		}
	}
}
