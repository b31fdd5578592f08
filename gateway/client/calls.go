package client

import (
	"context"
	"encoding/json"

	"github.com/presenced/presenced/session"
)

func (c *Client) simple(ctx context.Context, msg map[string]any) error {
	_, err := c.Call(ctx, msg)
	return err
}

// roomReq is an enter, leave, update or typing, or (without a room) a ping:
// the load generator's calls, marshalled from a struct rather than a map
// (whose keys are sorted at every marshal).
type roomReq struct {
	Type   string `json:"type"`
	ID     int64  `json:"id"`
	Room   string `json:"room,omitempty"`
	Data   any    `json:"data,omitempty"`
	Typing *bool  `json:"typing,omitempty"`
}

func (c *Client) roomCall(ctx context.Context, r roomReq) ([]byte, error) {
	r.ID = c.nextID.Add(1)
	return c.call(ctx, r.ID, &r)
}

// Enter enters a room with optional data (nil for none).
func (c *Client) Enter(ctx context.Context, room string, data any) error {
	_, err := c.roomCall(ctx, roomReq{Type: "enter", Room: room, Data: data})
	return err
}

// Update replaces this session's data in a room.
func (c *Client) Update(ctx context.Context, room string, data any) error {
	if data == nil {
		data = json.RawMessage("null")
	}
	_, err := c.roomCall(ctx, roomReq{Type: "update", Room: room, Data: data})
	return err
}

// Leave leaves a room, with optional data for the leave event.
func (c *Client) Leave(ctx context.Context, room string, data any) error {
	_, err := c.roomCall(ctx, roomReq{Type: "leave", Room: room, Data: data})
	return err
}

// Typing starts or stops typing in a room.
func (c *Client) Typing(ctx context.Context, room string, typing bool) error {
	_, err := c.roomCall(ctx, roomReq{Type: "typing", Room: room, Typing: &typing})
	return err
}

// Location says what this session is viewing ("" for nothing).
func (c *Client) Location(ctx context.Context, location string) error {
	return c.simple(ctx, map[string]any{"type": "location", "location": location})
}

// Activity reports user activity: session.ActivityActive, ActivityHidden or ActivityVisible.
func (c *Client) Activity(ctx context.Context, a session.Activity) error {
	return c.simple(ctx, map[string]any{"type": "activity", "state": a})
}

// Ping is the heartbeat; it returns the server's time in unix ms.
func (c *Client) Ping(ctx context.Context) (int64, error) {
	b, err := c.roomCall(ctx, roomReq{Type: "ping"})
	if err != nil {
		return 0, err
	}
	var p struct {
		Time int64 `json:"time"`
	}
	err = json.Unmarshal(b, &p)
	return p.Time, err
}

// Subscribe subscribes to a room's events and returns its snapshot; events
// with versions after the snapshot's follow on Events().
func (c *Client) Subscribe(ctx context.Context, room string) (session.Snapshot, error) {
	b, err := c.Call(ctx, map[string]any{"type": "subscribe", "room": room})
	if err != nil {
		return session.Snapshot{}, err
	}
	var s session.Snapshot
	err = json.Unmarshal(b, &s)
	return s, err
}

// Unsubscribe stops a room's events.
func (c *Client) Unsubscribe(ctx context.Context, room string) error {
	return c.simple(ctx, map[string]any{"type": "unsubscribe", "room": room})
}

// Query runs a query (what: members, users, counts, typing, user,
// users_batch, rooms, last_seen) and decodes its data into out.
func (c *Client) Query(ctx context.Context, what, room string, users []string, out any) error {
	m := map[string]any{"type": "query", "what": what}
	if room != "" {
		m["room"] = room
	}
	if users != nil {
		m["users"] = users
	}
	b, err := c.Call(ctx, m)
	if err != nil {
		return err
	}
	var r struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	return json.Unmarshal(r.Data, out)
}

// CloseSession ends the session at once (leave events with reason, e.g.
// session.ReasonClosed) and the server closes the connection.
func (c *Client) CloseSession(ctx context.Context, reason session.Reason, data any) error {
	m := map[string]any{"type": "close", "reason": reason}
	if data != nil {
		m["data"] = data
	}
	err := c.simple(ctx, m)
	select {
	case <-c.done:
	case <-ctx.Done():
		c.ws.CloseNow()
		<-c.done
	}
	return err
}
