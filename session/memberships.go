package session

import (
	"iter"
	"slices"
)

// memberships are a session's rooms. A slice, not a map: most sessions are
// in a room or two, a one-entry map costs ~400 bytes, and a replica holds a
// record of every session in the cluster (a heap profile of a 3-node bench
// put 23.5 MB of a node's 155 MB live heap in these maps). Lookups are
// linear, over at most MaxRoomsPerSession entries.
type memberships []membership

type membership struct {
	room string
	rec  memberRecord
}

func (ms memberships) index(room string) int {
	for i := range ms {
		if ms[i].room == room {
			return i
		}
	}
	return -1
}

// get returns the membership of room.
func (ms memberships) get(room string) (memberRecord, bool) {
	if i := ms.index(room); i >= 0 {
		return ms[i].rec, true
	}
	return memberRecord{}, false
}

// has reports whether the session is in room.
func (ms memberships) has(room string) bool { return ms.index(room) >= 0 }

// set adds or replaces the membership of room; it reports whether one was there.
func (ms *memberships) set(room string, mr memberRecord) (existed bool) {
	if i := ms.index(room); i >= 0 {
		(*ms)[i].rec = mr
		return true
	}
	if *ms == nil {
		*ms = make(memberships, 0, 1)
	}
	*ms = append(*ms, membership{room: room, rec: mr})
	return false
}

// del removes the membership of room, if any.
func (ms *memberships) del(room string) {
	if i := ms.index(room); i >= 0 {
		*ms = slices.Delete(*ms, i, i+1)
		if len(*ms) == 0 {
			*ms = nil
		}
	}
}

// all yields every membership, the last first. The loop body may delete
// the membership it was given (as deleting the current key of a map's
// range is allowed): those not yet yielded lie before it and do not move.
// Memberships added during the loop are not yielded.
func (ms memberships) all() iter.Seq2[string, memberRecord] {
	return func(yield func(string, memberRecord) bool) {
		for i := len(ms) - 1; i >= 0; i-- {
			if !yield(ms[i].room, ms[i].rec) {
				return
			}
		}
	}
}
