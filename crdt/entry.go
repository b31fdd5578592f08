package crdt

// Entry is one key of the map as a replica holds it: its value (or a
// tombstone), who wrote it and where the write sits in its writer's log.
type Entry struct {
	Key     string
	Value   []byte  // nil for a tombstone written by Delete
	Deleted bool    // tombstone
	Version Version // Version.Node == Origin.Node
	Origin  Origin
	Seq     uint64 // 1-based, per-origin sequence number assigned by the writer
}

// Change reports a visible change of one key caused by Set, Delete, Merge or DropOrigin.
//
// A change is reported whenever the live entry of a key is created, replaced
// (by any newer version, even one with the same bytes: the owner may have
// changed) or removed. Replacing one tombstone by another is not visible and
// is not reported. Applying the changes in order to a copy of the live
// entries keeps that copy equal to what Range returns.
type Change struct {
	Key     string
	Prev    Entry // the previous live entry, if HadPrev
	HadPrev bool
	Cur     Entry // the new entry; Cur.Deleted for a removal
	Tomb    Entry // the tombstone Cur replaced, if HadTomb
	HadTomb bool
}
