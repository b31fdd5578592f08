package session

import (
	"time"
)

// scheduleLocked arms o's single lifecycle timer for its next transition:
// idle, away, heartbeat TTL (HTTP sessions) or the end of grace.
func (e *Engine) scheduleLocked(o *owned) {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	s := e.sessions[o.id]
	if s == nil || s.rec == nil {
		return
	}
	next, ok := e.nextDeadlineLocked(o, s)
	if !ok {
		return
	}
	d := next.Sub(e.clock.Now())
	if d < 0 {
		d = 0
	}
	sid := o.id
	var t Timer
	t = e.clock.AfterFunc(d, func() { e.tick(sid, &t) })
	o.timer = t
}

func (e *Engine) nextDeadlineLocked(o *owned, s *sess) (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !o.connected {
		for name := range s.rooms.all() {
			consider(o.staleSince.Add(e.roomConfigLocked(name).Grace))
		}
		consider(o.staleSince.Add(e.sessionGraceLocked(s)))
		return next, true
	}
	if o.kind == KindHTTP {
		consider(o.lastBeat.Add(e.cfg.HeartbeatTTL))
	}
	if o.kind != KindAgent && !o.hidden {
		switch s.rec.State {
		case Active:
			consider(o.lastActive.Add(e.cfg.IdleAfter))
		case Idle:
			consider(o.lastActive.Add(e.cfg.AwayAfter))
		}
	}
	return next, !next.IsZero()
}

// sessionGraceLocked is how long a stale session lives: the longest grace of
// the default and of its rooms' overrides.
func (e *Engine) sessionGraceLocked(s *sess) time.Duration {
	g := e.cfg.Grace
	for name := range s.rooms.all() {
		if rg := e.roomConfigLocked(name).Grace; rg > g {
			g = rg
		}
	}
	return g
}

// tick runs the transitions of one owned session that are due now.
func (e *Engine) tick(sid string, self *Timer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.owned[sid]
	if o == nil || e.closed || o.timer != *self {
		return // ended, or rescheduled since this timer was armed
	}
	o.timer = nil
	s := e.sessions[sid]
	if s == nil || s.rec == nil {
		return
	}
	now := e.clock.Now()
	if o.connected && o.kind == KindHTTP && !now.Before(o.lastBeat.Add(e.cfg.HeartbeatTTL)) {
		e.disconnectLocked(o, s, now)
		return
	}
	if !o.connected {
		stale := now.Sub(o.staleSince)
		if stale >= e.sessionGraceLocked(s) {
			e.endLocked(o, s, goneRecord{Reason: ReasonTimeout})
			return
		}
		for name := range s.rooms.all() {
			if stale >= e.roomConfigLocked(name).Grace {
				e.deleteLocked(memberKey(sid, name), goneRecord{Reason: ReasonTimeout, Epoch: o.epoch})
			}
		}
		e.scheduleLocked(o)
		return
	}
	if o.kind != KindAgent && !o.hidden {
		idle := now.Sub(o.lastActive)
		want := s.rec.State
		switch {
		case idle >= e.cfg.AwayAfter:
			want = Away
		case idle >= e.cfg.IdleAfter:
			want = Idle
		}
		if want != s.rec.State && want.rank() < s.rec.State.rank() {
			e.writeRecordLocked(s, func(r *sessionRecord) { r.State = want })
		}
	}
	e.scheduleLocked(o)
}

// scheduleSweepLocked arms the periodic removal of this node's last-seen
// records older than LastSeenTTL.
func (e *Engine) scheduleSweepLocked() {
	every := e.cfg.LastSeenTTL / 24
	if every > time.Hour {
		every = time.Hour
	}
	e.sweeper = e.clock.AfterFunc(every, e.sweep)
}

func (e *Engine) sweep() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	cutoff := e.clock.Now().Add(-e.cfg.LastSeenTTL).UnixMilli()
	for userID, ls := range e.lastSeen {
		if ls.LastSeen >= cutoff {
			continue
		}
		if ent, ok := e.data.Get(lastSeenKey(userID)); ok && ent.Origin == e.origin {
			e.deleteLocked(lastSeenKey(userID), goneRecord{Reason: ReasonTimeout})
		}
	}
	e.scheduleSweepLocked()
}
