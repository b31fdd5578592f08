package session

import (
	"testing"
)

// checkInvariants recomputes every room's counts and users from its member
// list and compares them with the incrementally kept aggregates.
func checkInvariants(t *testing.T, e *Engine) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, r := range e.rooms {
		var online, here CountSet
		users := map[string]int{}
		hereUsers := map[string]int{}
		for sid, s := range r.members {
			if s.rec == nil {
				t.Fatalf("room %q lists session %s without a record", name, sid)
			}
			if !s.rooms.has(name) {
				t.Fatalf("room %q lists %s, which has no membership", name, sid)
			}
			online.Connections++
			isHere := s.rec.Location == name
			if isHere {
				here.Connections++
			}
			if s.rec.User == "" {
				online.Anonymous++
				if isHere {
					here.Anonymous++
				}
				continue
			}
			users[s.rec.User]++
			if isHere {
				hereUsers[s.rec.User]++
			}
		}
		online.Users, here.Users = len(users), len(hereUsers)
		if online != r.online || here != r.here {
			t.Fatalf("room %q: kept online %+v here %+v, recomputed %+v %+v", name, r.online, r.here, online, here)
		}
		for u, n := range users {
			ru := r.users[u]
			var la int64
			if ru != nil {
				for _, s := range ru.sessions {
					la = max(la, s.rec.LastActive)
				}
			}
			if ru == nil || len(ru.sessions) != n || ru.state != derivedState(ru.sessions) || ru.lastActive != la {
				t.Fatalf("room %q user %q: kept %+v, want %d sessions", name, u, ru, n)
			}
		}
		for u, ru := range r.users {
			if users[u] == 0 && len(ru.sessions) > 0 {
				t.Fatalf("room %q keeps user %q with no member session", name, u)
			}
		}
	}
	for sid, s := range e.sessions {
		if s.rec == nil {
			continue
		}
		for name := range s.rooms.all() {
			if r := e.rooms[name]; r == nil || r.members[sid] == nil {
				t.Fatalf("session %s is in %q but the room does not list it", sid, name)
			}
		}
	}
	perUser := map[string]int{}
	for _, s := range e.sessions {
		if s.rec != nil && s.rec.User != "" {
			perUser[s.rec.User]++
		}
	}
	for id, u := range e.users {
		if u.count() != perUser[id] || u.count() == 0 {
			t.Fatalf("user %q: kept %d sessions, index has %d", id, u.count(), perUser[id])
		}
	}
	if len(e.users) != len(perUser) {
		t.Fatalf("%d users kept, %d with sessions", len(e.users), len(perUser))
	}
	for sid := range e.owned {
		if s := e.sessions[sid]; s == nil || s.rec == nil {
			t.Fatalf("owned session %s missing from the index", sid)
		}
	}
}
