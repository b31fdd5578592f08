package crdt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Wire format, version 1. Integers are unsigned varints (minimal length)
// unless noted; a string or byte slice is a varint length then the bytes.
//
//	Delta:  0x01 node incarnation from to count entry*
//	entry:  flags key ts(8 bytes, little endian) seq [value]
//	flags:  bit 0 tombstone, bit 1 value present (a non-nil Value, possibly empty)
//	Digest: 0x01 count (node incarnation seq)*, sorted by node then incarnation
//
// Entries carry neither their Origin nor Version.Node: both are the Delta's
// origin. Decoders are strict: they never panic, never allocate more than the
// input justifies, and reject unknown versions or flags, lengths beyond the
// limits below, counts the remaining input cannot hold, sequence numbers
// outside [1, MaxSeq], duplicate digest origins, non-minimal varints and
// trailing bytes.

// Limits enforced by the codecs.
const (
	MaxKeyLen   = 1 << 10 // bytes in a key
	MaxValueLen = 1 << 20 // bytes in a value
	MaxNodeLen  = 1 << 10 // bytes in a node id
)

// ErrMalformed is wrapped by every decoding error, and by encoding errors for
// deltas that the decoder would refuse.
var ErrMalformed = errors.New("crdt: malformed encoding")

const (
	codecVersion  = 1
	flagTombstone = 1 << 0
	flagValue     = 1 << 1
	minEntrySize  = 1 + 1 + 8 + 1 // flags, empty key, ts, one-byte seq
	minOriginSize = 1 + 1 + 1     // empty node, incarnation, seq
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// MarshalBinary encodes the delta. It fails if an entry belongs to another
// origin, has Version.Node != Origin.Node, a Seq outside [1, MaxSeq], or a
// key, value or node id beyond the limits.
func (d Delta) MarshalBinary() ([]byte, error) {
	return d.AppendBinary(make([]byte, 0, d.MaxBinarySize()))
}

// MaxBinarySize is an upper bound of the length of d's encoding.
func (d Delta) MaxBinarySize() int {
	size := 1 + 5*binary.MaxVarintLen64 + len(d.Origin.Node)
	for i := range d.Entries {
		e := &d.Entries[i]
		size += 1 + 2*binary.MaxVarintLen64 + 8 + len(e.Key) + binary.MaxVarintLen64 + len(e.Value)
	}
	return size
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (d Delta) AppendBinary(b []byte) ([]byte, error) {
	if len(d.Origin.Node) > MaxNodeLen {
		return nil, malformed("node id of %d bytes", len(d.Origin.Node))
	}
	b = append(b, codecVersion)
	b = appendString(b, d.Origin.Node)
	b = binary.AppendUvarint(b, d.Origin.Incarnation)
	b = binary.AppendUvarint(b, d.From)
	b = binary.AppendUvarint(b, d.To)
	b = binary.AppendUvarint(b, uint64(len(d.Entries)))
	for i := range d.Entries {
		e := &d.Entries[i]
		switch {
		case e.Origin != d.Origin || e.Version.Node != d.Origin.Node:
			return nil, malformed("entry %q written by %s in a delta of %s", e.Key, e.Origin, d.Origin)
		case e.Seq == 0 || e.Seq > MaxSeq:
			return nil, malformed("entry %q has seq %d", e.Key, e.Seq)
		case len(e.Key) > MaxKeyLen:
			return nil, malformed("key of %d bytes", len(e.Key))
		case len(e.Value) > MaxValueLen:
			return nil, malformed("value of %d bytes", len(e.Value))
		}
		var flags byte
		if e.Deleted {
			flags |= flagTombstone
		}
		if e.Value != nil {
			flags |= flagValue
		}
		b = append(b, flags)
		b = appendString(b, e.Key)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Version.TS))
		b = binary.AppendUvarint(b, e.Seq)
		if e.Value != nil {
			b = binary.AppendUvarint(b, uint64(len(e.Value)))
			b = append(b, e.Value...)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a delta, replacing *d. Keys and values are copied
// out of b. On error *d is unchanged.
func (d *Delta) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != codecVersion {
		return malformed("delta version %d", v)
	}
	var out Delta
	out.Origin.Node = r.string(MaxNodeLen)
	out.Origin.Incarnation = r.uvarint()
	out.From = r.uvarint()
	out.To = r.uvarint()
	n := r.count(minEntrySize)
	if r.err != nil {
		return r.err
	}
	if n > 0 {
		out.Entries = make([]Entry, n)
	}
	for i := range out.Entries {
		e := &out.Entries[i]
		flags := r.byte()
		if flags&^(flagTombstone|flagValue) != 0 {
			r.fail("entry flags %#x", flags)
		}
		e.Key = r.string(MaxKeyLen)
		e.Version = Version{TS: Timestamp(r.uint64()), Node: out.Origin.Node}
		e.Origin = out.Origin
		e.Seq = r.uvarint()
		if r.err == nil && (e.Seq == 0 || e.Seq > MaxSeq) {
			r.fail("entry seq %d", e.Seq)
		}
		e.Deleted = flags&flagTombstone != 0
		if flags&flagValue != 0 {
			e.Value = r.bytes(MaxValueLen)
		}
		if r.err != nil {
			return r.err
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*d = out
	return nil
}

// MarshalBinary encodes the digest, origins sorted by node then incarnation.
func (g Digest) MarshalBinary() ([]byte, error) {
	return g.AppendBinary(make([]byte, 0, 1+binary.MaxVarintLen64+len(g)*(3*binary.MaxVarintLen64+16)))
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (g Digest) AppendBinary(b []byte) ([]byte, error) {
	origins := make([]Origin, 0, len(g))
	for o := range g {
		if len(o.Node) > MaxNodeLen {
			return nil, malformed("node id of %d bytes", len(o.Node))
		}
		origins = append(origins, o)
	}
	slices.SortFunc(origins, compareOrigin)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(len(origins)))
	for _, o := range origins {
		b = appendString(b, o.Node)
		b = binary.AppendUvarint(b, o.Incarnation)
		b = binary.AppendUvarint(b, g[o])
	}
	return b, nil
}

// UnmarshalBinary decodes a digest, replacing *g. On error *g is unchanged.
func (g *Digest) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != codecVersion {
		return malformed("digest version %d", v)
	}
	n := r.count(minOriginSize)
	if r.err != nil {
		return r.err
	}
	out := make(Digest, n)
	for range n {
		o := Origin{Node: r.string(MaxNodeLen), Incarnation: r.uvarint()}
		seq := r.uvarint()
		if r.err != nil {
			return r.err
		}
		if _, dup := out[o]; dup {
			return malformed("digest lists %s twice", o)
		}
		out[o] = seq
	}
	if err := r.done(); err != nil {
		return err
	}
	*g = out
	return nil
}

func compareOrigin(a, b Origin) int {
	if c := cmp.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	return cmp.Compare(a.Incarnation, b.Incarnation)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes from b, remembering the first error; after an error every
// read returns a zero value.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed(format, args...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	if n > 1 && r.b[n-1] == 0 {
		r.fail("non-minimal varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of items that each take at least minSize bytes.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/minSize) {
		r.fail("count %d exceeds the remaining %d bytes", n, len(r.b))
		return 0
	}
	return int(n)
}

// span returns the next length-prefixed run of bytes, without copying.
func (r *reader) span(limit int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(limit) {
		r.fail("length %d over the limit %d", n, limit)
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d exceeds the remaining %d bytes", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string(limit int) string { return string(r.span(limit)) }

func (r *reader) bytes(limit int) []byte {
	v := r.span(limit)
	if r.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(v)), v...)
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}
