package crdt

import (
	"slices"
	"sort"
)

// Delta carries the entries of one origin with seq in (From, To] (entries with seq > To may be
// included too; merge is idempotent).
//
// A replica whose watermark for Origin is at least From holds everything up
// to To once it has merged the delta.
type Delta struct {
	Origin  Origin
	From    uint64
	To      uint64
	Entries []Entry
}

// Merge applies a remote delta. Entries whose Origin != d.Origin are ignored. Each entry is applied by LWW
// on Version (an equal Version is a duplicate: no change). A tombstone for an unknown key is stored (so an
// older write arriving later cannot resurrect it) but reports no Change. Watermark of d.Origin: if
// watermark >= d.From it becomes max(watermark, d.To), and then moves on over the ranges of deltas merged
// earlier past a gap that it now reaches; otherwise gap is true and the watermark stays (the entries are
// still applied: LWW makes that safe; their range is remembered). Returns only visible changes (live value changed,
// created or removed), in the delta's order.
//
// Entries are also ignored when Version.Node differs from Origin.Node or Seq
// is 0 or above MaxSeq. Equal Versions written by two incarnations of one node
// are ordered by incarnation; within one origin a higher Seq wins an equal
// Version. The map keeps the entries' Value slices.
//
// Cost: O(len(d.Entries)) map operations, plus amortised log compaction, plus,
// when entries arrive below seqs already held (a gap being filled), sorting
// those entries into the origin's log.
func (m *Map) Merge(d Delta) (changes []Change, gap bool) {
	return m.MergeAppend(d, nil)
}

// MergeAppend is Merge, appending the changes to buf (a caller that handles
// them at once can reuse one buffer, and the GC sees none of it).
func (m *Map) MergeAppend(d Delta, buf []Change) (changes []Change, gap bool) {
	changes = buf
	st := m.originOf(d.Origin)
	m.hold = st
	start, inOrder := len(st.log), true
	var last uint64
	if start > 0 {
		last = st.log[start-1].seq
	}
	for i := range d.Entries {
		e := &d.Entries[i]
		if e.Origin != d.Origin || e.Version.Node != e.Origin.Node || e.Seq == 0 || e.Seq > MaxSeq {
			continue
		}
		idx, exists := m.index[e.Key]
		if exists {
			s := m.slots.at(idx)
			c := compareVersion(e.Version.TS, e.Origin, s.ts, m.owner(s).Origin)
			if c < 0 || c == 0 && e.Seq <= s.seqNum() {
				continue
			}
		}
		if e.Seq < last {
			inOrder = false
		}
		last = e.Seq
		c, visible := m.store(st, e.Key, e.Value, e.Version.TS, e.Seq, e.Deleted, idx, exists)
		if visible {
			if cap(changes) == 0 {
				changes = make([]Change, 0, min(len(d.Entries)-i, 256))
			}
			changes = append(changes, c)
		}
	}
	m.hold = nil
	if !inOrder {
		st.sortTail(start)
	}
	m.maybeCompact(st)
	if st.watermark >= d.From {
		st.watermark = max(st.watermark, d.To)
		st.absorbAhead()
	} else {
		gap = true
		st.noteAhead(d.From, d.To)
	}
	return changes, gap
}

// DeltaSince returns o's entries (live and tombstones) currently written by o with seq > after, in seq
// order, at most limit entries (limit <= 0: all). From = after. To = Watermark(o) if not truncated;
// if truncated, To = min(seq of the last included entry, Watermark(o)).
//
// It costs O(log n) to find the start plus the entries returned and the
// garbage records skipped (at most as many as live records). It does not
// modify the map.
func (m *Map) DeltaSince(o Origin, after uint64, limit int) Delta {
	return m.AppendDeltaSince(nil, o, after, limit)
}

// AppendDeltaSince is DeltaSince with its entries in dst's array when they
// fit (a sender reuses one from push to push; what it held is
// overwritten). Entries is nil when there are none.
func (m *Map) AppendDeltaSince(dst []Entry, o Origin, after uint64, limit int) Delta {
	d := Delta{Origin: o, From: after}
	st := m.origins[o]
	if st == nil {
		return d
	}
	log := st.log
	i := sort.Search(len(log), func(i int) bool { return log[i].seq > after })
	n := len(log) - i
	if limit > 0 && n > limit {
		n = limit
	}
	if n > 0 {
		d.Entries = slices.Grow(dst[:0], n)
	}
	truncated := false
	for ; i < len(log); i++ {
		if !m.valid(st, log[i]) {
			continue
		}
		if limit > 0 && len(d.Entries) == limit {
			truncated = true
			break
		}
		d.Entries = append(d.Entries, m.entry(m.slots.at(log[i].idx)))
	}
	if len(d.Entries) == 0 {
		d.Entries = nil // only garbage records were found
	}
	d.To = st.watermark
	if truncated {
		d.To = min(d.To, d.Entries[len(d.Entries)-1].Seq)
	}
	return d
}
