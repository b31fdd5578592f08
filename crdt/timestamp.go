package crdt

import (
	"strconv"
	"time"
)

// Timestamp is a hybrid logical clock reading packed into 64 bits: the upper 48 bits are
// wall time in milliseconds since the Unix epoch, the lower 16 bits a logical counter.
//
// Timestamps compare as plain integers: a later wall time wins, and within one
// millisecond the higher logical counter wins. 48 bits of milliseconds last
// until the year 10889.
type Timestamp uint64

const (
	logicalBits = 16
	maxWallMS   = 1<<(64-logicalBits) - 1
	maxLogical  = 1<<logicalBits - 1
)

// MakeTimestamp packs a wall time (ms since the Unix epoch) and a logical
// counter. A wall time outside [0, 2^48) is clamped into that range.
func MakeTimestamp(wallMS int64, logical uint16) Timestamp {
	if wallMS < 0 {
		wallMS = 0
	} else if wallMS > maxWallMS {
		wallMS = maxWallMS
	}
	return Timestamp(uint64(wallMS)<<logicalBits | uint64(logical))
}

// WallMS is the wall-clock part in milliseconds since the Unix epoch.
func (t Timestamp) WallMS() int64 { return int64(t >> logicalBits) }

// Logical is the logical counter, which orders readings within one millisecond.
func (t Timestamp) Logical() uint16 { return uint16(t & maxLogical) }

// Time is the wall-clock part as a time.Time (the logical counter is dropped).
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.WallMS()) }

// String renders "wall.logical", e.g. "1700000000000.3".
func (t Timestamp) String() string {
	return strconv.FormatInt(t.WallMS(), 10) + "." + strconv.FormatUint(uint64(t.Logical()), 10)
}
