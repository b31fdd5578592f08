package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func sampleDelta() Delta {
	o := Origin{Node: "node-1", Incarnation: 1_700_000_000_000}
	e := func(k string, v []byte, del bool, seq uint64) Entry {
		return Entry{Key: k, Value: v, Deleted: del, Version: Version{MakeTimestamp(1_700_000_000_000+int64(seq), uint16(seq)), o.Node}, Origin: o, Seq: seq}
	}
	return Delta{Origin: o, From: 3, To: 9, Entries: []Entry{
		e("s/abc", []byte(`{"u":"alice"}`), false, 4),
		e("m/abc/room", []byte{}, false, 5), // empty, not nil
		e("t/abc/room", nil, false, 6),      // nil value
		e("s/old", nil, true, 7),            // tombstone
		e("s/gone", []byte(`{"r":"timeout"}`), true, 9),
	}}
}

func TestDeltaRoundTrip(t *testing.T) {
	for _, d := range []Delta{sampleDelta(), {}, {Origin: Origin{Node: "n"}, From: 1, To: 1}} {
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Delta
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("round trip:\n%+v\nwant\n%+v", got, d)
		}
		// Trailing bytes and every truncation are refused, and leave the target alone.
		for _, bad := range [][]byte{append(bytes.Clone(b), 0), b[:len(b)-1]} {
			keep := sampleDelta()
			if err := keep.UnmarshalBinary(bad); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decoding %x: %v", bad, err)
			}
			if !reflect.DeepEqual(keep, sampleDelta()) {
				t.Fatal("failed decode modified the target")
			}
		}
		for n := range b {
			var x Delta
			if err := x.UnmarshalBinary(b[:n]); err == nil {
				t.Fatalf("decoded a %d-byte prefix of %d", n, len(b))
			}
		}
	}
}

func TestDeltaMarshalRefuses(t *testing.T) {
	for name, mutate := range map[string]func(*Delta){
		"foreign entry":  func(d *Delta) { d.Entries[0].Origin.Incarnation++ },
		"node mismatch":  func(d *Delta) { d.Entries[0].Version.Node = "other" },
		"seq zero":       func(d *Delta) { d.Entries[0].Seq = 0 },
		"seq too large":  func(d *Delta) { d.Entries[0].Seq = MaxSeq + 1 },
		"key too long":   func(d *Delta) { d.Entries[0].Key = strings.Repeat("k", MaxKeyLen+1) },
		"value too long": func(d *Delta) { d.Entries[0].Value = make([]byte, MaxValueLen+1) },
		"node too long": func(d *Delta) {
			d.Origin.Node = strings.Repeat("n", MaxNodeLen+1)
			d.Entries = nil
		},
	} {
		d := sampleDelta()
		mutate(&d)
		if _, err := d.MarshalBinary(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: MarshalBinary error %v", name, err)
		}
	}
	// At the limits it works.
	d := sampleDelta()
	d.Entries[0].Key = strings.Repeat("k", MaxKeyLen)
	d.Entries[0].Value = make([]byte, MaxValueLen)
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Delta
	if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("limits: %v", err)
	}
}

