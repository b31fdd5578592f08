package session

import "github.com/presenced/presenced/crdt"

// The methods in this file are the surface the cluster uses to replicate
// session state: it ships this node's entries to peers and merges theirs.

// Merge folds a peer's delta into this node's replica and emits the room
// events it implies. gap reports that the delta does not follow what this
// replica holds of its origin (the cluster then pulls the missing range).
//
// A delta with any entry stamped more than the clock's tolerance (500 ms)
// ahead of this node's wall clock is refused whole with crdt.ErrClockAhead
// and changes nothing: merging it would let a peer with a runaway clock pin
// those keys against every later write. The sender's entries are pulled
// again later, when they are no longer in the future.
func (e *Engine) Merge(d crdt.Delta) (gap bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false, ErrClosed
	}
	if d.Origin == e.origin {
		return false, nil
	}
	if _, ok := e.retired[d.Origin]; ok {
		return false, ErrOriginRetired
	}
	limit := crdt.MakeTimestamp(e.nowMS()+crdt.DefaultMaxAhead.Milliseconds(), 1<<16-1)
	for _, ent := range d.Entries {
		if ent.Version.TS > limit {
			return false, crdt.ErrClockAhead
		}
	}
	for _, ent := range d.Entries {
		_ = e.hlc.Observe(ent.Version.TS)
	}
	changes, gap := e.data.MergeAppend(d, e.mergeBuf[:0])
	for _, c := range changes {
		e.applyLocked(c)
	}
	// Kept for the next merge (under e.mu), unless a large one grew it;
	// cleared so that it holds no values for the GC.
	clear(changes)
	if cap(changes) <= maxMergeBuf {
		e.mergeBuf = changes[:0]
	}
	return gap, nil
}

// maxMergeBuf is the most changes Merge keeps a buffer for between merges.
const maxMergeBuf = 256

// DeltaSince returns origin o's entries after seq (see crdt.Map.DeltaSince).
func (e *Engine) DeltaSince(o crdt.Origin, after uint64, limit int) crdt.Delta {
	return e.AppendDeltaSince(nil, o, after, limit)
}

// AppendDeltaSince is DeltaSince into dst's array (see crdt.Map.AppendDeltaSince).
func (e *Engine) AppendDeltaSince(dst []crdt.Entry, o crdt.Origin, after uint64, limit int) crdt.Delta {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data.AppendDeltaSince(dst, o, after, limit)
}

// Digest returns this replica's per-origin watermarks.
func (e *Engine) Digest() crdt.Digest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data.Digest()
}

// Census reports the watermark and live entry count of origin o here (see
// crdt.Map.Census).
func (e *Engine) Census(o crdt.Origin) (uint64, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data.Census(o)
}

// CollectTombstones drops tombstones every live replica is known to hold
// (safe is the element-wise minimum of their digests); see crdt.Map.
func (e *Engine) CollectTombstones(safe crdt.Digest) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data.CollectTombstones(safe)
}
