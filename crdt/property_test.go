package crdt

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// world is a random history: each origin writes on its home replica, extra
// replicas only merge, and deltas taken from any replica (whole or partial
// ranges, via DeltaSince) pile up in a pool, to be delivered anywhere, in any
// order, any number of times.
type world struct {
	origins []Origin
	maps    []*Map // maps[i] is the home of origins[i] for i < len(origins)
	views   []map[string]Entry
	pool    []Delta
	keys    []string
}

func newWorld(t *rapid.T) *world {
	w := &world{keys: []string{"k0", "k1", "k2", "k3", "k4", "k5"}}
	nOrigins := rapid.IntRange(1, 4).Draw(t, "origins")
	nReplicas := nOrigins + rapid.IntRange(1, 3).Draw(t, "extra replicas")
	for i := range nOrigins {
		// Two incarnations of one node take part when there are four origins.
		w.origins = append(w.origins, Origin{Node: fmt.Sprint("n", min(i, 2)), Incarnation: uint64(max(1, i-1))})
	}
	for range nReplicas {
		w.maps = append(w.maps, NewMap())
		w.views = append(w.views, map[string]Entry{})
	}
	return w
}

// step performs one random action.
func (w *world) step(t *rapid.T, i int) {
	switch a := rapid.IntRange(0, 9).Draw(t, "action"); {
	case a < 5:
		oi := rapid.IntRange(0, len(w.origins)-1).Draw(t, "writer")
		key := rapid.SampledFrom(w.keys).Draw(t, "key")
		wall := int64(rapid.IntRange(1, 30).Draw(t, "wall"))
		var c Change
		var ok bool
		if rapid.IntRange(0, 3).Draw(t, "delete") == 0 {
			c, ok = w.maps[oi].Delete(w.origins[oi], ts(wall, 0), key, nil)
		} else {
			c, ok = w.maps[oi].Set(w.origins[oi], ts(wall, 0), key, []byte(fmt.Sprint("v", i)))
		}
		if ok {
			applyChange(t, w.views[oi], c)
		}
	case a < 7:
		src := rapid.IntRange(0, len(w.maps)-1).Draw(t, "source")
		o := rapid.SampledFrom(w.origins).Draw(t, "delta origin")
		after := rapid.Uint64Range(0, w.maps[src].Watermark(o)+2).Draw(t, "after")
		limit := rapid.IntRange(0, 3).Draw(t, "limit")
		w.pool = append(w.pool, w.maps[src].DeltaSince(o, after, limit))
	default:
		if len(w.pool) == 0 {
			return
		}
		d := w.pool[rapid.IntRange(0, len(w.pool)-1).Draw(t, "delta")]
		w.merge(t, rapid.IntRange(0, len(w.maps)-1).Draw(t, "target"), d)
	}
}

func (w *world) merge(t *rapid.T, j int, d Delta) {
	changes, _ := w.maps[j].Merge(d)
	for _, c := range changes {
		applyChange(t, w.views[j], c)
	}
}

// deliverAll adds every origin's whole log, from its home, to the pool and
// delivers the pool to every replica in a random order with duplicates.
func (w *world) deliverAll(t *rapid.T) {
	for i, o := range w.origins {
		w.pool = append(w.pool, w.maps[i].DeltaSince(o, 0, 0))
	}
	idx := make([]int, len(w.pool))
	for i := range idx {
		idx[i] = i
	}
	for j := range w.maps {
		for _, i := range rapid.Permutation(idx).Draw(t, "order") {
			w.merge(t, j, w.pool[i])
			if rapid.IntRange(0, 4).Draw(t, "duplicate") == 0 {
				w.merge(t, j, w.pool[i])
			}
		}
	}
}

// applyChange folds one change into a view of the live entries, checking
// that Prev matches what the view holds.
func applyChange(t tester, view map[string]Entry, c Change) {
	t.Helper()
	old, had := view[c.Key]
	if had != c.HadPrev || had && !entryEqual(old, c.Prev) {
		t.Fatalf("change of %q: Prev %v (HadPrev %v), view holds %v (%v)", c.Key, fmtEntry(c.Prev), c.HadPrev, fmtEntry(old), had)
	}
	if c.Cur.Key != c.Key {
		t.Fatalf("change of %q carries %q", c.Key, c.Cur.Key)
	}
	if c.Cur.Deleted {
		delete(view, c.Key)
	} else {
		view[c.Key] = c.Cur
	}
}

func viewEntries(view map[string]Entry) []Entry {
	return slices.SortedFunc(maps.Values(view), func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
}

// Every replica ends with the same entries, tombstones included, and the same
// digest; and each replica's change stream rebuilds its live entries.
func TestPropertyConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t)
		for i := range rapid.IntRange(0, 80).Draw(t, "steps") {
			w.step(t, i)
		}
		w.deliverAll(t)
		want, wantDigest := allEntries(w.maps[0]), w.maps[0].Digest()
		for j, m := range w.maps {
			checkInvariants(t, m)
			if got := allEntries(m); !entriesEqual(got, want) {
				t.Fatalf("replica %d:\n%sreplica 0:\n%s", j, fmtEntries(got), fmtEntries(want))
			}
			if got := m.Digest(); !maps.Equal(got, wantDigest) {
				t.Fatalf("replica %d digest %v, replica 0 %v", j, got, wantDigest)
			}
			if got, view := liveEntries(m), viewEntries(w.views[j]); !entriesEqual(got, view) {
				t.Fatalf("replica %d Range:\n%schange stream:\n%s", j, fmtEntries(got), fmtEntries(view))
			}
		}
	})
}

