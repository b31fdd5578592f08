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
	changes := m.removeWrites(st, func(logRec, *slot) bool { return true })
	m.forget(st)
	return changes
}

// removeWrites removes st's current writes for which drop is true and
// returns a removal Change for each live one, in st's seq order.
func (m *Map) removeWrites(st *originState, drop func(logRec, *slot) bool) []Change {
	var changes []Change
	m.hold = st // remove must not compact the log being walked
	for _, r := range st.log {
		if !m.valid(st, r) {
			continue
		}
		s := m.slots.at(r.idx)
		if !drop(r, s) {
			continue
		}
		if !s.deleted() {
			changes = append(changes, Change{
				Key:     s.key,
				Prev:    m.entry(s),
				HadPrev: true,
				Cur:     Entry{Key: s.key, Deleted: true, Origin: st.Origin},
			})
		}
		m.remove(r.idx)
	}
	m.hold = nil
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

// PruneOrigin removes the entries (live and tombstones) whose current writer
// is o, whose seq is at most upTo, and whose key is not in keep; it returns
// a Change (Cur = Entry{Key, Deleted: true, Origin: o}) for each live entry
// removed, in o's seq order. o's watermark is unchanged.
//
// It repairs a replica that missed removals: keep is the set of keys o
// itself holds up to upTo (read from o), so an entry of o missing from it
// was removed by o, and its tombstone collected while this replica was cut
// off. Cost: O(entries written by o).
func (m *Map) PruneOrigin(o Origin, keep map[string]struct{}, upTo uint64) []Change {
	st := m.origins[o]
	if st == nil {
		return nil
	}
	changes := m.removeWrites(st, func(r logRec, s *slot) bool {
		_, kept := keep[s.key]
		return r.seq <= upTo && !kept
	})
	m.maybeCompact(st)
	return changes
}
