package session

import (
	"errors"
	"fmt"
	"sort"
)

// ErrVersionGap means an event does not follow the view's version: events
// were missed and the view must be rebuilt from a fresh snapshot.
var ErrVersionGap = errors.New("session: room version gap")

// RoomView is a subscriber-side copy of a room: a snapshot plus the events
// that follow it. Clients (and tests) use it to keep a room's member list
// without polling, detecting a missed event by its version.
type RoomView struct {
	Room    string
	Version uint64
	Members map[string]Member // by session
	Typing  map[string]bool   // by session
}

// NewRoomView starts a view from a snapshot.
func NewRoomView(s Snapshot) *RoomView {
	v := &RoomView{}
	v.Reset(s)
	return v
}

// Reset replaces the view with a snapshot (after a gap, a resync).
func (v *RoomView) Reset(s Snapshot) {
	v.Room, v.Version = s.Room, s.Version
	v.Members = make(map[string]Member, len(s.Members))
	for _, m := range s.Members {
		v.Members[m.Session] = m
	}
	v.Typing = make(map[string]bool, len(s.TypingSessions))
	for _, sid := range s.TypingSessions {
		v.Typing[sid] = true
	}
}

// Apply applies one event. An event at or below the view's version is a
// duplicate and is ignored; one beyond Version+1 returns ErrVersionGap and
// leaves the view unchanged.
func (v *RoomView) Apply(ev *Event) error {
	if ev.Version <= v.Version {
		return nil
	}
	if ev.Version != v.Version+1 {
		return fmt.Errorf("%w: have %d, got %d", ErrVersionGap, v.Version, ev.Version)
	}
	v.Version = ev.Version
	switch ev.Type {
	case EventEnter, EventUpdate:
		if ev.Member != nil {
			v.Members[ev.Session] = *ev.Member
		}
	case EventLeave:
		delete(v.Members, ev.Session)
		delete(v.Typing, ev.Session)
	case EventTyping:
		if ev.Typing {
			v.Typing[ev.Session] = true
		} else {
			delete(v.Typing, ev.Session)
		}
	}
	return nil
}

// Sessions lists the view's member sessions, sorted.
func (v *RoomView) Sessions() []string {
	out := make([]string, 0, len(v.Members))
	for sid := range v.Members {
		out = append(out, sid)
	}
	sort.Strings(out)
	return out
}
