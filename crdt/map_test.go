package crdt

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	oA  = Origin{Node: "a", Incarnation: 1}
	oA2 = Origin{Node: "a", Incarnation: 2}
	oB  = Origin{Node: "b", Incarnation: 1}
	oC  = Origin{Node: "c", Incarnation: 1}
)

func ent(o Origin, wall int64, seq uint64, key, val string) Entry {
	e := Entry{Key: key, Version: Version{ts(wall, 0), o.Node}, Origin: o, Seq: seq}
	if val == "" {
		e.Deleted = true
	} else {
		e.Value = []byte(val)
	}
	return e
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b Version
		want bool
	}{
		{Version{ts(1, 0), "a"}, Version{ts(2, 0), "a"}, true},
		{Version{ts(2, 0), "a"}, Version{ts(1, 0), "z"}, false},
		{Version{ts(1, 1), "a"}, Version{ts(1, 2), "a"}, true},
		{Version{ts(1, 0), "a"}, Version{ts(1, 0), "b"}, true},
		{Version{ts(1, 0), "b"}, Version{ts(1, 0), "a"}, false},
		{Version{ts(1, 0), "a"}, Version{ts(1, 0), "a"}, false},
	} {
		if got := tc.a.Less(tc.b); got != tc.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if s := oA.String(); s != "a#1" {
		t.Errorf("Origin.String() = %q", s)
	}
}

// TestLocalWrites runs Set and Delete sequences on one map.
func TestLocalWrites(t *testing.T) {
	type op struct {
		del      bool
		o        Origin
		wall     int64
		key, val string
		applied  bool
		seq      uint64 // of Cur, when applied
		hadPrev  bool
	}
	set := func(o Origin, wall int64, k, v string, applied bool, seq uint64, hadPrev bool) op {
		return op{false, o, wall, k, v, applied, seq, hadPrev}
	}
	del := func(o Origin, wall int64, k string, applied bool, seq uint64) op {
		return op{true, o, wall, k, "", applied, seq, applied}
	}
	for _, tc := range []struct {
		name string
		ops  []op
		live map[string]string
	}{
		{"create and update", []op{
			set(oA, 10, "k", "v1", true, 1, false),
			set(oA, 11, "k", "v2", true, 2, true),
		}, map[string]string{"k": "v2"}},
		{"older or equal write refused, no seq consumed", []op{
			set(oA, 10, "k", "v1", true, 1, false),
			set(oA, 9, "k", "old", false, 0, false),
			set(oA, 10, "k", "same", false, 0, false),
			set(oA, 12, "j", "x", true, 2, false),
		}, map[string]string{"k": "v1", "j": "x"}},
		{"delete live, absent, twice", []op{
			del(oA, 5, "k", false, 0),
			set(oA, 10, "k", "v1", true, 1, false),
			del(oA, 11, "k", true, 2),
			del(oA, 12, "k", false, 0),
		}, map[string]string{}},
		{"delete older than the value refused", []op{
			set(oA, 10, "k", "v1", true, 1, false),
			del(oA, 9, "k", false, 0),
		}, map[string]string{"k": "v1"}},
		{"set after delete resurrects, older set does not", []op{
			set(oA, 10, "k", "v1", true, 1, false),
			del(oA, 11, "k", true, 2),
			set(oA, 10, "k", "late", false, 0, false),
			set(oA, 12, "k", "v3", true, 3, false),
		}, map[string]string{"k": "v3"}},
		{"another origin with a newer version takes the key", []op{
			set(oA, 10, "k", "a", true, 1, false),
			set(oB, 11, "k", "b", true, 1, true),
			set(oA, 10, "k", "a again", false, 0, false),
		}, map[string]string{"k": "b"}},
		{"equal timestamp: higher node wins", []op{
			set(oB, 10, "k", "b", true, 1, false),
			set(oA, 10, "k", "a", false, 0, false),
			set(oC, 10, "k", "c", true, 1, true),
		}, map[string]string{"k": "c"}},
		{"equal version: the later incarnation wins", []op{
			set(oA, 10, "k", "a1", true, 1, false),
			set(oA2, 10, "k", "a2", true, 1, true),
		}, map[string]string{"k": "a2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMap()
			for i, op := range tc.ops {
				var c Change
				var ok bool
				if op.del {
					c, ok = m.Delete(op.o, ts(op.wall, 0), op.key, nil)
				} else {
					c, ok = m.Set(op.o, ts(op.wall, 0), op.key, []byte(op.val))
				}
				if ok != op.applied {
					t.Fatalf("op %d: applied = %v, want %v", i, ok, op.applied)
				}
				if !ok {
					if !reflect.DeepEqual(c, Change{}) {
						t.Fatalf("op %d: refused write reported %+v", i, c)
					}
					continue
				}
				want := Entry{Key: op.key, Deleted: op.del, Version: Version{ts(op.wall, 0), op.o.Node}, Origin: op.o, Seq: op.seq}
				if !op.del {
					want.Value = []byte(op.val)
				}
				if c.Key != op.key || !entryEqual(c.Cur, want) || c.HadPrev != op.hadPrev {
					t.Fatalf("op %d: change %+v, want Cur %+v HadPrev %v", i, c, want, op.hadPrev)
				}
				if m.Watermark(op.o) != op.seq {
					t.Fatalf("op %d: watermark %d, want %d", i, m.Watermark(op.o), op.seq)
				}
				checkInvariants(t, m)
			}
			got := map[string]string{}
			m.Range(func(e Entry) bool { got[e.Key] = string(e.Value); return true })
			if !reflect.DeepEqual(got, tc.live) {
				t.Fatalf("Range = %v, want %v", got, tc.live)
			}
			if m.Len() != len(tc.live) {
				t.Fatalf("Len = %d, want %d", m.Len(), len(tc.live))
			}
			for k, v := range tc.live {
				if e, ok := m.Get(k); !ok || string(e.Value) != v {
					t.Fatalf("Get(%q) = %v %v", k, e, ok)
				}
			}
		})
	}
}

