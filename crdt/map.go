package crdt

import (
	"cmp"
	"strings"
)

// Map is an LWW map with tombstones, per-origin logs and watermarks. Not safe for concurrent use.
//
// Storage: a hash index from key to a slot of a chunked slab, and one
// originState per origin holding its watermark and the log of the entries it
// currently writes. Every operation touches only the keys it writes and the
// logs of their writers, so a merge costs O(delta), whatever the map's size.
type Map struct {
	index    map[string]uint32
	slots    slab
	origins  map[Origin]*originState
	orgs     []*originState // by id-1; slots refer to their writer by id
	freeOrgs []uint32       // ids of dropped origins, for reuse
	live     int

	// hold is an origin whose log must not be compacted right now, because
	// Merge or DropOrigin is working on it.
	hold *originState
}

// NewMap returns an empty map. The zero Map is empty and ready to use too.
func NewMap() *Map {
	return &Map{index: make(map[string]uint32), origins: make(map[Origin]*originState)}
}

// Tombstones is the number of tombstones held.
func (m *Map) Tombstones() int { return len(m.index) - m.live }

// Len is the number of live (non-deleted) entries.
func (m *Map) Len() int { return m.live }

// Get returns the live entry of key; tombstones read as absent.
func (m *Map) Get(key string) (Entry, bool) {
	idx, ok := m.index[key]
	if !ok {
		return Entry{}, false
	}
	s := m.slots.at(idx)
	if s.deleted() {
		return Entry{}, false
	}
	return m.entry(s), true
}

// Lookup returns the entry of key, tombstones included.
func (m *Map) Lookup(key string) (Entry, bool) {
	idx, ok := m.index[key]
	if !ok {
		return Entry{}, false
	}
	return m.entry(m.slots.at(idx)), true
}

// Range calls fn for every live entry, in no particular order, until fn
// returns false. fn must not modify the map.
func (m *Map) Range(fn func(Entry) bool) {
	m.slots.each(func(s *slot) bool {
		return s.deleted() || fn(m.entry(s))
	})
}

// RangePrefix is Range restricted to keys that start with prefix. It scans
// the whole map: O(n).
func (m *Map) RangePrefix(prefix string, fn func(Entry) bool) {
	m.slots.each(func(s *slot) bool {
		return s.deleted() || !strings.HasPrefix(s.key, prefix) || fn(m.entry(s))
	})
}

// Set is a local write by origin o: assigns o's next seq, Version{ts, o.Node}. If the key already
// holds a higher Version (another owner took it), nothing is written and applied is false (no seq consumed).
//
// An equal Version is refused as well: a writer must not write one key twice
// with the same timestamp. The map keeps value; the caller must not modify it.
func (m *Map) Set(o Origin, ts Timestamp, key string, value []byte) (c Change, applied bool) {
	idx, exists := m.index[key]
	return m.writeLocal(o, ts, key, value, false, idx, exists)
}

// Delete writes a tombstone for key by origin o (same LWW rule); false if key is absent or already deleted or newer.
// value (may be nil) is kept in the tombstone and replicated with it: it
// tells every replica why the entry went away (a leave reason).
func (m *Map) Delete(o Origin, ts Timestamp, key string, value []byte) (c Change, applied bool) {
	idx, exists := m.index[key]
	if !exists || m.slots.at(idx).deleted() {
		return Change{}, false
	}
	return m.writeLocal(o, ts, key, value, true, idx, exists)
}

func (m *Map) writeLocal(o Origin, ts Timestamp, key string, value []byte, tomb bool, idx uint32, exists bool) (Change, bool) {
	if exists {
		s := m.slots.at(idx)
		if compareVersion(ts, o, s.ts, m.owner(s).Origin) <= 0 {
			return Change{}, false
		}
	}
	st := m.originOf(o)
	seq := max(st.watermark, st.maxSeq) + 1
	if seq > MaxSeq {
		// Unreachable by counting; only a forged delta claiming o's seqs up
		// to MaxSeq gets here. Refuse rather than wrap.
		return Change{}, false
	}
	if st.watermark == seq-1 {
		st.watermark = seq
	}
	c, _ := m.store(st, key, value, ts, seq, tomb, idx, exists)
	return c, true
}

// store writes an entry that the caller has checked wins over the current
// one (slot idx if exists). visible reports whether the live view changed.
func (m *Map) store(st *originState, key string, value []byte, ts Timestamp, seq uint64, tomb bool, idx uint32, exists bool) (c Change, visible bool) {
	var s *slot
	if exists {
		s = m.slots.at(idx)
		old, oldTomb := m.owner(s), s.deleted()
		if !oldTomb {
			c.Prev, c.HadPrev = m.entry(s), true
			m.live--
		} else {
			c.Tomb, c.HadTomb = m.entry(s), true
		}
		// Keep the key string already shared with the index.
		s.value, s.ts, s.org, s.seq = value, ts, st.id, seq
		s.gen++
		if tomb {
			s.seq |= tombBit
		}
		m.unlink(old, oldTomb)
	} else {
		idx = m.slots.alloc()
		s = m.slots.at(idx)
		*s = slot{key: key, value: value, ts: ts, org: st.id, seq: seq, gen: s.gen + 1}
		if tomb {
			s.seq |= tombBit
		}
		m.index[key] = idx
	}
	if !tomb {
		m.live++
	}
	m.record(st, seq, idx, tomb)
	c.Key, c.Cur = key, m.entry(s)
	return c, c.HadPrev || !tomb
}

// remove deletes slot idx from the map entirely (no tombstone left).
func (m *Map) remove(idx uint32) {
	s := m.slots.at(idx)
	st, tomb := m.owner(s), s.deleted()
	if !tomb {
		m.live--
	}
	delete(m.index, s.key)
	m.slots.release(idx)
	m.unlink(st, tomb)
}

// compareVersion orders two writes of one key by Version, then by the
// writer's incarnation. The last step only matters when two incarnations of
// one node wrote the same key at the same timestamp, which the HLC should
// prevent; it keeps replicas convergent if it happens anyway.
func compareVersion(ts Timestamp, o Origin, ts2 Timestamp, o2 Origin) int {
	switch {
	case ts != ts2:
		return cmp.Compare(ts, ts2)
	case o.Node != o2.Node:
		return strings.Compare(o.Node, o2.Node)
	default:
		return cmp.Compare(o.Incarnation, o2.Incarnation)
	}
}
