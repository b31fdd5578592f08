package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the room-metadata store. Every error returned by Meta
// wraps one of them (or a context error); test with errors.Is.
var (
	// ErrNotFound: the room has no metadata.
	ErrNotFound = errors.New("cluster: room metadata not found")
	// ErrInvalid: the request was rejected before it changed anything
	// (a field out of range, or a request id reused for a different command).
	ErrInvalid = errors.New("cluster: invalid room metadata")
	// ErrNotLeader: this node cannot accept writes now. The write was not
	// started; retry on the leader (or, after the next issue, on any node).
	ErrNotLeader = errors.New("cluster: not the raft leader")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("cluster: metadata store closed")
	// ErrUnknownOutcome: the write was handed to raft but we do not know
	// whether it committed (leadership was lost, or ctx ended while waiting).
	// Retrying with the same request id is safe: if the first attempt
	// committed, the retry returns its result and changes nothing.
	ErrUnknownOutcome = errors.New("cluster: write outcome unknown, retry with the same request id")
)

// Limits enforced by Validate.
const (
	MaxRoomIDBytes   = 128
	MaxMetadataBytes = 4 << 10
	// maxRequestIDBytes bounds the idempotency window's memory (10,000 ids).
	maxRequestIDBytes = 128
)

// Visibility values accepted by Validate ("" means the server default).
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
)

// RoomMeta is a room's settings. Zero values mean "use the server default".
//
// Values returned by Meta are copies; Version and UpdatedAt are set by the
// store (any value the caller puts there is ignored).
type RoomMeta struct {
	Room            string          `json:"room"`
	GraceMS         int64           `json:"grace_ms,omitempty"`          // reconnect grace override
	MaxMembers      int             `json:"max_members,omitempty"`       // 0: unlimited / server default
	TypingTimeoutMS int64           `json:"typing_timeout_ms,omitempty"` // typing indicator expiry override
	Visibility      string          `json:"visibility,omitempty"`        // "", "public" or "private"
	Metadata        json.RawMessage `json:"metadata,omitempty"`          // custom JSON, at most 4 KiB
	Version         uint64          `json:"version"`                     // raft log index of the last write
	UpdatedAt       time.Time       `json:"updated_at"`                  // proposer's clock at the last write
}

// Validate checks the caller-settable fields. Errors wrap ErrInvalid.
func (m RoomMeta) Validate() error {
	switch {
	case len(m.Room) == 0 || len(m.Room) > MaxRoomIDBytes:
		return fmt.Errorf("%w: room id must be 1..%d bytes, got %d", ErrInvalid, MaxRoomIDBytes, len(m.Room))
	case m.GraceMS < 0:
		return fmt.Errorf("%w: grace_ms must not be negative", ErrInvalid)
	case m.MaxMembers < 0:
		return fmt.Errorf("%w: max_members must not be negative", ErrInvalid)
	case m.TypingTimeoutMS < 0:
		return fmt.Errorf("%w: typing_timeout_ms must not be negative", ErrInvalid)
	}
	switch m.Visibility {
	case "", VisibilityPublic, VisibilityPrivate:
	default:
		return fmt.Errorf("%w: visibility must be %q or %q, got %q", ErrInvalid, VisibilityPublic, VisibilityPrivate, m.Visibility)
	}
	if len(m.Metadata) > MaxMetadataBytes {
		return fmt.Errorf("%w: metadata is %d bytes, limit %d", ErrInvalid, len(m.Metadata), MaxMetadataBytes)
	}
	if len(m.Metadata) > 0 && !json.Valid(m.Metadata) {
		return fmt.Errorf("%w: metadata is not valid JSON", ErrInvalid)
	}
	return nil
}

// clone returns m with its own copy of Metadata, so callers cannot reach
// the FSM's memory.
func (m RoomMeta) clone() RoomMeta {
	if m.Metadata != nil {
		m.Metadata = bytes.Clone(m.Metadata)
	}
	return m
}