func TestChangePrev(t *testing.T) {
	m := NewMap()
	m.Set(oA, ts(10, 0), "k", []byte("v1"))
	c, _ := m.Set(oB, ts(11, 0), "k", []byte("v2"))
	if !c.HadPrev || !entryEqual(c.Prev, ent(oA, 10, 1, "k", "v1")) {
		t.Fatalf("Prev = %+v", c.Prev)
	}
	c, _ = m.Delete(oB, ts(12, 0), "k", nil)
	if !c.HadPrev || !entryEqual(c.Prev, ent(oB, 11, 1, "k", "v2")) || !entryEqual(c.Cur, ent(oB, 12, 2, "k", "")) {
		t.Fatalf("delete change = %+v", c)
	}
	if _, ok := m.Get("k"); ok {
		t.Fatal("Get returned a tombstone")
	}
}

func TestMerge(t *testing.T) {
	type step struct {
		d       Delta
		changed []string // keys reported, in order
		gap     bool
		wm      uint64 // watermark of d.Origin afterwards
	}
	delta := func(o Origin, from, to uint64, es ...Entry) Delta {
		return Delta{Origin: o, From: from, To: to, Entries: es}
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []Entry // all entries afterwards, tombstones included
	}{
		{"apply and duplicate", []step{
			{delta(oA, 0, 2, ent(oA, 10, 1, "k1", "v1"), ent(oA, 11, 2, "k2", "v2")), []string{"k1", "k2"}, false, 2},
			{delta(oA, 0, 2, ent(oA, 10, 1, "k1", "v1"), ent(oA, 11, 2, "k2", "v2")), nil, false, 2},
		}, []Entry{ent(oA, 10, 1, "k1", "v1"), ent(oA, 11, 2, "k2", "v2")}},
		{"foreign and invalid entries ignored", []step{
			{delta(oA, 0, 1, ent(oB, 10, 1, "k1", "b"), ent(oA, 10, 1, "k2", "a"),
				Entry{Key: "k3", Value: []byte("x"), Version: Version{ts(10, 0), "b"}, Origin: oA, Seq: 2},
				Entry{Key: "k4", Value: []byte("x"), Version: Version{ts(10, 0), "a"}, Origin: oA, Seq: 0}),
				[]string{"k2"}, false, 1},
		}, []Entry{ent(oA, 10, 1, "k2", "a")}},
		{"older write loses", []step{
			{delta(oB, 0, 1, ent(oB, 20, 1, "k", "new")), []string{"k"}, false, 1},
			{delta(oA, 0, 1, ent(oA, 10, 1, "k", "old")), nil, false, 1},
		}, []Entry{ent(oB, 20, 1, "k", "new")}},
		{"equal timestamps: node breaks the tie in either order", []step{
			{delta(oB, 0, 1, ent(oB, 10, 1, "k", "b")), []string{"k"}, false, 1},
			{delta(oA, 0, 1, ent(oA, 10, 1, "k", "a")), nil, false, 1},
			{delta(oC, 0, 1, ent(oC, 10, 1, "k", "c")), []string{"k"}, false, 1},
		}, []Entry{ent(oC, 10, 1, "k", "c")}},
		{"tombstone for an unknown key is kept silently", []step{
			{delta(oA, 0, 2, ent(oA, 12, 2, "k", "")), nil, false, 2},
			{delta(oB, 0, 1, ent(oB, 11, 1, "k", "late")), nil, false, 1},
		}, []Entry{ent(oA, 12, 2, "k", "")}},
		{"removal is a change, tombstone over tombstone is not", []step{
			{delta(oA, 0, 1, ent(oA, 10, 1, "k", "v")), []string{"k"}, false, 1},
			{delta(oB, 0, 1, ent(oB, 11, 1, "k", "")), []string{"k"}, false, 1},
			{delta(oC, 0, 1, ent(oC, 12, 1, "k", "")), nil, false, 1},
		}, []Entry{ent(oC, 12, 1, "k", "")}},
		{"gap detected, entries still applied, watermark kept until the gap fills, then past what came ahead", []step{
			{delta(oA, 0, 2, ent(oA, 10, 1, "k1", "v1"), ent(oA, 11, 2, "k2", "v2")), []string{"k1", "k2"}, false, 2},
			{delta(oA, 4, 5, ent(oA, 14, 5, "k5", "v5")), []string{"k5"}, true, 2},
			{delta(oA, 2, 4, ent(oA, 12, 3, "k3", "v3"), ent(oA, 13, 4, "k4", "v4")), []string{"k3", "k4"}, false, 5},
			{delta(oA, 4, 5, ent(oA, 14, 5, "k5", "v5")), nil, false, 5},
		}, []Entry{ent(oA, 10, 1, "k1", "v1"), ent(oA, 11, 2, "k2", "v2"), ent(oA, 12, 3, "k3", "v3"), ent(oA, 13, 4, "k4", "v4"), ent(oA, 14, 5, "k5", "v5")}},
		{"several deltas ahead, filled in any order", []step{
			{delta(oA, 6, 8, ent(oA, 18, 8, "k8", "v8")), []string{"k8"}, true, 0},
			{delta(oA, 2, 4, ent(oA, 14, 4, "k4", "v4")), []string{"k4"}, true, 0},
			{delta(oA, 4, 6, ent(oA, 16, 6, "k6", "v6")), []string{"k6"}, true, 0},
			{delta(oA, 0, 2, ent(oA, 12, 2, "k2", "v2")), []string{"k2"}, false, 8},
			{delta(oA, 9, 10, ent(oA, 20, 10, "k10", "v10")), []string{"k10"}, true, 8},
		}, []Entry{ent(oA, 20, 10, "k10", "v10"), ent(oA, 12, 2, "k2", "v2"), ent(oA, 14, 4, "k4", "v4"), ent(oA, 16, 6, "k6", "v6"), ent(oA, 18, 8, "k8", "v8")}},
		{"a late delta closes a gap followed by more pushes than maxAhead", func() []step {
			// (0,1] arrives late; the 40 contiguous pushes after it arrive
			// first. Held as 40 separate ranges, the oldest were forgotten
			// and the watermark stopped at 1 when (0,1] came.
			steps := []step{}
			for i := uint64(1); i <= 40; i++ {
				steps = append(steps, step{delta(oA, i, i+1, ent(oA, int64(10+i), i+1, fmt.Sprint("k", i+1), "v")), []string{fmt.Sprint("k", i+1)}, true, 0})
			}
			return append(steps, step{delta(oA, 0, 1, ent(oA, 10, 1, "k1", "v")), []string{"k1"}, false, 41})
		}(), func() []Entry {
			var es []Entry
			for i := uint64(1); i <= 41; i++ {
				es = append(es, ent(oA, int64(9+i), i, fmt.Sprint("k", i), "v"))
			}
			slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
			return es
		}()},
		{"watermark never goes back", []step{
			{delta(oA, 0, 5), nil, false, 5},
			{delta(oA, 0, 3), nil, false, 5},
		}, nil},
		{"an origin's later write replaces its earlier one", []step{
			{delta(oA, 0, 1, ent(oA, 10, 1, "k", "v1")), []string{"k"}, false, 1},
			{delta(oA, 1, 2, ent(oA, 11, 2, "k", "v2")), []string{"k"}, false, 2},
		}, []Entry{ent(oA, 11, 2, "k", "v2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMap()
			for i, s := range tc.steps {
				changes, gap := m.Merge(s.d)
				var keys []string
				for _, c := range changes {
					keys = append(keys, c.Key)
				}
				if !reflect.DeepEqual(keys, s.changed) || gap != s.gap {
					t.Fatalf("step %d: changes %v gap %v, want %v %v", i, keys, gap, s.changed, s.gap)
				}
				if wm := m.Watermark(s.d.Origin); wm != s.wm {
					t.Fatalf("step %d: watermark %d, want %d", i, wm, s.wm)
				}
				checkInvariants(t, m)
			}
			if got := allEntries(m); !entriesEqual(got, tc.want) {
				t.Fatalf("entries:\n%swant:\n%s", fmtEntries(got), fmtEntries(tc.want))
			}
		})
	}
}

func TestDeltaSince(t *testing.T) {
	m := NewMap()
	for i := range 6 {
		m.Set(oA, ts(int64(10+i), 0), fmt.Sprint("k", i), []byte{byte('0' + i)}) // seqs 1..6
	}
	m.Delete(oA, ts(20, 0), "k1", nil)          // seq 7 (seq 2 superseded)
	m.Set(oB, ts(21, 0), "k3", []byte("b"))     // takes k3 (seq 4 superseded)
	m.Set(oA, ts(22, 0), "k0", []byte("again")) // seq 8 (seq 1 superseded)
	seqs := func(d Delta) []uint64 {
		var s []uint64
		for _, e := range d.Entries {
			s = append(s, e.Seq)
		}
		return s
	}
	for _, tc := range []struct {
		o        Origin
		after    uint64
		limit    int
		seqs     []uint64
		from, to uint64
	}{
		{oA, 0, 0, []uint64{3, 5, 6, 7, 8}, 0, 8},
		{oA, 5, 0, []uint64{6, 7, 8}, 5, 8},
		{oA, 0, 2, []uint64{3, 5}, 0, 5},
		{oA, 5, 3, []uint64{6, 7, 8}, 5, 8}, // exactly the limit: not truncated
		{oA, 8, 0, nil, 8, 8},
		{oB, 0, 0, []uint64{1}, 0, 1},
		{oC, 0, 0, nil, 0, 0},
	} {
		d := m.DeltaSince(tc.o, tc.after, tc.limit)
		if !reflect.DeepEqual(seqs(d), tc.seqs) || d.From != tc.from || d.To != tc.to || d.Origin != tc.o {
			t.Errorf("DeltaSince(%s, %d, %d) = %s (%d,%d] %v, want (%d,%d] %v", tc.o, tc.after, tc.limit, d.Origin, d.From, d.To, seqs(d), tc.from, tc.to, tc.seqs)
		}
		for _, e := range d.Entries {
			if e.Origin != tc.o {
				t.Errorf("entry %v in a delta of %s", e, tc.o)
			}
		}
	}
	d := m.DeltaSince(oA, 6, 0)
	if !d.Entries[0].Deleted || d.Entries[0].Key != "k1" {
		t.Errorf("tombstone missing from delta: %v", d.Entries)
	}
}

// A truncated delta below a gap reports the watermark, not the last seq.
func TestDeltaSinceTruncatedAboveWatermark(t *testing.T) {
	m := NewMap()
	m.Merge(Delta{Origin: oA, From: 0, To: 2, Entries: []Entry{ent(oA, 1, 1, "a", "1"), ent(oA, 2, 2, "b", "2")}})
	m.Merge(Delta{Origin: oA, From: 5, To: 7, Entries: []Entry{ent(oA, 6, 6, "f", "6"), ent(oA, 7, 7, "g", "7")}})
	d := m.DeltaSince(oA, 0, 3)
	if len(d.Entries) != 3 || d.To != 2 {
		t.Fatalf("delta (%d,%d] with %d entries, want (0,2] with 3", d.From, d.To, len(d.Entries))
	}
}

func TestOwnershipTransfer(t *testing.T) {
	a, b := NewMap(), NewMap()
	a.Set(oA, ts(10, 0), "sess", []byte("on a"))
	a.Set(oA, ts(11, 0), "other", []byte("x"))
	b.Merge(a.DeltaSince(oA, 0, 0))

	// The session resumes on b, which writes it with a newer version.
	if _, ok := b.Set(oB, ts(20, 0), "sess", []byte("on b")); !ok {
		t.Fatal("b could not take the key")
	}
	changes, _ := a.Merge(b.DeltaSince(oB, 0, 0))
	if len(changes) != 1 || !changes[0].HadPrev || changes[0].Prev.Origin != oA || changes[0].Cur.Origin != oB {
		t.Fatalf("a saw %+v", changes)
	}
	// a's later write with an older timestamp is refused.
	if _, ok := a.Set(oA, ts(15, 0), "sess", []byte("stale")); ok {
		t.Fatal("a overwrote b's newer version")
	}
	// a's log no longer lists the key; its watermark still covers seq 1.
	d := a.DeltaSince(oA, 0, 0)
	if len(d.Entries) != 1 || d.Entries[0].Key != "other" || d.To != 2 {
		t.Fatalf("a's delta = %+v", d)
	}
	// A third replica gets both logs and agrees.
	c := NewMap()
	c.Merge(d)
	c.Merge(b.DeltaSince(oB, 0, 0))
	if e, _ := c.Get("sess"); e.Origin != oB {
		t.Fatalf("c holds %v", e)
	}
	for _, m := range []*Map{a, b, c} {
		checkInvariants(t, m)
	}
	if !entriesEqual(allEntries(a), allEntries(c)) {
		t.Fatalf("a:\n%sc:\n%s", fmtEntries(allEntries(a)), fmtEntries(allEntries(c)))
	}
}

func TestDropOrigin(t *testing.T) {
	m := NewMap()
	m.Set(oB, ts(5, 0), "taken", []byte("b"))
	m.Merge(Delta{Origin: oA, From: 0, To: 4, Entries: []Entry{
		ent(oA, 10, 1, "k1", "v1"),
		ent(oA, 11, 2, "k2", "v2"),
		ent(oA, 12, 3, "k3", ""),
		ent(oA, 13, 4, "taken", "a"),
	}})
	changes := m.DropOrigin(oA)
	var keys []string
	for _, c := range changes {
		keys = append(keys, c.Key)
		if !c.HadPrev || c.Prev.Origin != oA || !reflect.DeepEqual(c.Cur, Entry{Key: c.Key, Deleted: true, Origin: oA}) {
			t.Errorf("change %+v", c)
		}
	}
	if !reflect.DeepEqual(keys, []string{"k1", "k2", "taken"}) {
		t.Fatalf("changes for %v", keys)
	}
	if m.Len() != 0 || len(allEntries(m)) != 0 {
		t.Fatalf("left behind:\n%s", fmtEntries(allEntries(m)))
	}
	if m.Watermark(oA) != 0 {
		t.Fatal("watermark kept")
	}
	if _, ok := m.Digest()[oA]; ok {
		t.Fatal("digest still lists the dropped origin")
	}
	if m.DropOrigin(oA) != nil {
		t.Fatal("second drop reported changes")
	}
	checkInvariants(t, m)
	// The slots are reused.
	m.Set(oB, ts(30, 0), "new", []byte("x"))
	checkInvariants(t, m)
}

func TestCollectTombstones(t *testing.T) {
	m := NewMap()
	for i := range 5 {
		m.Set(oA, ts(int64(10+i), 0), fmt.Sprint("k", i), []byte("v")) // seqs 1..5
	}
	m.Delete(oA, ts(20, 0), "k0", nil)      // seq 6
	m.Delete(oA, ts(21, 0), "k1", nil)      // seq 7
	m.Delete(oA, ts(22, 0), "k2", nil)      // seq 8
	m.Set(oA, ts(23, 0), "k2", []byte("v")) // seq 9: resurrected, tombstone 8 gone
	m.Merge(Delta{Origin: oB, From: 0, To: 1, Entries: []Entry{ent(oB, 24, 1, "k9", "")}})

	for _, tc := range []struct {
		safe Digest
		want int
		left int // entries, tombstones included
	}{
		{Digest{oA: 5}, 0, 6},
		{Digest{oA: 6, oC: 100}, 1, 5},
		{Digest{oA: 100}, 1, 4},
		{Digest{oB: 1}, 1, 3},
	} {
		if n := m.CollectTombstones(tc.safe); n != tc.want {
			t.Fatalf("CollectTombstones(%v) = %d, want %d", tc.safe, n, tc.want)
		}
		if got := len(allEntries(m)); got != tc.left {
			t.Fatalf("after %v: %d entries, want %d", tc.safe, got, tc.left)
		}
		checkInvariants(t, m)
	}
	if m.Len() != 3 {
		t.Fatalf("Len = %d", m.Len())
	}
}

func TestRangePrefix(t *testing.T) {
	m := NewMap()
	for i, k := range []string{"s/1", "s/2", "m/1/r", "s/3", "u/x"} {
		m.Set(oA, ts(int64(i+1), 0), k, []byte(k))
	}
	m.Delete(oA, ts(10, 0), "s/2", nil)
	var got []string
	m.RangePrefix("s/", func(e Entry) bool { got = append(got, e.Key); return true })
	if len(got) != 2 {
		t.Fatalf("RangePrefix = %v", got)
	}
	n := 0
	m.Range(func(Entry) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range did not stop: %d", n)
	}
}

// Overwriting the same keys over and over keeps the logs small.
func TestLogCompaction(t *testing.T) {
	m := NewMap()
	r := rand.New(rand.NewPCG(1, 2))
	origins := []Origin{oA, oB, oC}
	for i := range 20000 {
		o := origins[r.IntN(len(origins))]
		k := fmt.Sprint("k", r.IntN(50))
		if r.IntN(5) == 0 {
			m.Delete(o, ts(int64(i), 0), k, nil)
		} else {
			m.Set(o, ts(int64(i), 0), k, []byte("v"))
		}
	}
	checkInvariants(t, m)
	total := 0
	for _, st := range m.origins {
		total += len(st.log)
	}
	if total > 2*50+3*minCompact {
		t.Fatalf("logs hold %d records for 50 keys", total)
	}
	// A replica built from the logs agrees.
	r2 := NewMap()
	for _, o := range origins {
		r2.Merge(m.DeltaSince(o, 0, 0))
	}
	if !entriesEqual(allEntries(m), allEntries(r2)) {
		t.Fatal("replica differs")
	}
}

// Deltas delivered out of seq order leave a sorted log behind.
func TestMergeOutOfOrder(t *testing.T) {
	src := NewMap()
	for i := range 300 {
		src.Set(oA, ts(int64(i+1), 0), fmt.Sprint("k", i%120), []byte(fmt.Sprint(i)))
	}
	var parts []Delta
	for after := uint64(0); after < 300; after += 7 {
		parts = append(parts, src.DeltaSince(oA, after, 7))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, shuffle := range []func([]Delta){
		func(ds []Delta) { // reversed
			for i, j := 0, len(ds)-1; i < j; i, j = i+1, j-1 {
				ds[i], ds[j] = ds[j], ds[i]
			}
		},
		func(ds []Delta) { r.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] }) },
	} {
		ds := append([]Delta(nil), parts...)
		shuffle(ds)
		dst := NewMap()
		for _, d := range ds {
			dst.Merge(d)
			checkInvariants(t, dst)
		}
		// One entry list in reverse seq order, too.
		rev := src.DeltaSince(oA, 0, 0)
		slicesReverse(rev.Entries)
		dst.Merge(rev)
		checkInvariants(t, dst)
		if !entriesEqual(allEntries(src), allEntries(dst)) {
			t.Fatalf("replica differs:\n%s\nwant\n%s", fmtEntries(allEntries(dst)), fmtEntries(allEntries(src)))
		}
		if got, want := dst.DeltaSince(oA, 0, 0), src.DeltaSince(oA, 0, 0); !entriesEqual(got.Entries, want.Entries) || got.To != want.To {
			t.Fatal("DeltaSince differs")
		}
	}
}

