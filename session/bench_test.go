package session

import (
	"fmt"
	"testing"
	"time"
)

// benchRoom builds an engine with n sessions of n/2 users (two tabs each)
// in one room, half of them "here".
func benchRoom(b *testing.B, n int) (*Engine, []string) {
	b.Helper()
	e := New(Config{Node: "bench", Incarnation: 1, Clock: NewFakeClock(time.Unix(1_700_000_000, 0))})
	b.Cleanup(e.Stop)
	users := make([]string, 0, n/2)
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("user-%d", i/2)
		if i%2 == 0 {
			users = append(users, u)
		}
		loc := ""
		if i%2 == 0 {
			loc = "big"
		}
		op, err := e.Open(OpenRequest{User: u, Device: Device{Kind: "web"}, Location: loc})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Enter(op.Session, "big", []byte(`{"cursor":{"x":10,"y":20},"color":"#ff00ff"}`)); err != nil {
			b.Fatal(err)
		}
	}
	return e, users
}

// BenchmarkRoomMembers10k: derived listing of a 10k-member room (target ≤ 10 ms over HTTP).
func BenchmarkRoomMembers10k(b *testing.B) {
	e, _ := benchRoom(b, 10_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ms, _ := e.RoomMembers("big"); len(ms) != 10_000 {
			b.Fatal(len(ms))
		}
	}
}

// BenchmarkRoomUsers10k: users of a 10k-session room (5k users), each derived.
func BenchmarkRoomUsers10k(b *testing.B) {
	e, _ := benchRoom(b, 10_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if us, _ := e.RoomUsers("big"); len(us) != 5_000 {
			b.Fatal(len(us))
		}
	}
}

// BenchmarkRoomCounts10k: online and here counts, O(1) (target ≤ 10 µs in-process).
func BenchmarkRoomCounts10k(b *testing.B) {
	e, _ := benchRoom(b, 10_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if c := e.RoomCounts("big"); c.Online.Connections != 10_000 {
			b.Fatal(c)
		}
	}
}

// BenchmarkUsersPresence100: derived presence of a batch of 100 users (target ≤ 1 ms).
func BenchmarkUsersPresence100(b *testing.B) {
	e, users := benchRoom(b, 10_000)
	batch := users[:100]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := e.UsersPresence(batch); len(p) != 100 {
			b.Fatal(len(p))
		}
	}
}

// BenchmarkEnterLeave: one join plus one leave in a 10k-member room, with a subscriber.
func BenchmarkEnterLeave(b *testing.B) {
	e, _ := benchRoom(b, 10_000)
	_, cancel, _ := e.Subscribe("big", func(*Event) {})
	defer cancel()
	op, _ := e.Open(OpenRequest{User: "churn"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Enter(op.Session, "big", nil); err != nil {
			b.Fatal(err)
		}
		if err := e.Leave(op.Session, "big", ReasonExplicit, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFanOut1k: one update delivered to 1,000 subscribers (encoding once);
// reports deliveries per second.
func BenchmarkFanOut1k(b *testing.B) {
	e, _ := benchRoom(b, 100)
	n := 0
	for i := 0; i < 1000; i++ {
		_, cancel, _ := e.Subscribe("big", func(*Event) { n++ })
		defer cancel()
	}
	op, _ := e.Open(OpenRequest{User: "writer"})
	_ = e.Enter(op.Session, "big", nil)
	n = 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := e.Update(op.Session, "big", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "deliveries/s")
}

// BenchmarkAppendMembersJSON10k: the HTTP listing's path, from cached member encodings.
func BenchmarkAppendMembersJSON10k(b *testing.B) {
	e, _ := benchRoom(b, 10_000)
	var buf []byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, _ = e.AppendMembersJSON(buf[:0], "big")
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

// BenchmarkEncodeUpdateEvent: the one JSON encoding an update event gets,
// however many subscribers receive it.
func BenchmarkEncodeUpdateEvent(b *testing.B) {
	ev := Event{Type: EventUpdate, Room: "big", Version: 123456, Time: 1_700_000_000_000, Session: "s_0123456789", User: "user-42",
		Member: &Member{Session: "s_0123456789", User: "user-42", Device: Device{Kind: "web"}, State: Active, Here: true,
			Data: []byte(`{"cursor":{"x":10,"y":20},"color":"#ff00ff"}`), EnteredAt: 1_700_000_000_000, LastActive: 1_700_000_000_000}}
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		n = len(encodeEvent(&ev))
	}
	b.ReportMetric(float64(n), "bytes")
}

// BenchmarkOriginFailed20k: a node that held 19,500 sessions in 100 rooms
// fails; a survivor with a subscriber (that encodes each event, as the
// gateway does) in every room marks them all stale. This is the engine's part
// of "kill -9 → stale everywhere ≤ 1.5 s", and it holds the engine's lock.
func BenchmarkOriginFailed20k(b *testing.B) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	a := New(Config{Node: "a", Incarnation: 1, Clock: clock})
	b.Cleanup(a.Stop)
	for i := 0; i < 19_500; i++ {
		op, err := a.Open(OpenRequest{User: fmt.Sprintf("user-%d", i), Device: Device{Kind: "web"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Enter(op.Session, fmt.Sprintf("room-%d", i%100), []byte(`{"v":0}`)); err != nil {
			b.Fatal(err)
		}
	}
	d := a.DeltaSince(a.Origin(), 0, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := New(Config{Node: "s", Incarnation: 1, Clock: clock})
		if _, err := s.Merge(d); err != nil {
			b.Fatal(err)
		}
		events := 0
		for r := 0; r < 100; r++ {
			_, cancel, err := s.Subscribe(fmt.Sprintf("room-%d", r), func(ev *Event) { _ = ev.JSON(); events++ })
			if err != nil {
				b.Fatal(err)
			}
			defer cancel()
		}
		b.StartTimer()
		s.OriginFailed(a.Origin())
		b.StopTimer()
		if events < 19_500 {
			b.Fatalf("%d events for 19,500 sessions going stale", events)
		}
		s.Stop()
		b.StartTimer()
	}
}
