package session

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/presenced/presenced/crdt"
)

// Three engines as a cluster would drive them, with the faults presence-chaos
// injects reduced to what the engine sees: deltas shipped late, partially
// or not at all, owners declared failed and alive again, retired by a
// restart, resyncs (merge the owner's whole origin, prune what it no longer
// holds), tombstones collected by the cluster's rule, sessions resumed on
// another node while their old owner still thinks it holds them. After
// every step each engine's aggregates equal a recount of its own listing;
// at the end, with every owner alive and every delta delivered, all three
// list the same members in the same states with the same counts.
func TestRandomClusterOperationsConverge(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clock := NewFakeClock(time.Unix(1_700_000_000, 0))
		var es []*Engine
		for i := 0; i < 3; i++ {
			e := New(Config{Node: fmt.Sprintf("n%d", i), Incarnation: 1, Clock: clock, Grace: 10 * time.Second,
				IdleAfter: 20 * time.Second, AwayAfter: 40 * time.Second})
			defer e.Stop()
			es = append(es, e)
		}
		incarnation := []uint64{1, 1, 1}
		var gone []crdt.Origin // incarnations replaced by a restart
		rooms := []string{"a", "b"}
		users := []string{"u1", "u2", "u3"}
		type tab struct{ sid, token, user string }
		var tabs []tab
		engine := func(label string) int { return rapid.IntRange(0, 2).Draw(rt, label) }
		pickTab := func() (tab, bool) {
			if len(tabs) == 0 {
				return tab{}, false
			}
			return tabs[rapid.IntRange(0, len(tabs)-1).Draw(rt, "tab")], true
		}
		ship := func(from, to int, limit int) {
			o := es[from].Origin()
			if from == to {
				return
			}
			d := es[from].DeltaSince(o, es[to].Digest()[o], limit)
			if _, err := es[to].Merge(d); err != nil && err != ErrOriginRetired {
				rt.Fatalf("merge %s → %s: %v", o, es[to].Origin(), err)
			}
		}
		steps := rapid.IntRange(1, 80).Draw(rt, "steps")
		resync := func(owner, to *Engine) {
			o := owner.Origin()
			d := owner.DeltaSince(o, 0, 0)
			keep := map[string]struct{}{}
			for _, ent := range d.Entries {
				keep[ent.Key] = struct{}{}
			}
			if _, err := to.Merge(d); err != nil && err != ErrOriginRetired {
				rt.Fatal(err)
			}
			to.PruneOrigin(o, keep, d.To)
		}
		for step := 0; step < steps; step++ {
			i := engine("engine")
			e := es[i]
			room := rapid.SampledFrom(rooms).Draw(rt, "room")
			switch op := rapid.IntRange(0, 17).Draw(rt, "op"); op {
			case 0, 1:
				u := rapid.SampledFrom(users).Draw(rt, "user")
				if o, err := e.Open(OpenRequest{ID: fmt.Sprintf("s%d", step), User: u, Location: rapid.SampledFrom(append(rooms, "")).Draw(rt, "loc")}); err == nil {
					tabs = append(tabs, tab{o.Session, o.ResumeToken, u})
					_ = e.Enter(o.Session, room, nil)
				}
			case 2:
				if tb, ok := pickTab(); ok {
					_ = e.Enter(tb.sid, room, json.RawMessage(fmt.Sprintf(`{"s":%d}`, step)))
				}
			case 3:
				if tb, ok := pickTab(); ok {
					_ = e.Leave(tb.sid, room, ReasonExplicit, nil)
				}
			case 4:
				if tb, ok := pickTab(); ok {
					e.Disconnect(tb.sid, 0)
				}
			case 5:
				if tb, ok := pickTab(); ok {
					_ = e.Close(tb.sid, ReasonClosed, nil)
				}
			case 6: // the client resumes on engine i (a takeover if another node owned it); its
				// old connection is gone, which its old owner notices
				if tb, ok := pickTab(); ok {
					if _, err := e.Resume(tb.token, tb.user); err == nil {
						for _, x := range es {
							if x != e {
								x.Disconnect(tb.sid, 0)
							}
						}
					}
				}
			case 7:
				if tb, ok := pickTab(); ok {
					_ = e.SetLocation(tb.sid, rapid.SampledFrom(append(rooms, "")).Draw(rt, "loc2"))
				}
			case 8, 9, 10: // deliver (some of) what an owner wrote
				ship(engine("from"), i, rapid.IntRange(0, 3).Draw(rt, "limit"))
			case 11: // engine i declares an owner failed, or alive again
				o := es[engine("owner")].Origin()
				if rapid.Bool().Draw(rt, "failed") {
					e.OriginFailed(o)
				} else {
					e.OriginAlive(o)
				}
			case 12: // resync: merge the owner's whole origin, prune what it no longer holds
				if k := engine("owner"); k != i {
					resync(es[k], e)
				}
			case 13: // tombstone GC by the cluster's rule: covered by every engine's digest
				safe := es[0].Digest()
				for _, other := range es[1:] {
					d := other.Digest()
					for o, s := range safe {
						safe[o] = min(s, d[o])
					}
				}
				e.CollectTombstones(safe)
			case 14:
				clock.Advance(time.Duration(rapid.IntRange(1, 15).Draw(rt, "secs")) * time.Second)
			case 15:
				if tb, ok := pickTab(); ok {
					_ = e.Update(tb.sid, room, json.RawMessage(fmt.Sprintf(`{"u":%d}`, step)))
				}
			case 16: // kill -9 and restart: a new incarnation with an empty replica
				gone = append(gone, e.Origin())
				e.Stop()
				incarnation[i]++
				es[i] = New(Config{Node: fmt.Sprintf("n%d", i), Incarnation: incarnation[i], Clock: clock, Grace: 10 * time.Second,
					IdleAfter: 20 * time.Second, AwayAfter: 40 * time.Second})
				defer es[i].Stop()
			case 17: // engine i sees the newer incarnation: retires the old one
				if len(gone) > 0 {
					e.OriginRetired(gone[rapid.IntRange(0, len(gone)-1).Draw(rt, "gone")])
				}
			}
			for _, x := range es {
				checkInvariants(t, x)
			}
		}
		// Heal: every owner alive everywhere, every delta delivered; then grace
		// passes (an old owner that lost a takeover to a node that died since ends
		// what it still holds) and everything is delivered again.
		for round := 0; round < 6; round++ {
			if round == 3 {
				clock.Advance(11 * time.Second)
			}
			for _, x := range es {
				for _, y := range es {
					x.OriginAlive(y.Origin())
				}
				for _, o := range gone {
					x.OriginRetired(o)
				}
			}
			for from := range es {
				for to := range es {
					ship(from, to, 0)
				}
			}
			// The census: a replica caught up with an owner but holding a
			// different count of its live entries re-reads them.
			for _, owner := range es {
				wm, live := owner.Census(owner.Origin())
				for _, x := range es {
					if w, l := x.Census(owner.Origin()); x != owner && w == wm && l != live {
						resync(owner, x)
					}
				}
			}
		}
		for _, x := range es {
			checkInvariants(t, x)
		}
		want := describeRooms(es[0], rooms)
		for _, x := range es[1:] {
			if got := describeRooms(x, rooms); got != want {
				rt.Fatalf("after the heal %s lists\n%s\nbut %s lists\n%s", es[0].Origin(), want, x.Origin(), got)
			}
		}
	})
}

func describeRooms(e *Engine, rooms []string) string {
	var b strings.Builder
	for _, r := range rooms {
		ms, _ := e.RoomMembers(r)
		var ss []string
		for _, m := range ms {
			ss = append(ss, m.Session+"="+string(m.State))
		}
		slices.Sort(ss)
		c := e.RoomCounts(r)
		fmt.Fprintf(&b, "%s: %v %+v %+v\n", r, ss, c.Online, c.Here)
	}
	return b.String()
}