func slicesReverse(es []Entry) {
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
}

func TestZeroMap(t *testing.T) {
	var m Map
	if _, ok := m.Get("k"); ok || m.Len() != 0 || m.Watermark(oA) != 0 || len(m.Digest()) != 0 {
		t.Fatal("zero map not empty")
	}
	if d := m.DeltaSince(oA, 0, 0); d.Entries != nil || m.DropOrigin(oA) != nil || m.CollectTombstones(Digest{oA: 1}) != 0 {
		t.Fatal("zero map not empty")
	}
	if _, ok := m.Delete(oA, ts(1, 0), "k", nil); ok {
		t.Fatal("deleted from an empty map")
	}
	if _, ok := m.Set(oA, ts(1, 0), "k", []byte("v")); !ok {
		t.Fatal("zero map refused a write")
	}
	var z Map
	z.Merge(m.DeltaSince(oA, 0, 0))
	checkInvariants(t, &m)
	checkInvariants(t, &z)
	if !entriesEqual(allEntries(&m), allEntries(&z)) {
		t.Fatal("replica differs")
	}
}

// A forged delta that claims the local origin's last seq cannot make Set wrap.
func TestSetSeqExhausted(t *testing.T) {
	m := NewMap()
	m.Merge(Delta{Origin: oA, From: 0, To: MaxSeq, Entries: []Entry{ent(oA, 1, MaxSeq, "k", "v")}})
	if _, ok := m.Set(oA, ts(2, 0), "j", []byte("v")); ok {
		t.Fatal("Set past MaxSeq")
	}
	checkInvariants(t, m)
}

