package session

import (
	"encoding/json"
	"errors"
)

// State is the presence state of a session, or the derived state of a user.
type State string

// Session and user states, from strongest to weakest.
const (
	Active  State = "active"
	Idle    State = "idle"
	Away    State = "away"
	Stale   State = "stale"   // connection lost (or owner node failed), inside the grace window
	Offline State = "offline" // only ever derived: no session at all
)

// rank orders states by precedence: active > idle > away > stale > offline.
func (s State) rank() int {
	switch s {
	case Active:
		return 4
	case Idle:
		return 3
	case Away:
		return 2
	case Stale:
		return 1
	}
	return 0
}

// Stronger reports whether s takes precedence over o.
func (s State) Stronger(o State) bool { return s.rank() > o.rank() }

// Reason says why a session left a room or ended.
type Reason string

// Leave reasons.
const (
	ReasonExplicit    Reason = "explicit"     // the client left the room
	ReasonClosed      Reason = "closed"       // the client closed its session
	ReasonTimeout     Reason = "timeout"      // the connection was lost and not resumed inside grace
	ReasonNodeFailure Reason = "node_failure" // the owner node failed and the client did not resume elsewhere
	ReasonKicked      Reason = "kicked"       // removed by a server-side call
)

// Valid reports whether r is one of the documented reasons.
func (r Reason) Valid() bool {
	switch r {
	case ReasonExplicit, ReasonClosed, ReasonTimeout, ReasonNodeFailure, ReasonKicked:
		return true
	}
	return false
}

// Kind says how a session is connected.
type Kind string

// Session kinds.
const (
	KindWebSocket Kind = "ws"    // a WebSocket connection; stale when it drops
	KindHTTP      Kind = "http"  // HTTP heartbeats; stale when the heartbeat TTL passes
	KindAgent     Kind = "agent" // present on behalf of a server-side agent until removed
)

// Device describes the runtime behind a session.
type Device struct {
	Kind     string          `json:"kind,omitempty"`     // desktop | mobile | web | agent (free-form accepted, normalised to lower case)
	Platform string          `json:"platform,omitempty"` // e.g. "ios", "chrome-linux"
	Meta     json.RawMessage `json:"meta,omitempty"`     // free-form JSON
}

// Activity is a client signal about its user's activity.
type Activity string

// Activity signals.
const (
	ActivityActive  Activity = "active"  // input seen (pointer, keyboard, scroll, touch)
	ActivityHidden  Activity = "hidden"  // the tab or app went to the background: away
	ActivityVisible Activity = "visible" // back in the foreground: active
)

// Member is one session's presence in a room.
type Member struct {
	Session    string          `json:"session"`
	User       string          `json:"user,omitempty"`
	Device     Device          `json:"device"`
	State      State           `json:"state"`
	Here       bool            `json:"here"`
	Location   string          `json:"location,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	EnteredAt  int64           `json:"entered_at"`  // unix ms
	LastActive int64           `json:"last_active"` // unix ms
}

// RoomUser is one user's presence in a room, derived from the user's sessions in it.
type RoomUser struct {
	User       string `json:"user"`
	State      State  `json:"state"`
	Sessions   int    `json:"sessions"`
	Here       bool   `json:"here"`
	LastActive int64  `json:"last_active"`
}

// CountSet counts one population of a room.
type CountSet struct {
	Connections int `json:"connections"` // sessions, anonymous ones included
	Users       int `json:"users"`       // unique identified users
	Anonymous   int `json:"anonymous"`   // anonymous sessions
}

// Counts are a room's "online" (members) and "here" (members viewing the room) counts.
type Counts struct {
	Room    string   `json:"room"`
	Version uint64   `json:"version"`
	Online  CountSet `json:"online"`
	Here    CountSet `json:"here"`
}

// UserPresence is a user's presence derived at read time from all their sessions.
type UserPresence struct {
	User       string           `json:"user"`
	State      State            `json:"state"`
	Sessions   int              `json:"sessions"`
	Devices    map[string]State `json:"devices,omitempty"` // per device kind, like Discord's client_status
	LastActive int64            `json:"last_active,omitempty"`
	LastSeen   int64            `json:"last_seen,omitempty"` // now while online; else when the last session ended
	Meta       json.RawMessage  `json:"meta,omitempty"`      // metadata of the most recently active session
}

// Errors returned by Engine operations; the gateway maps each to a documented code.
var (
	ErrUnknownSession = errors.New("session: unknown session")
	ErrNotOwner       = errors.New("session: session owned by another node")
	ErrNotMember      = errors.New("session: not a member of the room")
	ErrTooManyRooms   = errors.New("session: too many rooms for one session")
	ErrTooManySess    = errors.New("session: too many sessions for one user")
	ErrDataTooLarge   = errors.New("session: data too large")
	ErrInvalidID      = errors.New("session: invalid id")
	ErrInvalidData    = errors.New("session: data is not valid JSON")
	ErrRoomFull       = errors.New("session: room is full")
	ErrResumeRejected = errors.New("session: resume rejected")
	ErrClosed         = errors.New("session: engine closed")
)
