package session

import "testing"

// An event of a room nobody subscribes to is numbered and counted but not
// built: no member view, no copy on the heap, no encoding. Churn in rooms
// without watchers allocated ~1 KB per enter+leave pair for events nobody
// received.
func TestUnwatchedRoomEventsAreCountedNotBuilt(t *testing.T) {
	e := New(Config{Node: "n1", Incarnation: 1})
	defer e.Stop()
	op, err := e.Open(OpenRequest{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	// Another member keeps the room from being dropped after each leave.
	stay, err := e.Open(OpenRequest{User: "stays"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Enter(stay.Session, "r", nil); err != nil {
		t.Fatal(err)
	}
	pair := func() {
		if err := e.Enter(op.Session, "r", []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := e.Leave(op.Session, "r", ReasonExplicit, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := e.Stats().Events
	unwatched := testing.AllocsPerRun(200, pair)
	if got := e.Stats().Events - before; got < 201*2 {
		t.Fatalf("%d events counted for 201 pairs, want at least 402", got)
	}

	var got int
	_, cancel, err := e.Subscribe("r", func(*Event) { got++ })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	watched := testing.AllocsPerRun(200, pair)
	if got < 201*2 {
		t.Fatalf("the subscriber got %d events for 201 pairs", got)
	}
	// Watched, each of the two events adds at least a member view, the
	// event's copy and its encoding.
	t.Logf("enter+leave: %.0f allocations unwatched, %.0f watched", unwatched, watched)
	if unwatched > watched-6 {
		t.Fatalf("enter+leave in an unwatched room: %.0f allocations, watched: %.0f; want at least 6 fewer unwatched", unwatched, watched)
	}
}