// join merges all of y into x, as anti-entropy between two replicas would.
func join(x, y *Map) *Map {
	origins := slices.SortedFunc(maps.Keys(y.origins), compareOrigin)
	for _, o := range origins {
		x.Merge(y.DeltaSince(o, 0, 0))
	}
	return x
}

func clone(x *Map) *Map { return join(NewMap(), x) }

// randomReplicas runs a random history and returns its replicas.
func randomReplicas(t *rapid.T) *world {
	w := newWorld(t)
	for i := range rapid.IntRange(0, 60).Draw(t, "steps") {
		w.step(t, i)
	}
	return w
}

func requireSame(t *rapid.T, what string, a, b *Map) {
	t.Helper()
	if ea, eb := allEntries(a), allEntries(b); !entriesEqual(ea, eb) {
		t.Fatalf("%s differ:\n%svs\n%s", what, fmtEntries(ea), fmtEntries(eb))
	}
	checkInvariants(t, a)
	checkInvariants(t, b)
}

// Merging replica states is commutative, associative and idempotent.
func TestPropertyJoinLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := randomReplicas(t)
		pick := func(name string) *Map { return rapid.SampledFrom(w.maps).Draw(t, name) }
		a, b, c := pick("a"), pick("b"), pick("c")
		requireSame(t, "a∘b and b∘a", join(clone(a), b), join(clone(b), a))
		requireSame(t, "(a∘b)∘c and a∘(b∘c)", join(join(clone(a), b), c), join(clone(a), join(clone(b), c)))
		requireSame(t, "a∘a and a", join(clone(a), a), a)
	})
}

// Merging two deltas into one replica gives the same entries in either
// order, and merging a delta twice changes nothing the second time.
func TestPropertyDeltaLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := randomReplicas(t)
		for i, o := range w.origins {
			w.pool = append(w.pool, w.maps[i].DeltaSince(o, 0, 0))
		}
		base := rapid.SampledFrom(w.maps).Draw(t, "base")
		d1 := rapid.SampledFrom(w.pool).Draw(t, "d1")
		d2 := rapid.SampledFrom(w.pool).Draw(t, "d2")
		x, y := clone(base), clone(base)
		x.Merge(d1)
		x.Merge(d2)
		y.Merge(d2)
		y.Merge(d1)
		requireSame(t, "d1∘d2 and d2∘d1", x, y)
		before := allEntries(x)
		if changes, _ := x.Merge(d1); len(changes) != 0 {
			t.Fatalf("merging a delta again reported %d changes", len(changes))
		}
		if !entriesEqual(before, allEntries(x)) {
			t.Fatal("merging a delta again changed the map")
		}
	})
}

// DeltaSince returns exactly the entries of the origin above after, in seq
// order, a prefix of them when limited, with To as documented.
func TestPropertyDeltaSince(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := randomReplicas(t)
		m := rapid.SampledFrom(w.maps).Draw(t, "replica")
		o := rapid.SampledFrom(w.origins).Draw(t, "origin")
		after := rapid.Uint64Range(0, m.Watermark(o)+2).Draw(t, "after")
		limit := rapid.IntRange(-1, 4).Draw(t, "limit")
		var want []Entry
		for _, e := range allEntries(m) {
			if e.Origin == o && e.Seq > after {
				want = append(want, e)
			}
		}
		slices.SortFunc(want, func(a, b Entry) int { return int(a.Seq) - int(b.Seq) })
		d := m.DeltaSince(o, after, limit)
		truncated := limit > 0 && len(want) > limit
		if truncated {
			want = want[:limit]
		}
		if !entriesEqual(d.Entries, want) {
			t.Fatalf("DeltaSince(%s, %d, %d):\n%swant\n%s", o, after, limit, fmtEntries(d.Entries), fmtEntries(want))
		}
		wantTo := m.Watermark(o)
		if truncated {
			wantTo = min(wantTo, want[len(want)-1].Seq)
		}
		if d.Origin != o || d.From != after || d.To != wantTo {
			t.Fatalf("delta %s (%d,%d], want %s (%d,%d]", d.Origin, d.From, d.To, o, after, wantTo)
		}
	})
}

// The change stream rebuilds Range on every replica also when origins are
// dropped and tombstones collected along the way.
func TestPropertyChangeStream(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t)
		for i := range rapid.IntRange(0, 80).Draw(t, "steps") {
			j := rapid.IntRange(0, len(w.maps)-1).Draw(t, "replica")
			switch rapid.IntRange(0, 9).Draw(t, "extra") {
			case 0:
				for _, c := range w.maps[j].DropOrigin(rapid.SampledFrom(w.origins).Draw(t, "drop")) {
					applyChange(t, w.views[j], c)
				}
			case 1:
				safe := Digest{}
				for _, o := range w.origins {
					safe[o] = rapid.Uint64Range(0, 5).Draw(t, "safe")
				}
				w.maps[j].CollectTombstones(safe)
			default:
				w.step(t, i)
			}
		}
		w.deliverAll(t)
		for j, m := range w.maps {
			checkInvariants(t, m)
			if got, view := liveEntries(m), viewEntries(w.views[j]); !entriesEqual(got, view) {
				t.Fatalf("replica %d Range:\n%schange stream:\n%s", j, fmtEntries(got), fmtEntries(view))
			}
		}
	})
}
