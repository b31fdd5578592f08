package session

import (
	"errors"
	"testing"
	"time"
)

type pair struct {
	clock *FakeClock
	a, b  *Engine
	evs   []*Event
}

// newPair: node a owns two sessions of two users in room r; node b has
// replicated them and subscribes to r.
func newPair(t *testing.T) (*pair, Opened, Opened) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	p := &pair{clock: clock,
		a: New(Config{Node: "a", Incarnation: 1, Clock: clock, Grace: 10 * time.Second}),
		b: New(Config{Node: "b", Incarnation: 1, Clock: clock, Grace: 10 * time.Second})}
	t.Cleanup(p.a.Stop)
	t.Cleanup(p.b.Stop)
	o1, _ := p.a.Open(OpenRequest{User: "u1"})
	o2, _ := p.a.Open(OpenRequest{User: "u2"})
	_ = p.a.Enter(o1.Session, "r", nil)
	_ = p.a.Enter(o2.Session, "r", nil)
	ship(t, p.a, p.b)
	_, cancel, _ := p.b.Subscribe("r", func(ev *Event) { p.evs = append(p.evs, ev) })
	t.Cleanup(cancel)
	return p, o1, o2
}

func (p *pair) count(typ EventType, reason Reason) int {
	n := 0
	for _, ev := range p.evs {
		if ev.Type == typ && (reason == "" || ev.Reason == reason) {
			n++
		}
	}
	return n
}

func TestFailedOwnerSessionsGoStaleThenLeave(t *testing.T) {
	p, _, _ := newPair(t)
	p.b.OriginFailed(p.a.Origin())
	for _, u := range []string{"u1", "u2"} {
		if st := p.b.UserPresence(u).State; st != Stale {
			t.Fatalf("%s is %s right after its node failed", u, st)
		}
	}
	p.clock.Advance(9 * time.Second)
	if n := p.count(EventLeave, ""); n != 0 {
		t.Fatalf("%d leaves inside grace", n)
	}
	p.clock.Advance(time.Second)
	if n := p.count(EventLeave, ReasonNodeFailure); n != 2 {
		t.Fatalf("leave(node_failure) events: %d, want 2", n)
	}
	if ms, _ := p.b.RoomMembers("r"); len(ms) != 0 {
		t.Fatalf("ghosts after grace: %+v", ms)
	}
	checkInvariants(t, p.b)
}

func TestResumeElsewhereInsideGraceShowsNoLeave(t *testing.T) {
	p, o1, _ := newPair(t)
	p.b.OriginFailed(p.a.Origin())
	p.clock.Advance(3 * time.Second)
	if _, err := p.b.Resume(o1.ResumeToken, "u1"); err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(20 * time.Second)
	if st := p.b.UserPresence("u1").State; st != Active {
		t.Fatalf("resumed u1 is %s", st)
	}
	if st := p.b.UserPresence("u2").State; st != Offline {
		t.Fatalf("u2 (not resumed) is %s", st)
	}
	for _, ev := range p.evs {
		if ev.User == "u1" && (ev.Type == EventLeave || ev.Type == EventEnter || ev.Type == EventOffline) {
			t.Fatalf("subscriber saw %s for u1, who resumed inside grace", ev.Type)
		}
	}
	checkInvariants(t, p.b)
}

func TestOwnerAliveAgainCancelsFailure(t *testing.T) {
	p, _, _ := newPair(t)
	p.b.OriginFailed(p.a.Origin())
	p.clock.Advance(5 * time.Second)
	p.b.OriginAlive(p.a.Origin())
	if st := p.b.UserPresence("u1").State; st != Active {
		t.Fatalf("u1 is %s after its node came back", st)
	}
	p.clock.Advance(time.Minute)
	if n := p.count(EventLeave, ""); n != 0 {
		t.Fatalf("%d leaves although the owner came back", n)
	}
}

func TestRetiredIncarnationIsDroppedAtOnce(t *testing.T) {
	p, _, _ := newPair(t)
	old := p.a.Origin()
	p.b.OriginRetired(old)
	if n := p.count(EventLeave, ReasonNodeFailure); n != 2 {
		t.Fatalf("leaves: %d", n)
	}
	if _, err := p.b.Merge(p.a.DeltaSince(old, 0, 0)); !errors.Is(err, ErrOriginRetired) {
		t.Fatalf("retired origin's delta: %v", err)
	}
	if ms, _ := p.b.RoomMembers("r"); len(ms) != 0 {
		t.Fatalf("retired sessions came back: %+v", ms)
	}
}
