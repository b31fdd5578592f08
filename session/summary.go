package session

import "sort"

// SessionsByNode counts the sessions known here by the node that owns them
// (the writer of each session record) and by state. A dead node's sessions
// are counted under it, stale, until they resume elsewhere or leave.
// It walks every session: for dashboards, not hot paths.
func (e *Engine) SessionsByNode() map[string]map[State]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]map[State]int)
	for _, s := range e.sessions {
		if s.rec == nil {
			continue
		}
		m := out[s.origin.Node]
		if m == nil {
			m = make(map[State]int)
			out[s.origin.Node] = m
		}
		m[s.rec.State]++
	}
	return out
}

// RoomSummary is a room's counts and typists, for listings.
type RoomSummary struct {
	Room    string   `json:"room"`
	Version uint64   `json:"version"`
	Online  CountSet `json:"online"`
	Here    CountSet `json:"here"`
	Typing  []string `json:"typing"`
}

// RoomSummaries lists the rooms with members that keep allows (nil: all),
// busiest first (then by name), at most max of them (0: all), and how many
// there are in all.
func (e *Engine) RoomSummaries(max int, keep func(room string) bool) ([]RoomSummary, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rooms := make([]*room, 0, len(e.rooms))
	for name, r := range e.rooms {
		if r.online.Connections > 0 && (keep == nil || keep(name)) {
			rooms = append(rooms, r)
		}
	}
	sort.Slice(rooms, func(i, j int) bool {
		a, b := rooms[i], rooms[j]
		if a.online.Connections != b.online.Connections {
			return a.online.Connections > b.online.Connections
		}
		return a.name < b.name
	})
	total := len(rooms)
	if max > 0 && len(rooms) > max {
		rooms = rooms[:max]
	}
	out := make([]RoomSummary, 0, len(rooms))
	for _, r := range rooms {
		typing := e.typingLocked(r)
		sort.Strings(typing)
		out = append(out, RoomSummary{Room: r.name, Version: r.version, Online: r.online, Here: r.here, Typing: typing})
	}
	return out, total
}
