package gateway

import (
	"encoding/json"
	"fmt"

	"github.com/presenced/presenced/session"
)

// handle runs one client message; it reports whether the connection is done.
func (c *conn) handle(m inbound) (stop bool) {
	e := c.s.engine
	switch m.Type {
	case "ping":
		c.send(pongMsg{Type: "pong", ID: rawID(m.ID), Time: nowMS()})
	case "enter":
		if !c.identity.Caps.CanEnter(m.Room) {
			c.replyError(m.ID, CodeForbidden, "token does not allow entering "+m.Room)
			return false
		}
		c.ok(m.ID, e.Enter(c.sid, m.Room, m.Data))
	case "update":
		c.ok(m.ID, e.Update(c.sid, m.Room, m.Data))
	case "leave":
		c.ok(m.ID, e.Leave(c.sid, m.Room, session.ReasonExplicit, m.Data))
	case "typing":
		if !c.identity.Caps.CanEnter(m.Room) {
			c.replyError(m.ID, CodeForbidden, "token does not allow typing in "+m.Room)
			return false
		}
		typing := m.Typing == nil || *m.Typing
		c.ok(m.ID, e.Typing(c.sid, m.Room, typing))
	case "location":
		if m.Location == nil {
			c.replyError(m.ID, CodeBadRequest, `location needs "location"`)
			return false
		}
		c.ok(m.ID, e.SetLocation(c.sid, *m.Location))
	case "activity":
		if m.State != session.ActivityActive && m.State != session.ActivityHidden && m.State != session.ActivityVisible {
			c.replyError(m.ID, CodeBadRequest, `activity "state" is active, hidden or visible`)
			return false
		}
		c.ok(m.ID, e.Activity(c.sid, m.State))
	case "subscribe":
		c.subscribe(m)
	case "unsubscribe":
		if sub := c.subs[m.Room]; sub != nil {
			sub.cancel()
			delete(c.subs, m.Room)
		}
		c.ok(m.ID, nil)
	case "query":
		c.query(m)
	case "close":
		reason := m.Reason
		if !reason.Valid() {
			reason = session.ReasonClosed
		}
		err := e.Close(c.sid, reason, m.Data)
		c.ended = true
		c.ok(m.ID, err)
		c.fail(CloseNormal, "session closed")
		return true
	case "hello":
		c.replyError(m.ID, CodeBadRequest, "hello was already received")
	default:
		c.replyError(m.ID, CodeUnknownType, "unknown message type "+quote(m.Type))
	}
	return false
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func (c *conn) subscribe(m inbound) {
	if !c.identity.Caps.CanSubscribe(m.Room) {
		c.replyError(m.ID, CodeForbidden, "token does not allow subscribing to "+m.Room)
		return
	}
	if old := c.subs[m.Room]; old != nil {
		old.cancel() // a second subscribe resyncs: fresh snapshot, same stream
		delete(c.subs, m.Room)
	} else if len(c.subs) >= c.s.cfg.MaxSubscriptions {
		c.replyError(m.ID, CodeTooManySubs, fmt.Sprintf("at most %d subscriptions per connection", c.s.cfg.MaxSubscriptions))
		return
	}
	sub := &subscription{c: c}
	snap, cancel, err := c.s.engine.Subscribe(m.Room, func(ev *session.Event) { sub.deliver(ev.JSON(), ev.Fanout()) })
	if err != nil {
		c.replyErr(m.ID, err)
		return
	}
	sub.cancel = cancel
	c.subs[m.Room] = sub
	b, _ := json.Marshal(snapshotMsg{Type: "snapshot", ID: rawID(m.ID), Snapshot: snap})
	sub.start(b)
}

// query answers the same questions as the HTTP API over the socket.
func (c *conn) query(m inbound) {
	e := c.s.engine
	roomOK := func() bool {
		if m.Room == "" {
			c.replyError(m.ID, CodeBadRequest, `query needs "room"`)
			return false
		}
		if !c.identity.Caps.CanSubscribe(m.Room) {
			c.replyError(m.ID, CodeForbidden, "token does not allow reading "+m.Room)
			return false
		}
		return true
	}
	var data any
	switch m.What {
	case "members":
		if !roomOK() {
			return
		}
		ms, v := e.RoomMembers(m.Room)
		data = membersBody{Room: m.Room, Version: v, Members: ms}
	case "users":
		if !roomOK() {
			return
		}
		us, v := e.RoomUsers(m.Room)
		data = usersBody{Room: m.Room, Version: v, Users: us}
	case "counts":
		if !roomOK() {
			return
		}
		data = e.RoomCounts(m.Room)
	case "typing":
		if !roomOK() {
			return
		}
		data = typingBody{Room: m.Room, Typing: e.TypingUsers(m.Room)}
	case "user":
		if len(m.Users) != 1 {
			c.replyError(m.ID, CodeBadRequest, `query "user" needs "users": [one id]`)
			return
		}
		data = e.UserPresence(m.Users[0])
	case "users_batch":
		if len(m.Users) == 0 || len(m.Users) > c.s.cfg.MaxBatchIDs {
			c.replyError(m.ID, CodeBadRequest, "users_batch takes 1 to 100 ids")
			return
		}
		data = batchBody{Users: e.UsersPresence(m.Users)}
	case "rooms":
		if len(m.Users) != 1 {
			c.replyError(m.ID, CodeBadRequest, `query "rooms" needs "users": [one id]`)
			return
		}
		data = userRoomsBody{User: m.Users[0], Rooms: visibleRooms(c.identity, e.UserRooms(m.Users[0]))}
	case "last_seen":
		if len(m.Users) != 1 {
			c.replyError(m.ID, CodeBadRequest, `query "last_seen" needs "users": [one id]`)
			return
		}
		data = lastSeenBody(e.UserPresence(m.Users[0]))
	default:
		c.replyError(m.ID, CodeBadRequest, "unknown query "+quote(m.What))
		return
	}
	c.send(resultMsg{Type: "result", ID: rawID(m.ID), Data: data})
}
