package session

import "github.com/presenced/presenced/crdt"

// The methods in this file are the surface the cluster uses to replicate
// session state: it ships this node's entries to peers and merges theirs.

// Merge folds a peer's delta into this node's replica and emits the room
// events it implies. gap reports that the delta does not follow what this
// replica holds of its origin (the cluster then pulls the missing range).
func (e *Engine) Merge(d crdt.Delta) (gap bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || d.Origin == e.origin {
		return false
	}
	for _, ent := range d.Entries {
		_ = e.hlc.Observe(ent.Version.TS) // a clock too far ahead is not followed
	}
	changes, gap := e.data.Merge(d)
	for _, c := range changes {
		e.applyLocked(c)
	}
	return gap
}

// DeltaSince returns origin o's entries after seq (see crdt.Map.DeltaSince).
func (e *Engine) DeltaSince(o crdt.Origin, after uint64, limit int) crdt.Delta {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data.DeltaSince(o, after, limit)
}

// Digest returns this replica's per-origin watermarks.
func (e *Engine) Digest() crdt.Digest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.data.Digest()
}
