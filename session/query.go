package session

import (
	"slices"
	"sort"
	"time"
)

// memberViewLocked builds the member view of s in room name.
func (e *Engine) memberViewLocked(s *sess, name string) Member {
	m := Member{Session: s.id}
	if mr, ok := s.rooms.get(name); ok {
		m.Data = mr.Data
		m.EnteredAt = mr.EnteredAt
	}
	if s.rec != nil {
		m.User = s.rec.User
		m.Device = s.rec.Device
		m.State = s.rec.State
		m.Location = s.rec.Location
		m.Here = s.rec.Location == name
		m.LastActive = s.rec.LastActive
	}
	return m
}

// watchedViewLocked is s's member view in r for an event, or nil when
// nobody subscribes to r: an event nobody receives is counted, not built.
func (e *Engine) watchedViewLocked(r *room, s *sess) *Member {
	if len(r.subs) == 0 {
		return nil
	}
	m := e.memberViewLocked(s, r.name)
	return &m
}

// memberJSONLocked returns the cached JSON of s's member view in room name.
func (e *Engine) memberJSONLocked(s *sess, name string) []byte {
	if b, ok := s.enc[name]; ok {
		return b
	}
	m := e.memberViewLocked(s, name)
	b := mustJSON(&m)
	if s.enc == nil {
		s.enc = make(map[string][]byte, 1)
	}
	s.enc[name] = b
	return b
}

// AppendMembersJSON appends a room's members to dst as a JSON array (in no
// particular order) and returns the room version. Each member's encoding is
// cached until that member changes, so listing a large room is mostly a copy.
func (e *Engine) AppendMembersJSON(dst []byte, roomID string) ([]byte, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rooms[roomID]
	if r == nil {
		return append(dst, "[]"...), 0
	}
	size := 2 + len(r.members)
	for _, s := range r.members {
		size += len(e.memberJSONLocked(s, r.name))
	}
	dst = slices.Grow(dst, size)
	dst = append(dst, '[')
	first := true
	for _, s := range r.members {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, e.memberJSONLocked(s, r.name)...)
	}
	return append(dst, ']'), r.version
}

