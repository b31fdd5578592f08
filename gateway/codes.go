package gateway

import (
	"errors"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/session"
)

// Code is a wire-visible error code, sent in {"type":"error","code":...}
// replies and in HTTP error bodies {"error":{"code":...,"message":...}}.
type Code string

// Error codes. None of them closes the connection by itself; the close
// codes below do.
const (
	CodeBadJSON      Code = "bad_json"               // the frame is not a JSON object
	CodeUnknownType  Code = "unknown_type"           // "type" names no message
	CodeBadRequest   Code = "bad_request"            // a field is missing or malformed
	CodeHelloFirst   Code = "hello_required"         // a message came before hello
	CodeInvalidID    Code = "invalid_id"             // an id is empty, too long or has control characters
	CodeInvalidData  Code = "invalid_data"           // data is not JSON
	CodeTooLarge     Code = "too_large"              // data over the per-room limit
	CodeTooManyRooms Code = "too_many_rooms"         // the session is in the most rooms allowed
	CodeRoomFull     Code = "room_full"              // the room's max_members is reached
	CodeNotMember    Code = "not_member"             // update or leave of a room the session is not in
	CodeTooManySubs  Code = "too_many_subscriptions" // the connection already subscribes to the most rooms allowed
	CodeTooManySess  Code = "too_many_sessions"      // the user already has the most sessions allowed on this node
	CodeForbidden    Code = "forbidden"              // the token's caps do not allow this room
	CodeRateLimited  Code = "rate_limited"           // over the per-connection message rate; the message was dropped
	CodeUnauthorized Code = "unauthorized"           // HTTP: missing or invalid token
	CodeNotFound     Code = "not_found"              // HTTP: no such session, room metadata or route
	CodeUnavailable  Code = "unavailable"            // HTTP: the node is not ready (e.g. no raft leader)
	CodeInternal     Code = "internal"               // a bug; logged
)

// WebSocket close codes. 4000–4099 mean "reconnect (with backoff) and resume
// your session"; 4100–4199 mean "do not reconnect until something changes"
// (a new token, a fixed client). 1012 (service restart) means reconnect,
// preferably to another node, after the retry hint in the close reason.
const (
	CloseNormal         websocket.StatusCode = 1000 // the client closed its session
	CloseTooBig         websocket.StatusCode = 1009 // a frame over --max-frame-bytes (sent by the WebSocket library)
	CloseServiceRestart websocket.StatusCode = 1012 // node shutting down; reason "retry_ms=N"

	CloseHeartbeatTimeout websocket.StatusCode = 4000 // nothing received for two heartbeat intervals
	CloseSlowConsumer     websocket.StatusCode = 4001 // the send queue overflowed: the client reads too slowly
	CloseFlood            websocket.StatusCode = 4002 // far over the message rate limit

	CloseUnauthorized  websocket.StatusCode = 4100 // missing or invalid token
	CloseTokenExpired  websocket.StatusCode = 4101 // the token expired: get a new one, then reconnect
	CloseProtocolError websocket.StatusCode = 4102 // no hello in time, or a malformed hello
	CloseSessionEnded  websocket.StatusCode = 4103 // the session was ended by the server (kicked), or resumed on another connection
)

// codeOf maps a session error to its wire code.
func codeOf(err error) Code {
	switch {
	case errors.Is(err, session.ErrInvalidID):
		return CodeInvalidID
	case errors.Is(err, session.ErrInvalidData):
		return CodeInvalidData
	case errors.Is(err, session.ErrDataTooLarge):
		return CodeTooLarge
	case errors.Is(err, session.ErrTooManyRooms):
		return CodeTooManyRooms
	case errors.Is(err, session.ErrTooManySess):
		return CodeTooManySess
	case errors.Is(err, session.ErrRoomFull):
		return CodeRoomFull
	case errors.Is(err, session.ErrNotMember):
		return CodeNotMember
	case errors.Is(err, session.ErrUnknownSession), errors.Is(err, session.ErrNotOwner):
		return CodeNotFound
	}
	return CodeInternal
}
