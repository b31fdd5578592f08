package gateway

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/presenced/presenced/session"
)

// inbound is any client message; which fields count depends on Type (see
// PROTOCOL.md). Unknown fields are ignored so clients can be newer than servers.
type inbound struct {
	Type     string           `json:"type"`
	ID       json.RawMessage  `json:"id,omitempty"` // echoed in the reply, any JSON scalar
	Token    string           `json:"token,omitempty"`
	User     string           `json:"user,omitempty"` // open mode only
	Device   *session.Device  `json:"device,omitempty"`
	Resume   string           `json:"resume,omitempty"`
	Meta     json.RawMessage  `json:"meta,omitempty"`
	Room     string           `json:"room,omitempty"`
	Data     json.RawMessage  `json:"data,omitempty"`
	Typing   *bool            `json:"typing,omitempty"`
	Location *string          `json:"location,omitempty"`
	State    session.Activity `json:"state,omitempty"`
	Reason   session.Reason   `json:"reason,omitempty"`
	What     string           `json:"what,omitempty"` // query
	Users    []string         `json:"users,omitempty"`
}

// inbounds are decodeInbound's targets: json.Unmarshal's target escapes
// to the heap, and a fresh one per message was a tenth of a node's
// allocation in churn. A target is zeroed before it goes back, so what a
// message decoded into (strings, data) is never shared with the next.
var inbounds = sync.Pool{New: func() any { return new(inbound) }}

// decodeInbound parses one client frame. It never panics; errors carry the code to send.
func decodeInbound(b []byte) (inbound, *wireError) {
	if len(b) == 0 || b[0] != '{' {
		return inbound{}, &wireError{Code: CodeBadJSON, Message: "a message is one JSON object"}
	}
	p := inbounds.Get().(*inbound)
	err := json.Unmarshal(b, p)
	m := *p
	*p = inbound{}
	inbounds.Put(p)
	if err != nil {
		return m, &wireError{Code: CodeBadJSON, Message: "malformed JSON: " + err.Error()}
	}
	if m.Type == "" {
		return m, &wireError{Code: CodeBadRequest, Message: `missing "type"`}
	}
	if len(m.ID) > 64 {
		return m, &wireError{Code: CodeBadRequest, Message: `"id" longer than 64 bytes`}
	}
	return m, nil
}

type wireError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *wireError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Outbound messages.

type welcomeMsg struct {
	Type            string `json:"type"` // "welcome"
	ID              any    `json:"id,omitempty"`
	Session         string `json:"session"`
	User            string `json:"user,omitempty"`
	ResumeToken     string `json:"resume_token"`
	Resumed         bool   `json:"resumed"`
	Node            string `json:"node"`
	HeartbeatMS     int64  `json:"heartbeat_ms"`
	GraceMS         int64  `json:"grace_ms"`
	IdleAfterMS     int64  `json:"idle_after_ms"`
	AwayAfterMS     int64  `json:"away_after_ms"`
	TypingTimeoutMS int64  `json:"typing_timeout_ms"`
	Limits          limits `json:"limits"`
}

type limits struct {
	MaxFrameBytes      int     `json:"max_frame_bytes"`
	MaxDataBytes       int     `json:"max_data_bytes"`
	MaxIDBytes         int     `json:"max_id_bytes"`
	MaxRoomsPerSession int     `json:"max_rooms_per_session"`
	RatePerSecond      float64 `json:"rate_per_second"`
}

type okMsg struct {
	Type string `json:"type"` // "ok"
	ID   any    `json:"id,omitempty"`
}

type errorMsg struct {
	Type    string `json:"type"` // "error"
	ID      any    `json:"id,omitempty"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

type snapshotMsg struct {
	Type string `json:"type"` // "snapshot"
	ID   any    `json:"id,omitempty"`
	session.Snapshot
}

type resultMsg struct {
	Type string `json:"type"` // "result"
	ID   any    `json:"id,omitempty"`
	Data any    `json:"data"`
}

type pongMsg struct {
	Type string `json:"type"` // "pong"
	ID   any    `json:"id,omitempty"`
	Time int64  `json:"time"`
}

// rawID keeps a client's id as it was sent.
func rawID(id json.RawMessage) any {
	if len(id) == 0 {
		return nil
	}
	return id
}
