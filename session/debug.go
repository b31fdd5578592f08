package session

import (
	"slices"
	"strconv"
)

// SessionDebug is what one node holds of one session, for diagnosing a
// disagreement between nodes (presence-chaos prints it with a violation):
// its replicated entries as stored (tombstones included) and the index's view.
type SessionDebug struct {
	Owned     bool         `json:"owned"`
	Epoch     uint64       `json:"epoch,omitempty"` // when owned
	Connected bool         `json:"connected,omitempty"`
	Record    bool         `json:"record"`           // the index has its record
	State     State        `json:"state,omitempty"`  // the record's state as the index holds it
	Writer    string       `json:"writer,omitempty"` // the origin the index took the record from
	Rooms     []string     `json:"rooms"`            // memberships the index holds (pending if no record)
	Failed    bool         `json:"owner_failed,omitempty"`
	FailedAll []string     `json:"failed_origins,omitempty"` // every origin this node holds as failed
	Entries   []EntryDebug `json:"entries"`
}

// EntryDebug is one replicated entry as stored.
type EntryDebug struct {
	Key     string `json:"key"`
	Present bool   `json:"present"` // false: this node holds nothing under key
	Origin  string `json:"origin,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Version string `json:"version,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	Epoch   uint64 `json:"epoch,omitempty"`  // the owner epoch a record or removal carries
	Reason  Reason `json:"reason,omitempty"` // a removal's
}

// DebugSession reports what this node holds of session sid: its record and
// its memberships of rooms (and of every room the index knows it in).
func (e *Engine) DebugSession(sid string, rooms []string) SessionDebug {
	e.mu.Lock()
	defer e.mu.Unlock()
	var d SessionDebug
	if o := e.owned[sid]; o != nil {
		d.Owned, d.Epoch, d.Connected = true, o.epoch, o.connected
	}
	if s := e.sessions[sid]; s != nil {
		d.Record = s.rec != nil
		if s.rec != nil {
			d.State, d.Writer = s.rec.State, s.origin.String()
		}
		for name := range s.rooms.all() {
			d.Rooms = append(d.Rooms, name)
			if !slices.Contains(rooms, name) {
				rooms = append(rooms, name)
			}
		}
		slices.Sort(d.Rooms)
		_, d.Failed = e.failed[s.origin]
	}
	for o := range e.failed {
		d.FailedAll = append(d.FailedAll, o.String())
	}
	slices.Sort(d.FailedAll)
	keys := []string{sessionKey(sid)}
	for _, r := range rooms {
		keys = append(keys, memberKey(sid, r))
	}
	for _, k := range keys {
		ent, ok := e.data.Lookup(k)
		ed := EntryDebug{Key: k, Present: ok}
		if ok {
			ed.Origin, ed.Seq, ed.Deleted = ent.Origin.String(), ent.Seq, ent.Deleted
			ed.Version = strconv.FormatUint(uint64(ent.Version.TS), 10) + "@" + ent.Version.Node
			if k == keys[0] {
				ed.Epoch, _ = epochOf(ent)
			} else if ent.Deleted {
				ed.Epoch = decodeGone(ent).Epoch
			}
			if ent.Deleted {
				ed.Reason = decodeGone(ent).Reason
			}
		}
		d.Entries = append(d.Entries, ed)
	}
	return d
}
