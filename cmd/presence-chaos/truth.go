package main

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// truth is the ground truth the driver records: which sessions are really
// connected and which users have at least one, at every instant.
type truth struct {
	mu       sync.Mutex
	sessions map[string]*sessTruth
	users    map[string]*userTruth
	byUser   map[string][]*sessTruth
	opened   int
	start    time.Time // history times are since start
}

type sessTruth struct {
	id, user    string
	room        string
	connected   bool
	since       time.Time // connected since (this connection)
	enteredAt   time.Time // in its room since
	lastConnEnd time.Time // when its last connection ended
	ended       bool      // the session is over: closed, crashed, or its resume failed
	hist        []string  // what happened to it, for violation reports
}

type userTruth struct {
	connected int       // tabs connected now
	since     time.Time // ≥ 1 tab connected continuously since
}

func newTruth(start time.Time) *truth {
	return &truth{sessions: map[string]*sessTruth{}, users: map[string]*userTruth{}, byUser: map[string][]*sessTruth{}, start: start}
}

func (t *truth) user(u string) *userTruth {
	ut := t.users[u]
	if ut == nil {
		ut = &userTruth{}
		t.users[u] = ut
	}
	return ut
}

// connected: a welcome for session id arrived from node (new or resumed).
func (t *truth) connected(id, user, node string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id]
	if s == nil {
		s = &sessTruth{id: id, user: user}
		t.sessions[id] = s
		t.byUser[user] = append(t.byUser[user], s)
		t.opened++
	}
	t.noteLocked(s, now, "on "+node)
	if s.connected {
		return
	}
	s.connected, s.since, s.ended = true, now, false
	ut := t.user(user)
	if ut.connected == 0 {
		ut.since = now
	}
	ut.connected++
}

// entered: the session is in room since now.
func (t *truth) entered(id, room string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sessions[id]; s != nil {
		s.room, s.enteredAt = room, now
	}
}

// disconnected: the session's connection ended at now; end says whether
// the session is over too (closed or crashed for good).
func (t *truth) disconnected(id string, now time.Time, end bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id]
	if s == nil {
		return
	}
	if s.connected {
		s.connected, s.lastConnEnd = false, now
		ut := t.user(s.user)
		ut.connected--
		t.noteLocked(s, now, "cut")
	}
	if end && !s.ended {
		s.ended = true
		t.noteLocked(s, now, "over")
	}
}

// noteLocked appends to a session's history, keeping its first event and
// the latest ones.
func (t *truth) noteLocked(s *sessTruth, now time.Time, what string) {
	s.hist = append(s.hist, fmt.Sprintf("%.1fs %s", now.Sub(t.start).Seconds(), what))
	if len(s.hist) > 12 {
		s.hist = append(s.hist[:1], s.hist[len(s.hist)-11:]...)
	}
}

// history describes what happened to session id, for violation reports.
func (t *truth) history(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sessions[id]
	if !ok {
		return "unknown to the driver"
	}
	return strings.Join(s.hist, ", ")
}

// lookup returns a copy of a session's truth.
func (t *truth) lookup(id string) (sessTruth, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sessions[id]
	if !ok {
		return sessTruth{}, false
	}
	return *s, true
}

// userState: the user has had a tab connected continuously since `since`
// (zero if none now); lastPresent is when any session of theirs last had a
// connection or could still be resumed (now, if one is not over).
func (t *truth) userState(u string, now time.Time) (since, lastPresent time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ut := t.users[u]
	if ut != nil && ut.connected > 0 {
		since = ut.since
	}
	for _, s := range t.byUser[u] {
		switch {
		case s.connected || !s.ended:
			lastPresent = now
		case s.lastConnEnd.After(lastPresent):
			lastPresent = s.lastConnEnd
		}
	}
	return since, lastPresent
}

// liveInRoom lists the sessions connected since before cutoff and in room
// since before cutoff.
func (t *truth) liveInRoom(room string, cutoff time.Time) []sessTruth {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []sessTruth
	for _, s := range t.sessions {
		if s.connected && s.room == room && s.since.Before(cutoff) && s.enteredAt.Before(cutoff) {
			out = append(out, *s)
		}
	}
	return out
}

func (t *truth) counts() (sessions, connected int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sessions {
		if s.connected {
			connected++
		}
	}
	return t.opened, connected
}
