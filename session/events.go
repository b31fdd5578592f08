package session

import (
	"encoding/json"
)

// EventType names a room event.
type EventType string

// Room event types.
const (
	EventEnter   EventType = "enter"   // a session entered the room (Member set)
	EventLeave   EventType = "leave"   // a session left (Member, Reason, optional Data)
	EventUpdate  EventType = "update"  // a member's data, state or location changed (Member)
	EventTyping  EventType = "typing"  // a session started or stopped typing (Typing)
	EventOnline  EventType = "online"  // a user's first session in the room (State)
	EventOffline EventType = "offline" // a user's last session left the room
	EventState   EventType = "state"   // a user's derived state in the room changed (State)
)

// Event is one change of a room, numbered by a per-room version: a
// subscriber that sees version v+2 after v has missed one and must resync.
type Event struct {
	Type    EventType       `json:"type"`
	Room    string          `json:"room"`
	Version uint64          `json:"version"`
	Time    int64           `json:"time"` // unix ms
	Session string          `json:"session,omitempty"`
	User    string          `json:"user,omitempty"`
	Member  *Member         `json:"member,omitempty"`
	Reason  Reason          `json:"reason,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	State   State           `json:"state,omitempty"`
	Typing  bool            `json:"typing,omitempty"`

	raw    []byte
	fanout int
}

// JSON is the event's wire encoding, computed once per event however many
// subscribers receive it.
func (ev *Event) JSON() []byte { return ev.raw }

// Fanout is how many subscribers of this node receive the event.
func (ev *Event) Fanout() int { return ev.fanout }

// Snapshot is a room's state at Version; events with Version+1 onwards follow it.
type Snapshot struct {
	Room    string     `json:"room"`
	Version uint64     `json:"version"`
	Members []Member   `json:"members"`
	Users   []RoomUser `json:"users"`
	Counts  Counts     `json:"counts"`
	Typing  []string   `json:"typing"` // users typing (anonymous typists as their session id)
	// TypingSessions lists the typing sessions, which typing events name.
	TypingSessions []string `json:"typing_sessions"`
}

type subscriber struct {
	sink   func(*Event)
	closed bool
}

// emitLocked numbers ev in r's sequence, encodes it once and hands it to
// every subscriber of r. (ev is copied to the heap only when someone
// receives it: its Member is nil when nobody subscribes, see
// watchedViewLocked.)
func (e *Engine) emitLocked(r *room, ev Event) {
	r.version++
	ev.Room = r.name
	ev.Version = r.version
	ev.Time = e.nowMS()
	e.stats.events++
	if len(r.subs) == 0 {
		return
	}
	p := new(Event)
	*p = ev
	p.raw = encodeEvent(p)
	p.fanout = len(r.subs)
	for s := range r.subs {
		s.sink(p)
	}
	e.stats.deliveries += uint64(len(r.subs))
}

// Subscribe registers sink for r's events and returns the room's snapshot at
// the version the first delivered event follows. sink is called with the
// engine's mutex held, in version order; it must not block or call the
// engine. cancel is idempotent.
func (e *Engine) Subscribe(roomID string, sink func(*Event)) (Snapshot, func(), error) {
	if err := e.validID(roomID); err != nil {
		return Snapshot{}, nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Snapshot{}, nil, ErrClosed
	}
	r := e.roomLocked(roomID)
	sub := &subscriber{sink: sink}
	r.subs[sub] = struct{}{}
	e.stats.subscribers++
	snap := e.snapshotLocked(r)
	cancel := func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if sub.closed {
			return
		}
		sub.closed = true
		e.stats.subscribers--
		if r := e.rooms[roomID]; r != nil {
			delete(r.subs, sub)
			e.dropRoomIfEmptyLocked(r)
		}
	}
	return snap, cancel, nil
}

func (e *Engine) snapshotLocked(r *room) Snapshot {
	return Snapshot{
		Room:    r.name,
		Version: r.version,
		Members: e.membersLocked(r),
		Users:   e.roomUsersLocked(r),
		Counts:  e.countsLocked(r),
		Typing:  e.typingLocked(r),

		TypingSessions: e.typingSessionsLocked(r),
	}
}
