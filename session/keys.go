package session

import (
	"encoding/json"
	"strings"
)

// Keys of the replicated map. A session id never contains '/', so the room
// part of a membership or typing key is everything after the second '/'.
//
//	s/<session>          sessionRecord: who, device, state, location
//	m/<session>/<room>   memberRecord: the session is in the room, with data
//	t/<session>/<room>   typingRecord: the session is typing in the room
//	u/<user>             lastSeenRecord: when the user's last session ended
//
// A tombstone's value carries a goneRecord (why the entry went away), so every
// node reports the same leave reason.
const (
	prefixSession  = "s/"
	prefixMember   = "m/"
	prefixTyping   = "t/"
	prefixLastSeen = "u/"
)

func sessionKey(sid string) string      { return prefixSession + sid }
func memberKey(sid, room string) string { return prefixMember + sid + "/" + room }
func typingKey(sid, room string) string { return prefixTyping + sid + "/" + room }
func lastSeenKey(user string) string    { return prefixLastSeen + user }
func memberPrefix(sid string) string    { return prefixMember + sid + "/" }
func splitSessionRoom(rest string) (sid, room string, ok bool) {
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// sessionRecord is the replicated state of one session.
type sessionRecord struct {
	User        string          `json:"u,omitempty"`
	Device      Device          `json:"d"`
	Kind        Kind            `json:"k"`
	State       State           `json:"st"`
	Location    string          `json:"loc,omitempty"`
	ConnectedAt int64           `json:"ca"`
	LastActive  int64           `json:"la"`
	SecretHash  string          `json:"sh,omitempty"` // hex SHA-256 of the resume secret
	Meta        json.RawMessage `json:"meta,omitempty"`
	// Epoch goes up by one each time another node takes the session over
	// (a resume there). A write of an older epoch never takes ownership
	// back, even with a newer clock: see applySessionLocked.
	Epoch uint64 `json:"ep,omitempty"`
}

// memberRecord is the replicated membership of a session in a room.
type memberRecord struct {
	Data      json.RawMessage `json:"data,omitempty"`
	EnteredAt int64           `json:"at"`
}

// typingRecord marks a session typing in a room until Until (unix ms).
type typingRecord struct {
	Until int64 `json:"until"`
}

// lastSeenRecord keeps a user's last-seen time after their last session ended.
type lastSeenRecord struct {
	LastSeen   int64 `json:"seen"`
	LastActive int64 `json:"active,omitempty"`
}

// goneRecord is the value of a tombstone: why the entry ended.
type goneRecord struct {
	Reason Reason          `json:"r,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Epoch  uint64          `json:"e,omitempty"` // the removing owner's takeover epoch (session and membership keys)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("session: marshal of an internal record failed: " + err.Error())
	}
	return b
}
