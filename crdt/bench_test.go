package crdt

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

const (
	benchOrigins   = 50
	benchPerOrigin = 2000 // 50 × 2000 = 100k entries
	benchValueLen  = 60
)

func benchOrigin(i int) Origin { return Origin{Node: fmt.Sprintf("node-%02d", i), Incarnation: 1} }

// benchKey is a 32-byte key shaped like a session key.
func benchKey(origin, i int) string { return fmt.Sprintf("s/%02d-%027d", origin, i) }

func benchValue(r *rand.Rand) []byte {
	v := make([]byte, benchValueLen)
	for i := range v {
		v[i] = byte('a' + r.IntN(26))
	}
	return v
}

// benchDelta is the whole log of one origin: perOrigin fresh entries.
func benchDelta(r *rand.Rand, oi, perOrigin int) Delta {
	o := benchOrigin(oi)
	d := Delta{Origin: o, From: 0, To: uint64(perOrigin), Entries: make([]Entry, perOrigin)}
	for i := range d.Entries {
		d.Entries[i] = Entry{
			Key:     benchKey(oi, i),
			Value:   benchValue(r),
			Version: Version{MakeTimestamp(1_700_000_000_000+int64(i), 0), o.Node},
			Origin:  o,
			Seq:     uint64(i + 1),
		}
	}
	return d
}

// benchReplica returns a replica holding 100k entries written by 50 origins.
func benchReplica(b *testing.B) (*Map, [][]string) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 1))
	m := NewMap()
	keys := make([][]string, benchOrigins)
	for oi := range benchOrigins {
		d := benchDelta(r, oi, benchPerOrigin)
		m.Merge(d)
		for _, e := range d.Entries {
			keys[oi] = append(keys[oi], e.Key)
		}
	}
	if m.Len() != benchOrigins*benchPerOrigin {
		b.Fatalf("replica holds %d entries", m.Len())
	}
	return m, keys
}

// updates fills d with the next 10 writes of origin oi: updates of its own
// keys (a session changing state), the way a delta push from a peer looks.
type updates struct {
	keys  [][]string
	value []byte
	ts    int64
	next  []int // per origin: next key to update
}

func (u *updates) fill(m *Map, d *Delta, oi, n int) {
	o := benchOrigin(oi)
	wm := m.Watermark(o)
	*d = Delta{Origin: o, From: wm, To: wm + uint64(n), Entries: d.Entries[:0]}
	for j := range n {
		u.ts++
		k := u.keys[oi][u.next[oi]%len(u.keys[oi])]
		u.next[oi]++
		d.Entries = append(d.Entries, Entry{
			Key: k, Value: u.value, Origin: o, Seq: wm + uint64(j) + 1,
			Version: Version{MakeTimestamp(1_800_000_000_000+u.ts, 0), o.Node},
		})
	}
}

// BenchmarkMergeDelta10Into100k merges a fresh 10-change delta per iteration
// into a replica of 100k entries from 50 origins. Target: ≤ 100 µs/op
// (Phoenix.Tracker: 137 ms for the same shape).
func BenchmarkMergeDelta10Into100k(b *testing.B) {
	m, keys := benchReplica(b)
	u := &updates{keys: keys, value: benchValue(rand.New(rand.NewPCG(2, 2))), next: make([]int, benchOrigins)}
	var d Delta
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u.fill(m, &d, i%benchOrigins, 10)
		changes, gap := m.Merge(d)
		if len(changes) != 10 || gap {
			b.Fatalf("%d changes, gap %v", len(changes), gap)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
}

// BenchmarkMergeDelta10Into100kWire is the same with decoding the delta from
// its wire form included, as the cluster does.
func BenchmarkMergeDelta10Into100kWire(b *testing.B) {
	m, keys := benchReplica(b)
	u := &updates{keys: keys, value: benchValue(rand.New(rand.NewPCG(2, 2))), next: make([]int, benchOrigins)}
	var d, got Delta
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		u.fill(m, &d, i%benchOrigins, 10)
		wire, err := d.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := got.UnmarshalBinary(wire); err != nil {
			b.Fatal(err)
		}
		if changes, _ := m.Merge(got); len(changes) != 10 {
			b.Fatalf("%d changes", len(changes))
		}
	}
}

func BenchmarkDeltaSince(b *testing.B) {
	m, keys := benchReplica(b)
	// Give every log some garbage: update a quarter of each origin's keys.
	u := &updates{keys: keys, value: benchValue(rand.New(rand.NewPCG(3, 3))), next: make([]int, benchOrigins)}
	var d Delta
	for oi := range benchOrigins {
		u.fill(m, &d, oi, benchPerOrigin/4)
		m.Merge(d)
	}
	o := benchOrigin(7)
	wm := m.Watermark(o)
	for _, bc := range []struct {
		name  string
		after uint64
		limit int
		want  int
	}{
		{"tail10", wm - 10, 0, 10},
		{"whole2000", 0, 0, benchPerOrigin},
		{"limit256", 0, 256, 256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if d := m.DeltaSince(o, bc.after, bc.limit); len(d.Entries) != bc.want {
					b.Fatalf("%d entries", len(d.Entries))
				}
			}
		})
	}
}

func BenchmarkSet(b *testing.B) {
	value := benchValue(rand.New(rand.NewPCG(4, 4)))
	o := Origin{Node: "local", Incarnation: 1}
	b.Run("update100k", func(b *testing.B) {
		m, keys := benchReplica(b)
		var all []string
		for _, ks := range keys {
			all = append(all, ks...)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok := m.Set(o, MakeTimestamp(1_800_000_000_000+int64(i), 0), all[i%len(all)], value); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("insert", func(b *testing.B) {
		m := NewMap()
		keys := make([]string, b.N)
		for i := range keys {
			keys[i] = benchKey(99, i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok := m.Set(o, MakeTimestamp(1_800_000_000_000+int64(i), 0), keys[i], value); !ok {
				b.Fatal("refused")
			}
		}
	})
}

// BenchmarkMemoryPerEntry measures the heap held per replicated entry (a
// 32-byte key and a 60-byte value, decoded from the wire like a peer's delta)
// in a replica of 1M entries from 50 origins. Target: ≤ 300 B/entry.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const total = 1_000_000
	r := rand.New(rand.NewPCG(5, 5))
	var wires [][]byte
	for oi := range benchOrigins {
		d := benchDelta(r, oi, total/benchOrigins)
		w, err := d.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		wires = append(wires, w)
	}
	var perEntry float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := NewMap()
		for _, w := range wires {
			var d Delta
			if err := d.UnmarshalBinary(w); err != nil {
				b.Fatal(err)
			}
			m.Merge(d)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.Len() != total {
			b.Fatalf("%d entries", m.Len())
		}
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / total
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perEntry, "B/entry")
}

func BenchmarkDeltaCodec10(b *testing.B) {
	d := benchDelta(rand.New(rand.NewPCG(6, 6)), 1, 10)
	wire, _ := d.MarshalBinary()
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(wire))
		for i := 0; i < b.N; i++ {
			buf, _ = d.AppendBinary(buf[:0])
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var got Delta
		for i := 0; i < b.N; i++ {
			if err := got.UnmarshalBinary(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkClockNow(b *testing.B) {
	c := NewClock(nil, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.Now()
	}
}