func (e *Engine) membersLocked(r *room) []Member {
	out := make([]Member, 0, len(r.members))
	for _, s := range r.members {
		out = append(out, e.memberViewLocked(s, r.name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Session < out[j].Session })
	return out
}

func (e *Engine) roomUsersLocked(r *room) []RoomUser {
	out := make([]RoomUser, 0, len(r.users))
	for id, ru := range r.users {
		if len(ru.sessions) == 0 {
			continue
		}
		// ru.state is kept equal to the derived state by touchUserLocked.
		out = append(out, RoomUser{User: id, State: ru.state, Sessions: len(ru.sessions), Here: r.hereUsers[id] > 0, LastActive: ru.lastActive})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

func (e *Engine) countsLocked(r *room) Counts {
	return Counts{Room: r.name, Version: r.version, Online: r.online, Here: r.here}
}

func (e *Engine) typingLocked(r *room) []string {
	seen := make(map[string]bool, len(r.typing))
	out := make([]string, 0, len(r.typing))
	now := e.nowMS()
	for sid, until := range r.typing {
		if until < now {
			continue // expired: its owner has not removed it (yet)
		}
		id := sid
		if s := e.sessions[sid]; s != nil && s.rec != nil && s.rec.User != "" {
			id = s.rec.User
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (e *Engine) typingSessionsLocked(r *room) []string {
	now := e.nowMS()
	out := make([]string, 0, len(r.typing))
	for sid, until := range r.typing {
		if until >= now {
			out = append(out, sid)
		}
	}
	sort.Strings(out)
	return out
}

// RoomSnapshot returns a room's members, users, counts and typing at one version.
// An unknown room reads as empty at version 0.
func (e *Engine) RoomSnapshot(roomID string) Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rooms[roomID]
	if r == nil {
		r = newRoom(roomID)
	}
	return e.snapshotLocked(r)
}

// RoomMembers lists a room's members (one per session) with the room version.
func (e *Engine) RoomMembers(roomID string) ([]Member, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rooms[roomID]
	if r == nil {
		return []Member{}, 0
	}
	return e.membersLocked(r), r.version
}

// RoomUsers lists a room's identified users, each derived from their sessions in it.
func (e *Engine) RoomUsers(roomID string) ([]RoomUser, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rooms[roomID]
	if r == nil {
		return []RoomUser{}, 0
	}
	return e.roomUsersLocked(r), r.version
}

// RoomCounts returns a room's online and here counts in O(1).
func (e *Engine) RoomCounts(roomID string) Counts {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rooms[roomID]
	if r == nil {
		return Counts{Room: roomID}
	}
	return e.countsLocked(r)
}

// TypingUsers lists who is typing in a room: user ids, deduplicated across
// tabs, and the session id of anonymous typists.
func (e *Engine) TypingUsers(roomID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rooms[roomID]
	if r == nil {
		return []string{}
	}
	return e.typingLocked(r)
}

// UserPresence derives a user's presence from all their sessions, cluster-wide.
func (e *Engine) UserPresence(userID string) UserPresence {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.userPresenceLocked(userID)
}

// UsersPresence derives the presence of several users under one lock.
func (e *Engine) UsersPresence(ids []string) map[string]UserPresence {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]UserPresence, len(ids))
	for _, id := range ids {
		out[id] = e.userPresenceLocked(id)
	}
	return out
}

func (e *Engine) userPresenceLocked(userID string) UserPresence {
	p := UserPresence{User: userID, State: Offline}
	u := e.users[userID]
	if u == nil || u.count() == 0 {
		if ls, ok := e.lastSeenLocked(userID); ok {
			p.LastSeen = ls.LastSeen
			p.LastActive = ls.LastActive
		}
		return p
	}
	p.Sessions = u.count()
	p.Devices = make(map[string]State)
	var metaAt int64 = -1
	u.each(func(s *sess) {
		st := s.rec.State
		if st.Stronger(p.State) {
			p.State = st
		}
		kind := s.rec.Device.Kind
		if kind == "" {
			kind = "unknown"
		}
		if cur, ok := p.Devices[kind]; !ok || st.Stronger(cur) {
			p.Devices[kind] = st
		}
		if s.rec.LastActive > p.LastActive {
			p.LastActive = s.rec.LastActive
		}
		if len(s.rec.Meta) > 0 && s.rec.LastActive > metaAt {
			p.Meta, metaAt = s.rec.Meta, s.rec.LastActive
		}
	})
	p.LastSeen = e.nowMS()
	return p
}

func (e *Engine) lastSeenLocked(userID string) (lastSeenRecord, bool) {
	ls, ok := e.lastSeen[userID]
	if !ok {
		return ls, false
	}
	if e.clock.Now().Sub(time.UnixMilli(ls.LastSeen)) > e.cfg.LastSeenTTL {
		return ls, false
	}
	return ls, true
}

// LastSeen returns when the user was last seen: now if they have a session,
// else when their last session ended (kept for LastSeenTTL).
func (e *Engine) LastSeen(userID string) (time.Time, bool) {
	p := e.UserPresence(userID)
	if p.LastSeen == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(p.LastSeen), true
}

// UserRooms lists the rooms any of the user's sessions is in.
func (e *Engine) UserRooms(userID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	set := make(map[string]bool)
	if u := e.users[userID]; u != nil {
		u.each(func(s *sess) {
			for name := range s.rooms.all() {
				set[name] = true
			}
		})
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// SessionInfo is one session as this node sees it.
type SessionInfo struct {
	Session  string   `json:"session"`
	User     string   `json:"user,omitempty"`
	Kind     Kind     `json:"kind"`
	Device   Device   `json:"device"`
	State    State    `json:"state"`
	Location string   `json:"location,omitempty"`
	Rooms    []string `json:"rooms"`
	Owned    bool     `json:"owned"` // owned (written) by this node
}

// Session returns what this node knows of one session.
func (e *Engine) Session(sid string) (SessionInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessions[sid]
	if s == nil || s.rec == nil {
		return SessionInfo{}, false
	}
	info := SessionInfo{Session: sid, User: s.rec.User, Kind: s.rec.Kind, Device: s.rec.Device,
		State: s.rec.State, Location: s.rec.Location, Rooms: make([]string, 0, len(s.rooms))}
	for name := range s.rooms.all() {
		info.Rooms = append(info.Rooms, name)
	}
	sort.Strings(info.Rooms)
	_, info.Owned = e.owned[sid]
	return info, true
}

// Stats are engine-wide gauges and counters for metrics.
type Stats struct {
	Sessions      int    // sessions known cluster-wide
	OwnedSessions int    // sessions this node owns
	Users         int    // users with at least one session
	Rooms         int    // rooms with members, typists or subscribers
	Subscribers   int    // room subscriptions on this node
	Events        uint64 // room events emitted since start
	Deliveries    uint64 // event deliveries to subscribers since start
	Entries       int    // live entries in the replicated map
	Tombstones    int    // removals kept until every replica holds them
}

type counters struct {
	events      uint64
	deliveries  uint64
	subscribers int
}

// Stats returns current gauges and counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{
		Sessions: len(e.sessions), OwnedSessions: len(e.owned), Users: len(e.users), Rooms: len(e.rooms),
		Subscribers: e.stats.subscribers, Events: e.stats.events, Deliveries: e.stats.deliveries,
		Entries: e.data.Len(), Tombstones: e.data.Tombstones(),
	}
}
