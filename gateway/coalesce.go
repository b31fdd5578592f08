package gateway

import "time"

// Events of a busy room are coalesced. One socket write per event and
// subscriber was a third of a node's CPU in the fan-out bench (1,200
// subscribers of one room, 130 updates/s): the syscall costs the same
// for one event as for ten. So an event of a room with bulkFanout or more
// subscribers on this node does not start a flush at once: the connection
// joins a batch that is flushed within coalesceWindow, and everything
// queued for it by then goes out in one write (one frame, events separated
// by '\n'). A connection with something else to send (an answer, an event
// of a small room) flushes at once, and takes the waiting events with it.
// Rooms with fewer subscribers, where a write per event is cheap, are not
// delayed.
const (
	bulkFanout     = 100
	coalesceWindow = 25 * time.Millisecond
)

// flushLater adds c to the batch of delayed flushes, starting its timer if
// it is the first. Called with c.mu held (lock order: c.mu, then lateMu).
func (s *Server) flushLater(c *conn) {
	s.lateMu.Lock()
	defer s.lateMu.Unlock()
	s.late = append(s.late, c)
	if !s.lateArmed {
		s.lateArmed = true
		s.lateTimer = time.AfterFunc(s.cfg.coalesceWindow, s.flushLate)
	}
}

// flushLate hands the batch's connections to the writers, waiting for a
// free one each time (a goroutine per connection of a batch of hundreds
// would grow its stack for every batch). After Close it flushes them
// itself: they are ending.
func (s *Server) flushLate() {
	s.lateMu.Lock()
	batch := s.late
	s.late, s.lateArmed = nil, false
	s.lateMu.Unlock()
	for _, c := range batch {
		c.mu.Lock()
		c.late = false
		start := c.claimFlushLocked()
		c.mu.Unlock()
		if !start {
			continue
		}
		select {
		case s.writers.ch <- c:
		case <-s.stop:
			c.flush()
		}
	}
}
