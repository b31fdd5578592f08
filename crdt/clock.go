package crdt

import (
	"errors"
	"sync"
	"time"
)

// ErrClockAhead is returned by Clock.Observe for a remote timestamp too far
// ahead of the local wall clock. Accepting it would drag every later local
// write into the future with it, so the clock stays unchanged.
var ErrClockAhead = errors.New("crdt: remote clock too far ahead")

// DefaultMaxAhead is the skew Clock.Observe tolerates when NewClock gets 0.
const DefaultMaxAhead = 500 * time.Millisecond

// Clock is a hybrid logical clock. Safe for concurrent use (a mutex).
//
// It follows the wall clock when the wall clock moves forward and counts in
// its logical part otherwise, so its readings always increase even when the
// wall clock stands still or steps back, and they stay close to wall time.
type Clock struct {
	mu       sync.Mutex
	now      func() time.Time
	maxAhead int64 // ms
	last     Timestamp
}

// NewClock returns a clock. now is the wall clock (injectable for tests; nil
// means time.Now); maxAhead is how far a remote timestamp may be ahead of local
// wall time before Observe rejects it (0 or less means DefaultMaxAhead, 500 ms).
func NewClock(now func() time.Time, maxAhead time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	if maxAhead <= 0 {
		maxAhead = DefaultMaxAhead
	}
	return &Clock{now: now, maxAhead: maxAhead.Milliseconds()}
}

// Now returns a timestamp greater than every earlier Now result and every accepted Observe.
// When the logical counter would overflow, the wall part is bumped by 1 ms.
func (c *Clock) Now() Timestamp {
	wall := c.now().UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case wall > c.last.WallMS():
		c.last = MakeTimestamp(wall, 0)
	case c.last.Logical() == maxLogical:
		c.last = MakeTimestamp(c.last.WallMS()+1, 0)
	default:
		c.last++
	}
	return c.last
}

// Observe merges a remote timestamp: later Now results are greater than it. It
// returns ErrClockAhead, and leaves the clock unchanged, if the remote wall
// time is more than maxAhead past the local wall time.
func (c *Clock) Observe(remote Timestamp) error {
	wall := c.now().UnixMilli()
	if remote.WallMS() > wall+c.maxAhead {
		return ErrClockAhead
	}
	c.mu.Lock()
	if remote > c.last {
		c.last = remote
	}
	c.mu.Unlock()
	return nil
}
