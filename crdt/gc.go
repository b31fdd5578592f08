package crdt

// DropOrigin removes every entry (live and tombstone) whose current writer is o and forgets o's
// watermark; returns a Change (Cur = Entry{Key, Deleted: true, Origin: o}) for each live entry removed.
// Used when a node's incarnation is retired; the caller must refuse later deltas from o.
//
// Entries that o had overwritten are gone already and do not come back. The
// changes come in o's seq order. Cost: O(entries written by o).
func (m *Map) DropOrigin(o Origin) []Change {
	st := m.origins[o]
	if st == nil {
		return nil
	}
	var changes []Change
	m.hold = st // remove must not compact the log being walked
	for _, r := range st.log {
		if !m.valid(st, r) {
			continue
		}
		s := m.slots.at(r.idx)
		if !s.deleted() {
			changes = append(changes, Change{
				Key:     s.key,
				Prev:    m.entry(s),
				HadPrev: true,
				Cur:     Entry{Key: s.key, Deleted: true, Origin: o},
			})
		}
		m.remove(r.idx)
	}
	m.hold = nil
	m.forget(st)
	return changes
}

// CollectTombstones removes tombstones whose (Origin, Seq) is covered by safe (seq <= safe[origin]); returns how many.
//
// safe is typically the element-wise minimum of the digests of every live
// member: once everyone holds a removal, no older write of that key can
// arrive any more, except from a member that has been partitioned away for
// longer than the caller's bound. Cost: O(tombstones of the origins in safe).
func (m *Map) CollectTombstones(safe Digest) int {
	n := 0
	for o, upTo := range safe {
		st := m.origins[o]
		if st == nil || len(st.tombs) == 0 {
			continue
		}
		keep := st.tombs[:0]
		for _, r := range st.tombs {
			if !m.valid(st, r) {
				continue
			}
			if r.seq <= upTo {
				m.remove(r.idx)
				n++
				continue
			}
			keep = append(keep, r)
		}
		st.tombs = keep
	}
	return n
}
