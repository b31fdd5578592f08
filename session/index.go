package session

import (
	"encoding/json"
	"strings"

	"github.com/presenced/presenced/crdt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// applyLocked folds one visible change of the replicated map into the
// indices (sessions, rooms, users, last seen) and emits the room events it
// implies. Local writes and remote merges both come through here.
func (e *Engine) applyLocked(c crdt.Change) {
	switch {
	case strings.HasPrefix(c.Key, prefixSession):
		sid := c.Key[len(prefixSession):]
		if e.reassertEndLocked(sid, c) {
			return
		}
		e.applySessionLocked(sid, c.Cur)
	case strings.HasPrefix(c.Key, prefixMember):
		if sid, rm, ok := splitSessionRoom(c.Key[len(prefixMember):]); ok {
			if e.reassertMemberLocked(sid, rm, c.Cur) {
				return
			}
			e.applyMemberLocked(sid, rm, c.Cur)
		}
	case strings.HasPrefix(c.Key, prefixTyping):
		if sid, rm, ok := splitSessionRoom(c.Key[len(prefixTyping):]); ok {
			e.applyTypingLocked(sid, rm, c.Cur)
		}
	case strings.HasPrefix(c.Key, prefixLastSeen):
		e.applyLastSeenLocked(c.Key[len(prefixLastSeen):], c.Cur)
	}
}

func decodeGone(ent crdt.Entry) goneRecord {
	var g goneRecord
	if len(ent.Value) > 0 {
		_ = decodeGoneRecord(ent.Value, &g) // an undecodable reason reads as "closed"
	}
	if !g.Reason.Valid() {
		g.Reason = ReasonClosed
	}
	return g
}

func (e *Engine) sessLocked(sid string, create bool) *sess {
	s := e.sessions[sid]
	if s == nil && create {
		s = &sess{id: sid} // rooms is made on the first membership: most sessions of a big replica are in few rooms
		e.sessions[sid] = s
	}
	return s
}

func (e *Engine) roomLocked(name string) *room {
	r := e.rooms[name]
	if r == nil {
		r = newRoom(name)
		e.rooms[name] = r
	}
	return r
}

func (e *Engine) dropRoomIfEmptyLocked(r *room) {
	if r.empty() {
		delete(e.rooms, r.name)
	}
}

func (e *Engine) applySessionLocked(sid string, ent crdt.Entry) {
	if o := e.owned[sid]; o != nil && ent.Origin != e.origin && e.reassertLocked(o, sid, ent) {
		return
	}
	if o := e.owned[sid]; o != nil && ent.Origin != e.origin {
		// Another node's write won over ours: the client resumed there (or it
		// ended the session). That node owns it now; drop our copy and its
		// timers, so our grace timer cannot end a session live elsewhere.
		o.stopTimers()
		delete(e.owned, sid)
		if ce := e.log.Check(zapcore.DebugLevel, "session owned elsewhere now: dropped ours"); ce != nil {
			ce.Write(zap.String("session", sid), zap.Stringer("writer", ent.Origin), zap.Bool("deleted", ent.Deleted))
		}
	}
	s := e.sessLocked(sid, !ent.Deleted)
	if s == nil {
		return
	}
	if ent.Deleted {
		if ce := e.log.Check(zapcore.DebugLevel, "session removed"); ce != nil {
			ce.Write(zap.String("session", sid), zap.Stringer("writer", ent.Origin))
		}
		e.removeSessionLocked(s, decodeGone(ent))
		return
	}
	var rec sessionRecord
	if err := rec.unmarshal(ent.Value); err != nil {
		e.log.Warn("undecodable session record ignored")
		return
	}
	s.origin = ent.Origin
	if _, failed := e.failed[ent.Origin]; failed {
		rec.State = Stale // its owner is down: present for grace, not live
	}
	if rec.State.rank() == 0 {
		rec.State = Stale // a state this version does not know: present, but not live
	}
	old := s.rec
	s.enc = nil // every member view of this session may change
	if old == nil {
		s.rec = &rec
		if rec.User != "" {
			u := e.users[rec.User]
			if u == nil {
				u = &user{}
				e.users[rec.User] = u
			}
			u.add(s)
		}
		for name := range s.rooms.all() {
			e.memberEnterLocked(e.roomLocked(name), s)
		}
		return
	}
	if old.User != rec.User {
		// A session never changes user; treat it as leave + enter.
		e.removeSessionLocked(s, goneRecord{Reason: ReasonClosed})
		e.applySessionLocked(sid, ent)
		return
	}
	s.rec = &rec
	for name := range s.rooms.all() {
		r := e.roomLocked(name)
		wasHere, isHere := old.Location == name, rec.Location == name
		switch {
		case wasHere && !isHere:
			r.removeHere(s)
		case !wasHere && isHere:
			r.addHere(s)
		}
	}
	if memberVisibleChange(old, &rec) {
		for name := range s.rooms.all() {
			r := e.rooms[name]
			e.emitLocked(r, Event{Type: EventUpdate, Session: sid, User: rec.User, Member: e.watchedViewLocked(r, s)})
			e.touchUserLocked(r, rec.User)
		}
	}
}

// memberVisibleChange reports whether a session record change shows in the
// member view (so subscribers get an update).
func memberVisibleChange(a, b *sessionRecord) bool {
	return a.State != b.State || a.Location != b.Location || a.LastActive != b.LastActive ||
		a.Device.Kind != b.Device.Kind || a.Device.Platform != b.Device.Platform
}

func (e *Engine) removeSessionLocked(s *sess, gone goneRecord) {
	if s.rec != nil {
		for name := range s.rooms.all() {
			if r := e.rooms[name]; r != nil {
				e.memberLeaveLocked(r, s, gone)
			}
		}
		for name := range s.typing {
			if r := e.rooms[name]; r != nil {
				e.typingOffLocked(r, s)
			}
		}
		if u := e.users[s.rec.User]; u != nil {
			u.remove(s.id)
			if u.count() == 0 {
				delete(e.users, s.rec.User)
			}
		}
	}
	// Memberships still in the replica (written by another origin than the
	// removed record: an old owner's late write, a takeover's) stay pending,
	// like memberships that arrive before their record: if a record comes
	// again (a resync, a takeover), the session is back in its rooms.
	s.rec, s.enc = nil, nil
	if len(s.rooms) == 0 {
		delete(e.sessions, s.id)
	}
}

func (e *Engine) applyMemberLocked(sid, name string, ent crdt.Entry) {
	s := e.sessLocked(sid, !ent.Deleted)
	if s == nil {
		return
	}
	delete(s.enc, name)
	if ent.Deleted {
		if !s.rooms.has(name) {
			return
		}
		if ce := e.log.Check(zapcore.DebugLevel, "membership removed"); ce != nil {
			ce.Write(zap.String("session", sid), zap.String("room", name), zap.Stringer("writer", ent.Origin))
		}
		if s.rec != nil {
			if r := e.rooms[name]; r != nil {
				e.memberLeaveLocked(r, s, decodeGone(ent))
			}
		}
		s.rooms.del(name)
		if s.rec == nil && len(s.rooms) == 0 {
			delete(e.sessions, sid)
		}
		return
	}
	mr, err := decodeMemberRecord(ent.Value)
	if err != nil {
		e.log.Warn("undecodable membership ignored")
		return
	}
	existed := s.rooms.set(name, mr)
	if s.rec == nil {
		return
	}
	r := e.roomLocked(name)
	if existed {
		e.emitLocked(r, Event{Type: EventUpdate, Session: sid, User: s.rec.User, Member: e.watchedViewLocked(r, s)})
		return
	}
	e.memberEnterLocked(r, s)
}

func (e *Engine) memberEnterLocked(r *room, s *sess) {
	r.members[s.id] = s
	r.addCounts(s)
	e.emitLocked(r, Event{Type: EventEnter, Session: s.id, User: s.rec.User, Member: e.watchedViewLocked(r, s)})
	e.touchUserLocked(r, s.rec.User)
}

func (e *Engine) memberLeaveLocked(r *room, s *sess, gone goneRecord) {
	if _, ok := r.members[s.id]; !ok {
		return
	}
	m := e.watchedViewLocked(r, s)
	delete(r.members, s.id)
	r.removeCounts(s)
	e.emitLocked(r, Event{Type: EventLeave, Session: s.id, User: s.rec.User, Member: m, Reason: gone.Reason, Data: gone.Data})
	e.touchUserLocked(r, s.rec.User)
	e.dropRoomIfEmptyLocked(r)
}

// touchUserLocked re-derives a user's state in a room and announces it when it
// changed: online (was offline), offline (no session left), or state.
func (e *Engine) touchUserLocked(r *room, userID string) {
	if userID == "" {
		return
	}
	ru := r.users[userID]
	if ru == nil {
		return
	}
	if len(ru.sessions) == 0 {
		delete(r.users, userID)
		r.online.Users--
		if ru.state != Offline {
			e.emitLocked(r, Event{Type: EventOffline, User: userID, State: Offline})
		}
		return
	}
	ru.lastActive = 0
	for _, s := range ru.sessions {
		ru.lastActive = max(ru.lastActive, s.rec.LastActive)
	}
	now := derivedState(ru.sessions)
	if now == ru.state {
		return
	}
	prev := ru.state
	ru.state = now
	if prev == Offline {
		e.emitLocked(r, Event{Type: EventOnline, User: userID, State: now})
		return
	}
	e.emitLocked(r, Event{Type: EventState, User: userID, State: now})
}

func (e *Engine) applyTypingLocked(sid, name string, ent crdt.Entry) {
	s := e.sessLocked(sid, false)
	if ent.Deleted {
		if s == nil {
			return
		}
		if r := e.rooms[name]; r != nil {
			e.typingOffLocked(r, s)
		}
		return
	}
	if s == nil || s.rec == nil {
		return // typing of a session we do not know yet is not shown
	}
	var tr typingRecord
	if err := json.Unmarshal(ent.Value, &tr); err != nil {
		return
	}
	r := e.roomLocked(name)
	_, was := r.typing[sid]
	r.typing[sid] = tr.Until
	if s.typing == nil {
		s.typing = make(map[string]int64)
	}
	s.typing[name] = tr.Until
	if !was {
		e.emitLocked(r, Event{Type: EventTyping, Session: sid, User: s.rec.User, Typing: true})
	}
}

func (e *Engine) typingOffLocked(r *room, s *sess) {
	if _, ok := r.typing[s.id]; !ok {
		return
	}
	delete(r.typing, s.id)
	delete(s.typing, r.name)
	userID := ""
	if s.rec != nil {
		userID = s.rec.User
	}
	e.emitLocked(r, Event{Type: EventTyping, Session: s.id, User: userID, Typing: false})
	e.dropRoomIfEmptyLocked(r)
}

func (e *Engine) applyLastSeenLocked(userID string, ent crdt.Entry) {
	if ent.Deleted {
		delete(e.lastSeen, userID)
		return
	}
	var ls lastSeenRecord
	if err := json.Unmarshal(ent.Value, &ls); err == nil {
		e.lastSeen[userID] = ls
	}
}

// Owner epochs. A session's owner writes its keys with the session's
// takeover epoch (0 when opened, +1 at each resume on another node). An
// owner that was cut off (frozen, partitioned) may notice its client's
// dropped connection only after the client resumed elsewhere, and then write
// the session's record (stale) or removals with a newer clock but an older
// epoch. Such a write wins by the clock; the node that owns the session now,
// or that ended it, writes its own state again with a clock that has
// observed the stale one, so its state wins everywhere and the old owner
// drops its copy. Only that node writes: every other one just applies.

// epochOf is the owner epoch a session record or removal carries.
func epochOf(ent crdt.Entry) (uint64, bool) {
	if ent.Deleted {
		return decodeGone(ent).Epoch, true
	}
	var rec sessionRecord
	if rec.unmarshal(ent.Value) != nil {
		return 0, false
	}
	return rec.Epoch, true
}

// reassertLocked: an older owner's record or removal of a session we own
// won on the clock: write our record and memberships again. Reports whether
// it did.
func (e *Engine) reassertLocked(o *owned, sid string, ent crdt.Entry) bool {
	if ep, ok := epochOf(ent); !ok || ep >= o.epoch {
		return false
	}
	s := e.sessions[sid]
	if s == nil || s.rec == nil {
		return false
	}
	if ce := e.log.Check(zapcore.DebugLevel, "session re-asserted over an older owner's write"); ce != nil {
		ce.Write(zap.String("session", sid), zap.Stringer("writer", ent.Origin))
	}
	mine := *s.rec
	mine.Epoch = o.epoch
	e.setLocked(sessionKey(sid), mine.marshal())
	for name, mr := range s.rooms.all() {
		e.setLocked(memberKey(sid, name), mustJSON(mr))
	}
	return true
}

// reassertEndLocked: an older owner's record replaced our removal of a
// session we had taken over and then ended: remove it again. Reports
// whether it did.
func (e *Engine) reassertEndLocked(sid string, c crdt.Change) bool {
	if !c.HadTomb || c.Tomb.Origin != e.origin || c.Cur.Deleted || c.Cur.Origin == e.origin {
		return false
	}
	ended := decodeGone(c.Tomb)
	if ep, ok := epochOf(c.Cur); !ok || ep >= ended.Epoch {
		return false
	}
	if ce := e.log.Check(zapcore.DebugLevel, "session ended here re-removed over an older owner's write"); ce != nil {
		ce.Write(zap.String("session", sid), zap.Stringer("writer", c.Cur.Origin))
	}
	e.deleteLocked(sessionKey(sid), ended)
	return true
}

// reassertMemberLocked: an older owner's removal of a membership of a
// session we own won on the clock: write the membership again. Or another
// node wrote a membership of a session we ended (an old owner acting on a
// message it read late): remove it again. Reports whether it did either.
func (e *Engine) reassertMemberLocked(sid, name string, ent crdt.Entry) bool {
	if !ent.Deleted && ent.Origin != e.origin {
		if end, ok := e.data.Lookup(sessionKey(sid)); ok && end.Deleted && end.Origin == e.origin {
			ended := decodeGone(end)
			e.deleteLocked(memberKey(sid, name), goneRecord{Reason: ended.Reason, Epoch: ended.Epoch})
			return true
		}
	}
	o := e.owned[sid]
	if o == nil || !ent.Deleted || ent.Origin == e.origin || decodeGone(ent).Epoch >= o.epoch {
		return false
	}
	s := e.sessions[sid]
	if s == nil {
		return false
	}
	mr, ok := s.rooms.get(name)
	if !ok {
		return false
	}
	e.setLocked(memberKey(sid, name), mustJSON(mr))
	return true
}