// PruneOrigin removes what the origin no longer holds (up to upTo), keeps
// what it holds and anything written after upTo, and leaves the watermark.
func TestPruneOrigin(t *testing.T) {
	m := NewMap()
	m.Set(oB, ts(5, 0), "taken", []byte("b"))
	m.Merge(Delta{Origin: oA, From: 0, To: 5, Entries: []Entry{
		ent(oA, 10, 1, "kept", "v1"),
		ent(oA, 11, 2, "gone", "v2"),
		ent(oA, 12, 3, "tomb", ""),
		ent(oA, 13, 4, "taken", "a"),
		ent(oA, 14, 5, "late", "v5"),
	}})
	changes := m.PruneOrigin(oA, map[string]struct{}{"kept": {}}, 4)
	var keys []string
	for _, c := range changes {
		keys = append(keys, c.Key)
		if !c.HadPrev || c.Prev.Origin != oA || !c.Cur.Deleted {
			t.Errorf("change %+v", c)
		}
	}
	if !reflect.DeepEqual(keys, []string{"gone", "taken"}) {
		t.Fatalf("changes for %v", keys)
	}
	for _, k := range []string{"kept", "late"} {
		if e, ok := m.Get(k); !ok || e.Deleted {
			t.Fatalf("%s removed", k)
		}
	}
	for _, k := range []string{"gone", "tomb", "taken"} {
		if _, ok := m.Get(k); ok {
			t.Fatalf("%s kept", k)
		}
	}
	if m.Watermark(oA) != 5 || m.Len() != 2 {
		t.Fatalf("watermark %d, len %d", m.Watermark(oA), m.Len())
	}
	checkInvariants(t, m)
}

