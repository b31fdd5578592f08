package session

import (
	"encoding/json"
	"fmt"
	"time"
)

// Enter puts a session it owns into a room with data; entering a room it is
// already in updates the data in place.
func (e *Engine) Enter(sid, roomID string, data json.RawMessage) error {
	if err := e.validID(roomID); err != nil {
		return err
	}
	if err := e.validData(data); err != nil {
		return err
	}
	return e.withOwned(sid, func(_ *owned, s *sess) error {
		if mr, ok := s.rooms.get(roomID); ok {
			mr.Data = data
			e.setLocked(memberKey(sid, roomID), mustJSON(mr))
			return nil
		}
		if len(s.rooms) >= e.cfg.MaxRoomsPerSession {
			return fmt.Errorf("%w: limit %d", ErrTooManyRooms, e.cfg.MaxRoomsPerSession)
		}
		if rc := e.roomConfigLocked(roomID); rc.MaxMembers > 0 {
			if r := e.rooms[roomID]; r != nil && r.online.Connections >= rc.MaxMembers {
				return fmt.Errorf("%w: %d members", ErrRoomFull, rc.MaxMembers)
			}
		}
		e.setLocked(memberKey(sid, roomID), mustJSON(memberRecord{Data: data, EnteredAt: e.nowMS()}))
		return nil
	})
}

// Update replaces a member's data in place (no leave and enter).
func (e *Engine) Update(sid, roomID string, data json.RawMessage) error {
	if err := e.validData(data); err != nil {
		return err
	}
	return e.withOwned(sid, func(_ *owned, s *sess) error {
		mr, ok := s.rooms.get(roomID)
		if !ok {
			return ErrNotMember
		}
		mr.Data = data
		e.setLocked(memberKey(sid, roomID), mustJSON(mr))
		return nil
	})
}

// Leave takes a session out of a room; reason is ReasonExplicit unless given
// (ReasonKicked for a server-side removal).
func (e *Engine) Leave(sid, roomID string, reason Reason, data json.RawMessage) error {
	if err := e.validData(data); err != nil {
		return err
	}
	if !reason.Valid() {
		reason = ReasonExplicit
	}
	return e.withOwned(sid, func(o *owned, s *sess) error {
		if !s.rooms.has(roomID) {
			return ErrNotMember
		}
		e.stopTypingLocked(o, roomID)
		e.deleteLocked(memberKey(sid, roomID), goneRecord{Reason: reason, Data: data, Epoch: o.epoch})
		return nil
	})
}

// Typing marks a session typing in a room (until the room's typing timeout
// unless refreshed) or stops it. A session need not be a member to type.
func (e *Engine) Typing(sid, roomID string, typing bool) error {
	if err := e.validID(roomID); err != nil {
		return err
	}
	return e.withOwned(sid, func(o *owned, _ *sess) error {
		if !typing {
			e.stopTypingLocked(o, roomID)
			return nil
		}
		timeout := e.roomConfigLocked(roomID).TypingTimeout
		until := e.clock.Now().Add(timeout)
		e.setLocked(typingKey(sid, roomID), mustJSON(typingRecord{Until: until.UnixMilli()}))
		if o.typing == nil {
			o.typing = make(map[string]Timer)
		}
		if t := o.typing[roomID]; t != nil {
			t.Stop()
		}
		o.typing[roomID] = e.clock.AfterFunc(timeout, func() { e.typingExpired(sid, roomID, until) })
		return nil
	})
}

func (e *Engine) typingExpired(sid, roomID string, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, s, err := e.ownedLocked(sid)
	if err != nil || s.typing[roomID] != until.UnixMilli() {
		return // refreshed or already stopped
	}
	e.stopTypingLocked(o, roomID)
}

func (e *Engine) stopTypingLocked(o *owned, roomID string) {
	if t := o.typing[roomID]; t != nil {
		t.Stop()
		delete(o.typing, roomID)
	}
	if s := e.sessions[o.id]; s != nil {
		if _, ok := s.typing[roomID]; ok {
			e.deleteLocked(typingKey(o.id, roomID), goneRecord{Reason: ReasonExplicit})
		}
	}
}