func TestDeltaUnmarshalRefuses(t *testing.T) {
	// A hand-built header followed by one entry, with one thing wrong each time.
	header := func(count uint64) []byte {
		b := []byte{codecVersion, 1, 'n', 1, 0, 0}
		return binary.AppendUvarint(b, count)
	}
	entry := func(flags byte, keyLen uint64, seq uint64, valueLen uint64) []byte {
		b := []byte{flags}
		b = binary.AppendUvarint(b, keyLen)
		b = append(b, strings.Repeat("k", int(min(keyLen, 2000)))...)
		b = binary.LittleEndian.AppendUint64(b, 1)
		b = binary.AppendUvarint(b, seq)
		if flags&flagValue != 0 {
			b = binary.AppendUvarint(b, valueLen)
			b = append(b, make([]byte, min(valueLen, 2<<20))...)
		}
		return b
	}
	ok := append(header(1), entry(flagValue, 1, 1, 1)...)
	var d Delta
	if err := d.UnmarshalBinary(ok); err != nil {
		t.Fatalf("valid input refused: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"version":           append([]byte{2}, ok[1:]...),
		"count too large":   append(header(2), entry(flagValue, 1, 1, 1)...),
		"huge count":        append(header(1<<62), entry(0, 1, 1, 0)...),
		"unknown flag":      append(header(1), entry(4, 1, 1, 0)...),
		"seq zero":          append(header(1), entry(0, 1, 0, 0)...),
		"seq too large":     append(header(1), entry(0, 1, MaxSeq+1, 0)...),
		"key too long":      append(header(1), entry(0, MaxKeyLen+1, 1, 0)...),
		"value too long":    append(header(1), entry(flagValue, 1, 1, MaxValueLen+1)...),
		"non-minimal count": append([]byte{codecVersion, 1, 'n', 1, 0, 0, 0x81, 0x00}, entry(0, 1, 1, 0)...),
		"bad varint":        {codecVersion, 1, 'n', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length past end":   {codecVersion, 200, 'n'},
	} {
		if err := d.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestDigestRoundTrip(t *testing.T) {
	for _, g := range []Digest{{}, {oA: 5, oA2: 0, oB: 1 << 60, {Node: "", Incarnation: 0}: 7}} {
		b, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := g.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("encoding is not deterministic")
		}
		var got Digest
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, g) {
			t.Fatalf("round trip: %v %v, want %v", got, err, g)
		}
		for n := range b {
			if err := got.UnmarshalBinary(b[:n]); err == nil {
				t.Fatalf("decoded a %d-byte prefix", n)
			}
		}
		if err := got.UnmarshalBinary(append(bytes.Clone(b), 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
	dup := []byte{codecVersion, 2, 1, 'a', 1, 5, 1, 'a', 1, 6}
	var g Digest
	if err := g.UnmarshalBinary(dup); !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate origin: %v", err)
	}
	if _, err := (Digest{{Node: strings.Repeat("n", MaxNodeLen+1)}: 1}).MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("long node: %v", err)
	}
}

// Every delta DeltaSince produces survives the codec unchanged.
func TestPropertyDeltaCodec(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := randomReplicas(t)
		m := rapid.SampledFrom(w.maps).Draw(t, "replica")
		for _, o := range w.origins {
			d := m.DeltaSince(o, 0, 0)
			b, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Delta
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, d) {
				t.Fatalf("round trip:\n%+v\nwant\n%+v", got, d)
			}
		}
		g := m.Digest()
		b, _ := g.MarshalBinary()
		var got Digest
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, g) {
			t.Fatalf("digest round trip: %v", err)
		}
	})
}

func FuzzDeltaUnmarshal(f *testing.F) {
	seed, _ := sampleDelta().MarshalBinary()
	f.Add(seed)
	empty, _ := Delta{}.MarshalBinary()
	f.Add(empty)
	f.Add([]byte{})
	f.Add([]byte{codecVersion, 1, 'n', 1, 0, 0, 1, flagValue, 1, 'k', 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'v'})
	f.Add([]byte{codecVersion, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Delta
		if err := d.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		again, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded delta does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("encoding is not canonical:\n%x\n%x", b, again)
		}
		var d2 Delta
		if err := d2.UnmarshalBinary(again); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("re-decoded delta differs:\n%+v\n%+v", d, d2)
		}
		// Whatever decodes can be merged, twice, without trouble.
		m := NewMap()
		m.Merge(d)
		if changes, _ := m.Merge(d2); len(changes) != 0 {
			t.Fatal("second merge reported changes")
		}
		checkInvariants(t, m)
	})
}

func FuzzDigestUnmarshal(f *testing.F) {
	seed, _ := Digest{oA: 5, oB: 7}.MarshalBinary()
	f.Add(seed)
	empty, _ := Digest{}.MarshalBinary()
	f.Add(empty)
	f.Add([]byte{})
	f.Add([]byte{codecVersion, 2, 1, 'a', 1, 5, 1, 'a', 1, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		var g Digest
		if err := g.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		again, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var g2 Digest
		if err := g2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(g, g2) {
			t.Fatalf("re-decoded digest differs: %v %v %v", g, g2, err)
		}
	})
}