// MergeAppend with a buffer reused from merge to merge reports what Merge
// reports, into that buffer when it has room.
func TestMergeAppendReusesTheBuffer(t *testing.T) {
	src := NewMap()
	for i := range 200 {
		src.Set(oA, ts(int64(i+1), 0), fmt.Sprint("k", i%50), []byte(fmt.Sprint(i)))
	}
	viaMerge, viaAppend := NewMap(), NewMap()
	var buf []Change
	for after := uint64(0); after < 200; after += 9 {
		d := src.DeltaSince(oA, after, 9)
		want, wantGap := viaMerge.Merge(d)
		got, gap := viaAppend.MergeAppend(d, buf[:0])
		if gap != wantGap || len(got) != len(want) {
			t.Fatalf("after %d: %d changes gap %v, want %d gap %v", after, len(got), gap, len(want), wantGap)
		}
		for i := range want {
			if got[i].Key != want[i].Key || !entryEqual(got[i].Cur, want[i].Cur) || got[i].HadPrev != want[i].HadPrev {
				t.Fatalf("after %d: change %d is %s, want %s", after, i, fmtEntry(got[i].Cur), fmtEntry(want[i].Cur))
			}
		}
		if cap(buf) > 0 && len(got) <= cap(buf) && &got[:1][0] != &buf[:1][0] {
			t.Fatalf("after %d: the buffer was not reused", after)
		}
		clear(got)
		buf = got[:0]
	}
	if !entriesEqual(allEntries(viaMerge), allEntries(viaAppend)) {
		t.Fatal("the maps differ")
	}
}

