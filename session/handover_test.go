package session

import (
	"testing"
	"time"
)

// ship copies everything origin `from` wrote that `to` has not seen yet.
func ship(t *testing.T, from, to *Engine) {
	t.Helper()
	d := from.DeltaSince(from.Origin(), to.Digest()[from.Origin()], 0)
	if _, err := to.Merge(d); err != nil {
		t.Fatal(err)
	}
}

// A session resumed on another node is owned there: the old owner drops its
// copy and its grace timer, so it never ends a session that is live elsewhere.
func TestResumeOnAnotherNodeTakesOwnership(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	a := New(Config{Node: "a", Incarnation: 1, Clock: clock, Grace: 10 * time.Second})
	b := New(Config{Node: "b", Incarnation: 1, Clock: clock, Grace: 10 * time.Second})
	defer a.Stop()
	defer b.Stop()
	op, err := a.Open(OpenRequest{User: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enter(op.Session, "r", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	a.Disconnect(op.Session, op.Attach)
	ship(t, a, b)
	var events []*Event
	_, cancel, _ := b.Subscribe("r", func(ev *Event) { events = append(events, ev) })
	defer cancel()

	clock.Advance(5 * time.Second)
	if _, err := b.Resume(op.ResumeToken, "zoe"); err != nil {
		t.Fatal(err)
	}
	ship(t, b, a)
	if info, _ := a.Session(op.Session); info.Owned {
		t.Fatal("old owner still owns the session after it was resumed elsewhere")
	}
	clock.Advance(30 * time.Second) // far past the old owner's 10s grace
	ship(t, a, b)
	for _, e := range []*Engine{a, b} {
		if p := e.UserPresence("zoe"); p.State != Active {
			t.Fatalf("node %s: zoe %s after resuming elsewhere", e.Origin().Node, p.State)
		}
		if ms, _ := e.RoomMembers("r"); len(ms) != 1 || string(ms[0].Data) != `{"n":1}` {
			t.Fatalf("node %s: members %+v", e.Origin().Node, ms)
		}
	}
	for _, ev := range events {
		if ev.Type == EventLeave || ev.Type == EventEnter {
			t.Fatalf("subscriber on b saw %s during the handover", ev.Type)
		}
	}
	if info, _ := b.Session(op.Session); !info.Owned {
		t.Fatal("new owner does not own the session")
	}

}

// A connection replaced by a resume cannot mark the resumed session stale.
func TestDisconnectOfReplacedAttachmentIsIgnored(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	e := New(Config{Node: "a", Incarnation: 1, Clock: clock})
	defer e.Stop()
	op, _ := e.Open(OpenRequest{User: "kim"})
	again, err := e.Resume(op.ResumeToken, "kim")
	if err != nil || again.Attach == op.Attach {
		t.Fatalf("resume: %+v %v", again, err)
	}
	e.Disconnect(op.Session, op.Attach) // the old socket finally noticed it is dead
	if p := e.UserPresence("kim"); p.State != Active {
		t.Fatalf("kim %s after the replaced connection dropped", p.State)
	}
	e.Disconnect(op.Session, again.Attach)
	if p := e.UserPresence("kim"); p.State != Stale {
		t.Fatalf("kim %s after the live connection dropped", p.State)
	}
}
