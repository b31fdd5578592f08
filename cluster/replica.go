package cluster

import "github.com/presenced/presenced/crdt"

// Replica is the replicated session state of this node, as the cluster needs
// it (session.Engine implements it). The cluster ships this node's entries to
// peers, merges theirs, and reports owners that fail, come back or restart.
type Replica interface {
	Origin() crdt.Origin
	Merge(d crdt.Delta) (gap bool, err error)
	DeltaSince(o crdt.Origin, after uint64, limit int) crdt.Delta
	// AppendDeltaSince is DeltaSince with its entries in dst's array.
	AppendDeltaSince(dst []crdt.Entry, o crdt.Origin, after uint64, limit int) crdt.Delta
	Digest() crdt.Digest
	OriginFailed(o crdt.Origin)
	OriginAlive(o crdt.Origin)
	OriginRetired(o crdt.Origin)
	FailedOrigins() []crdt.Origin // declared dead, entries kept (inside grace)
	Census(o crdt.Origin) (watermark uint64, live int)
	PruneOrigin(o crdt.Origin, keep map[string]struct{}, upTo uint64) int
	CollectTombstones(safe crdt.Digest) int
}
