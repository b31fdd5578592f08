// Package crdt holds the replicated data of presenced: a hybrid logical clock,
// and a last-writer-wins map whose entries are numbered per writer so that
// replicas exchange small deltas instead of whole states.
//
// The package is pure data: no I/O, no goroutines, no imports from the rest of
// the project. The cluster package moves Deltas and Digests between nodes; the
// session package writes entries and turns the reported Changes into events.
//
// # Model
//
// An Origin is one boot (incarnation) of one node. Only the node that owns a
// key writes it; every write gets the writer's next sequence number (Seq) and
// a Version (HLC timestamp, node id). Replicas merge writes by LWW on Version,
// so any order of delivery, any duplication and any grouping of deltas leads
// to the same contents. A replica's Digest says, per origin, up to which Seq
// it holds everything (its watermark); a peer answers with DeltaSince.
//
// # Concurrency
//
// Clock is safe for concurrent use. Map is not: the caller serialises access.
// Its read-only methods (Len, Get, Range, RangePrefix, DeltaSince, Watermark,
// Digest) never modify the map, so they may run concurrently with each other
// under a read lock; every other method needs exclusive access.
//
// # Ownership of byte slices
//
// The map keeps the Value slices it is given (by Set or inside a merged
// Delta) and hands the same slices out again (Get, Range, DeltaSince, Change).
// Nobody may modify a slice after passing it in or getting it out.
//
// See DESIGN.md in this folder for why the map is built this way.
package crdt
