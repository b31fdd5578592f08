package session

import "github.com/presenced/presenced/crdt"

// sess is the index's view of one session, built from replicated entries.
type sess struct {
	id     string
	origin crdt.Origin       // writer of the session record: its owner
	rec    *sessionRecord    // nil until the session record is seen
	rooms  memberships       // memberships (pending while rec is nil)
	typing map[string]int64  // room → typing until (unix ms)
	enc    map[string][]byte // room → cached JSON of the member view; dropped on any change
}

func (s *sess) anonymous() bool { return s.rec == nil || s.rec.User == "" }

// user is the index's view of one identified user. Most users have one
// session, so it is held without a map (a one-entry map costs ~250 bytes,
// which matters in a replica of a million sessions).
type user struct {
	one  *sess
	more map[string]*sess // when the user has two or more sessions
}

func (u *user) add(s *sess) {
	switch {
	case u.more != nil:
		u.more[s.id] = s
	case u.one == nil || u.one.id == s.id:
		u.one = s
	default:
		u.more = map[string]*sess{u.one.id: u.one, s.id: s}
		u.one = nil
	}
}

func (u *user) remove(id string) {
	if u.one != nil {
		if u.one.id == id {
			u.one = nil
		}
		return
	}
	delete(u.more, id)
	if len(u.more) == 1 {
		for _, s := range u.more {
			u.one = s
		}
		u.more = nil
	}
}

func (u *user) count() int {
	if u.more != nil {
		return len(u.more)
	}
	if u.one != nil {
		return 1
	}
	return 0
}

func (u *user) each(fn func(*sess)) {
	if u.one != nil {
		fn(u.one)
	}
	for _, s := range u.more {
		fn(s)
	}
}

// room keeps a room's members and its counts incrementally, so counts are
// O(1) and listing is one pass over the members.
type room struct {
	name      string
	version   uint64
	members   map[string]*sess
	users     map[string]*roomUser
	hereUsers map[string]int // user → sessions of that user here
	online    CountSet
	here      CountSet
	typing    map[string]int64 // session → until (unix ms)
	subs      map[*subscriber]struct{}
}

// roomUser is a user's derived presence inside one room. Its sessions are
// a slice (most users have one or two in a room; a map of one costs ~400
// bytes, for every member of every room a replica knows).
type roomUser struct {
	sessions   []*sess
	state      State // last state announced to subscribers
	lastActive int64 // newest LastActive of the sessions, kept by touchUserLocked
}

func newRoom(name string) *room {
	return &room{
		name:      name,
		members:   make(map[string]*sess),
		users:     make(map[string]*roomUser),
		hereUsers: make(map[string]int),
		typing:    make(map[string]int64),
		subs:      make(map[*subscriber]struct{}),
	}
}

func (r *room) empty() bool {
	return len(r.members) == 0 && len(r.typing) == 0 && len(r.subs) == 0
}

func (r *room) isHere(s *sess) bool { return s.rec != nil && s.rec.Location == r.name }

// addCounts adds s to the online counts, and to the here counts if here.
func (r *room) addCounts(s *sess) {
	r.online.Connections++
	if s.anonymous() {
		r.online.Anonymous++
	} else {
		ru := r.users[s.rec.User]
		if ru == nil {
			ru = &roomUser{state: Offline}
			r.users[s.rec.User] = ru
			r.online.Users++
		}
		ru.add(s)
	}
	if r.isHere(s) {
		r.addHere(s)
	}
}

// removeCounts undoes addCounts (with s.rec as it was when added).
func (r *room) removeCounts(s *sess) {
	r.online.Connections--
	if s.anonymous() {
		r.online.Anonymous--
	} else if ru := r.users[s.rec.User]; ru != nil {
		ru.remove(s.id)
		// The roomUser itself is dropped by touchUser once its state is announced.
	}
	if r.isHere(s) {
		r.removeHere(s)
	}
}

func (r *room) addHere(s *sess) {
	r.here.Connections++
	if s.anonymous() {
		r.here.Anonymous++
		return
	}
	r.hereUsers[s.rec.User]++
	if r.hereUsers[s.rec.User] == 1 {
		r.here.Users++
	}
}

func (r *room) removeHere(s *sess) {
	r.here.Connections--
	if s.anonymous() {
		r.here.Anonymous--
		return
	}
	r.hereUsers[s.rec.User]--
	if r.hereUsers[s.rec.User] <= 0 {
		delete(r.hereUsers, s.rec.User)
		r.here.Users--
	}
}

// derivedState is the precedence maximum over a set of sessions.
func derivedState(sessions []*sess) State {
	best := Offline
	for _, s := range sessions {
		if s.rec != nil && s.rec.State.Stronger(best) {
			best = s.rec.State
		}
	}
	return best
}

// add puts s among the user's sessions here (replacing one of its id).
func (ru *roomUser) add(s *sess) {
	for i, x := range ru.sessions {
		if x.id == s.id {
			ru.sessions[i] = s
			return
		}
	}
	ru.sessions = append(ru.sessions, s)
}

// remove takes the session id out of the user's sessions here.
func (ru *roomUser) remove(id string) {
	for i, x := range ru.sessions {
		if x.id == id {
			last := len(ru.sessions) - 1
			ru.sessions[i] = ru.sessions[last]
			ru.sessions[last] = nil
			ru.sessions = ru.sessions[:last]
			if last == 0 {
				ru.sessions = nil
			}
			return
		}
	}
}
