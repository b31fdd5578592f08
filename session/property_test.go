package session

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestRandomOperationsKeepAggregatesExact drives an engine with random
// operations and clock jumps; after every step the incrementally kept counts
// and users equal what the member lists imply, and every subscriber's view
// (snapshot + events) equals the room.
func TestRandomOperationsKeepAggregatesExact(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clock := NewFakeClock(time.Unix(1_700_000_000, 0))
		e := New(Config{Node: "n1", Incarnation: 1, Clock: clock, Grace: 10 * time.Second, IdleAfter: 20 * time.Second, AwayAfter: 40 * time.Second})
		defer e.Stop()
		rooms := []string{"a", "b", "c"}
		views := map[string]*RoomView{}
		for _, r := range rooms {
			v := &RoomView{}
			snap, _, err := e.Subscribe(r, func(ev *Event) {
				if err := v.Apply(ev); err != nil {
					rt.Fatalf("subscriber of %s: %v", r, err)
				}
			})
			if err != nil {
				rt.Fatal(err)
			}
			v.Reset(snap)
			views[r] = v
		}
		var sids, tokens []string
		users := []string{"", "u1", "u2", "u3"}
		for step := 0; step < 60; step++ {
			pick := func() string {
				if len(sids) == 0 {
					return "none"
				}
				return sids[rapid.IntRange(0, len(sids)-1).Draw(rt, "sid")]
			}
			room := rapid.SampledFrom(rooms).Draw(rt, "room")
			switch rapid.IntRange(0, 11).Draw(rt, "op") {
			case 0, 1:
				op, err := e.Open(OpenRequest{User: rapid.SampledFrom(users).Draw(rt, "user"), Location: rapid.SampledFrom(append(rooms, "")).Draw(rt, "loc")})
				if err == nil {
					sids, tokens = append(sids, op.Session), append(tokens, op.ResumeToken)
				}
			case 2, 3:
				_ = e.Enter(pick(), room, json.RawMessage(fmt.Sprintf(`{"s":%d}`, step)))
			case 4:
				_ = e.Update(pick(), room, json.RawMessage(`{"u":1}`))
			case 5:
				_ = e.Leave(pick(), room, ReasonExplicit, nil)
			case 6:
				e.Disconnect(pick(), 0)
			case 7:
				if len(tokens) > 0 {
					ti := rapid.IntRange(0, len(tokens)-1).Draw(rt, "tok")
					if info, ok := e.Session(sids[ti]); ok {
						_, _ = e.Resume(tokens[ti], info.User)
					}
				}
			case 8:
				_ = e.SetLocation(pick(), rapid.SampledFrom(append(rooms, "")).Draw(rt, "loc2"))
			case 9:
				_ = e.Activity(pick(), rapid.SampledFrom([]Activity{ActivityActive, ActivityHidden, ActivityVisible}).Draw(rt, "act"))
			case 10:
				_ = e.Typing(pick(), room, rapid.Bool().Draw(rt, "typing"))
			case 11:
				clock.Advance(time.Duration(rapid.IntRange(1, 30).Draw(rt, "secs")) * time.Second)
			}
			checkInvariants(t, e)
			for _, r := range rooms {
				ms, v := e.RoomMembers(r)
				view := views[r]
				if view.Version != v || len(view.Members) != len(ms) {
					rt.Fatalf("room %s: view v%d %d members, room v%d %d members", r, view.Version, len(view.Members), v, len(ms))
				}
				raw, _ := e.AppendMembersJSON(nil, r)
				var listed []Member
				if err := json.Unmarshal(raw, &listed); err != nil || len(listed) != len(ms) {
					rt.Fatalf("room %s: JSON listing %s: %v", r, raw, err)
				}
				byID := map[string]Member{}
				for _, m := range listed {
					byID[m.Session] = m
				}
				for _, m := range ms {
					if lm := byID[m.Session]; lm.State != m.State || lm.Here != m.Here || string(lm.Data) != string(m.Data) || lm.LastActive != m.LastActive {
						rt.Fatalf("room %s: cached JSON of %s is stale: %+v vs %+v", r, m.Session, lm, m)
					}
				}
				for _, m := range ms {
					vm := view.Members[m.Session]
					if vm.State != m.State || vm.Here != m.Here || string(vm.Data) != string(m.Data) {
						rt.Fatalf("room %s member %s: view %+v, room %+v", r, m.Session, vm, m)
					}
				}
			}
		}
	})
}
