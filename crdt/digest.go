package crdt

// Digest is, per origin, the highest seq up to which this replica holds everything (its watermark).
//
// Two replicas compare digests to find what to send each other: for an origin
// where a peer's watermark is below ours, we send DeltaSince(origin, theirs).
// A digest is a few bytes per origin, whatever the number of entries.
type Digest map[Origin]uint64

// Watermark is the seq up to which the map holds every write of o, as far as
// it knows (0 for an unknown origin). For a local origin: the last seq it assigned.
func (m *Map) Watermark(o Origin) uint64 {
	if st := m.origins[o]; st != nil {
		return st.watermark
	}
	return 0
}

// Census is what the map holds of origin o: its watermark and how many live
// (not deleted) entries o currently writes. Two replicas with the same
// watermark for o and all deltas delivered hold the same entries of o; a
// count that stays different means one of them holds entries of o that o
// no longer does, or lacks some it does (see cluster's census).
func (m *Map) Census(o Origin) (watermark uint64, live int) {
	if st := m.origins[o]; st != nil {
		return st.watermark, st.live - st.ntombs
	}
	return 0, 0
}

// Digest returns the watermark of every origin the map knows.
func (m *Map) Digest() Digest {
	g := make(Digest, len(m.origins))
	for o, st := range m.origins {
		g[o] = st.watermark
	}
	return g
}