// AppendDeltaSince gives DeltaSince's delta, its entries in the caller's
// array when they fit.
func TestAppendDeltaSinceReusesTheBuffer(t *testing.T) {
	m := NewMap()
	for i := range 200 {
		m.Set(oA, ts(int64(i+1), 0), fmt.Sprint("k", i%50), []byte(fmt.Sprint(i)))
	}
	m.Delete(oA, ts(300, 0), "k7", nil)
	buf := make([]Entry, 3, 16) // holds junk from an earlier push
	for after := uint64(0); after <= 202; after += 7 {
		for _, limit := range []int{0, 5, 16} {
			want := m.DeltaSince(oA, after, limit)
			got := m.AppendDeltaSince(buf, oA, after, limit)
			if got.Origin != want.Origin || got.From != want.From || got.To != want.To || !entriesEqual(got.Entries, want.Entries) {
				t.Fatalf("after %d limit %d: %+v, want %+v", after, limit, got, want)
			}
			if want.Entries == nil != (got.Entries == nil) {
				t.Fatalf("after %d limit %d: entries nil %v, want %v", after, limit, got.Entries == nil, want.Entries == nil)
			}
			if len(got.Entries) > 0 && len(got.Entries) <= cap(buf) && &got.Entries[0] != &buf[:1][0] {
				t.Fatalf("after %d limit %d: %d entries not in the buffer of %d", after, limit, len(got.Entries), cap(buf))
			}
		}
	}
}
