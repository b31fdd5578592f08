package crdt

import (
	"cmp"
	"slices"
	"sort"
)

// originState is what a replica knows about one origin: its watermark and the
// log of the entries it currently writes, in seq order.
//
// The log is append-only with lazy deletion: when an entry of this origin is
// overwritten (by the origin itself or by a newer version from another one)
// or removed, its record stays behind as garbage, recognisable because the
// slot it points to has another writer or generation. When more than half
// of the log is garbage it is compacted, so the log is at most about twice the
// live records and each compaction is paid for by the writes that made the
// garbage. DeltaSince finds its start by binary search on seq.
type originState struct {
	Origin
	id        uint32 // index in Map.orgs, plus one
	watermark uint64 // everything with seq <= watermark is held
	maxSeq    uint64 // highest seq ever recorded
	log       []logRec
	live      int      // records in log that are valid
	tombs     []logRec // tombstones of this origin, unordered, lazily deleted
	ntombs    int      // valid records in tombs
	// ahead holds ranges (from, to] of deltas merged past a gap. When the
	// gap fills (a delta that was sent first but took longer, say over TCP
	// while the next went over UDP), the watermark moves past them too
	// instead of stopping short and asking for them again.
	ahead [][2]uint64
}

// maxAhead bounds ahead; the oldest ranges are forgotten (a pull repairs).
const maxAhead = 16

// noteAhead records a delta (from, to] merged beyond the watermark. A range
// that touches or overlaps one held joins it: the pushes that follow a
// late delta are contiguous, each starting where the last ended, and kept
// apart they outgrew maxAhead within a fraction of a second on a busy
// bench node (2k changes/s split into packets), so the range just past the
// gap was forgotten and the late delta, when it came, could not close it:
// every push after it was a gap, and each gap a pull of up to 1,000 entries.
func (st *originState) noteAhead(from, to uint64) {
	if to <= st.watermark {
		return
	}
	kept := st.ahead[:0]
	for _, r := range st.ahead {
		if r[0] <= to && from <= r[1] {
			from, to = min(from, r[0]), max(to, r[1])
			continue
		}
		kept = append(kept, r)
	}
	st.ahead = kept
	if len(st.ahead) == maxAhead {
		st.ahead = append(st.ahead[:0], st.ahead[1:]...)
	}
	st.ahead = append(st.ahead, [2]uint64{from, to})
}

// absorbAhead advances the watermark over the ranges it now reaches.
func (st *originState) absorbAhead() {
	for moved := true; moved && len(st.ahead) > 0; {
		moved = false
		kept := st.ahead[:0]
		for _, r := range st.ahead {
			switch {
			case r[1] <= st.watermark: // covered
			case r[0] <= st.watermark:
				st.watermark, moved = r[1], true
			default:
				kept = append(kept, r)
			}
		}
		st.ahead = kept
	}
	if len(st.ahead) == 0 {
		st.ahead = nil
	}
}

// logRec points from an origin's log to the slot written with seq. It is
// valid while the slot still holds that write: same writer, same generation.
// Comparing generations rather than seqs keeps records unique even when a
// malformed delta reuses a seq.
type logRec struct {
	seq uint64
	idx uint32
	gen uint32
}

// minCompact is the log length below which garbage is left alone.
const minCompact = 32

// valid reports whether r still describes the current write of its slot.
func (m *Map) valid(st *originState, r logRec) bool {
	s := m.slots.at(r.idx)
	return s.org == st.id && s.gen == r.gen
}

// record appends the log record of a write by st just stored in slot idx.
func (m *Map) record(st *originState, seq uint64, idx uint32, tomb bool) {
	rec := logRec{seq: seq, idx: idx, gen: m.slots.at(idx).gen}
	st.log = append(st.log, rec)
	st.live++
	if seq > st.maxSeq {
		st.maxSeq = seq
	}
	if tomb {
		st.tombs = append(st.tombs, rec)
		st.ntombs++
		if len(st.tombs) >= minCompact && len(st.tombs) > 2*st.ntombs {
			st.tombs = m.compactRecs(st, st.tombs, st.ntombs)
		}
	}
}

// unlink accounts for a slot of st that stopped being st's (overwritten or
// removed): its records became garbage.
func (m *Map) unlink(st *originState, tomb bool) {
	st.live--
	if tomb {
		st.ntombs--
	}
	if st != m.hold {
		m.maybeCompact(st)
	}
}

func (m *Map) maybeCompact(st *originState) {
	if len(st.log) >= minCompact && len(st.log) > 2*st.live {
		st.log = m.compactRecs(st, st.log, st.live)
	}
}

// compactRecs keeps the valid records of recs, in order. It shrinks the
// backing array when it is far larger than what remains.
func (m *Map) compactRecs(st *originState, recs []logRec, live int) []logRec {
	out := recs[:0]
	if cap(recs) > 4*live+minCompact {
		out = make([]logRec, 0, live+live/4+1)
	}
	for _, r := range recs {
		if m.valid(st, r) {
			out = append(out, r)
		}
	}
	return out
}

// sortTail restores seq order after Merge appended log[start:] out of order
// (a delta that filled a gap, or entries not sorted by seq). It sorts the new
// records and merges them with the older records that have higher seqs, so the
// cost is proportional to the records appended plus those that arrived early,
// never to the whole log.
func (st *originState) sortTail(start int) {
	log, tail := st.log, st.log[start:]
	slices.SortFunc(tail, func(a, b logRec) int { return cmp.Compare(a.seq, b.seq) })
	p := sort.Search(start, func(i int) bool { return log[i].seq > tail[0].seq })
	if p == start {
		return
	}
	left := slices.Clone(log[p:start])
	i, j, k := 0, start, p
	for i < len(left) && j < len(log) {
		if log[j].seq < left[i].seq {
			log[k] = log[j]
			j++
		} else {
			log[k] = left[i]
			i++
		}
		k++
	}
	copy(log[k:], left[i:])
}

// owner returns the writer of an occupied slot.
func (m *Map) owner(s *slot) *originState { return m.orgs[s.org-1] }

// entry rebuilds the public form of an occupied slot. It allocates nothing:
// strings and the value slice are shared.
func (m *Map) entry(s *slot) Entry {
	st := m.owner(s)
	return Entry{
		Key:     s.key,
		Value:   s.value,
		Deleted: s.deleted(),
		Version: Version{TS: s.ts, Node: st.Node},
		Origin:  st.Origin,
		Seq:     s.seqNum(),
	}
}

// originOf returns the state of o, creating it. Every write goes through
// here first, which is what makes the zero Map usable.
func (m *Map) originOf(o Origin) *originState {
	if m.origins == nil {
		m.index, m.origins = make(map[string]uint32), make(map[Origin]*originState)
	}
	st := m.origins[o]
	if st == nil {
		st = &originState{Origin: o}
		if n := len(m.freeOrgs); n > 0 {
			st.id = m.freeOrgs[n-1]
			m.freeOrgs = m.freeOrgs[:n-1]
			m.orgs[st.id-1] = st
		} else {
			m.orgs = append(m.orgs, st)
			st.id = uint32(len(m.orgs))
		}
		m.origins[o] = st
	}
	return st
}

// forget removes an origin whose entries are all gone.
func (m *Map) forget(st *originState) {
	delete(m.origins, st.Origin)
	m.orgs[st.id-1] = nil
	m.freeOrgs = append(m.freeOrgs, st.id)
}
