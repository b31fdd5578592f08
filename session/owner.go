package session

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// owned is the owner-side runtime of a session this node writes: precise
// activity times and timers that the replicated record only summarises.
type owned struct {
	id         string
	attach     uint64 // bumped by every Open/Resume: a Disconnect of an older attachment is ignored
	epoch      uint64 // the record's Epoch when this node took the session (0: opened here)
	kind       Kind
	connected  bool
	hidden     bool
	lastActive time.Time
	lastBeat   time.Time // HTTP heartbeat sessions
	staleSince time.Time
	timer      Timer
	typing     map[string]Timer // room → typing expiry
}

func (o *owned) stopTimers() {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	for room, t := range o.typing {
		t.Stop()
		delete(o.typing, room)
	}
}

// OpenRequest opens a session.
type OpenRequest struct {
	ID       string          // optional fixed id (HTTP heartbeat sessions); random if empty
	User     string          // "" for an anonymous session
	Kind     Kind            // KindWebSocket if empty
	Device   Device          //
	Meta     json.RawMessage // session-level metadata (≤ MaxDataBytes)
	Location string          // what the session is viewing, optional
}

// Opened describes an opened or resumed session.
type Opened struct {
	Session     string `json:"session"`
	ResumeToken string `json:"resume_token,omitempty"`
	Resumed     bool   `json:"resumed"`
	Existing    bool   `json:"-"` // Open found the fixed id already open
	// Attach numbers this attachment of a client to the session; pass it to
	// Disconnect so that a connection replaced by a resume cannot mark the
	// resumed session stale.
	Attach uint64 `json:"-"`
}

func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("session: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:16])
}

// Open starts a session owned by this node.
func (e *Engine) Open(req OpenRequest) (Opened, error) {
	if req.User != "" {
		if err := e.validID(req.User); err != nil {
			return Opened{}, err
		}
	}
	if req.Location != "" {
		if err := e.validID(req.Location); err != nil {
			return Opened{}, err
		}
	}
	if err := e.validData(req.Meta); err != nil {
		return Opened{}, err
	}
	if err := e.validData(req.Device.Meta); err != nil {
		return Opened{}, fmt.Errorf("device meta: %w", err)
	}
	if req.Kind == "" {
		req.Kind = KindWebSocket
	}
	sid := req.ID
	if sid == "" {
		sid = randomID(12)
	} else if err := e.validID(sid); err != nil || strings.Contains(sid, "/") {
		return Opened{}, fmt.Errorf("%w: session id", ErrInvalidID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Opened{}, ErrClosed
	}
	if _, ok := e.owned[sid]; ok {
		return Opened{Session: sid, Existing: true}, nil
	}
	if req.User != "" && e.ownedByUserLocked(req.User) >= e.cfg.MaxSessionsPerUser {
		return Opened{}, fmt.Errorf("%w: limit %d", ErrTooManySess, e.cfg.MaxSessionsPerUser)
	}
	now := e.clock.Now()
	secret := randomID(18)
	rec := sessionRecord{
		User: req.User, Device: normalizeDevice(req.Device), Kind: req.Kind, State: Active,
		Location: req.Location, ConnectedAt: now.UnixMilli(), LastActive: now.UnixMilli(),
		SecretHash: hashSecret(secret), Meta: req.Meta,
	}
	o := &owned{id: sid, attach: 1, kind: req.Kind, connected: true, lastActive: now, lastBeat: now}
	e.owned[sid] = o
	e.setLocked(sessionKey(sid), rec.marshal())
	e.scheduleLocked(o)
	return Opened{Session: sid, ResumeToken: sid + "." + secret, Attach: o.attach}, nil
}

// Resume reattaches a client to its session with the token Open returned.
// user must be the session's user: a token of another user's session is
// rejected before anything changes. Inside grace nothing is announced but the
// member's state going back to active: subscribers see no leave and no enter.
func (e *Engine) Resume(token, user string) (Opened, error) {
	sid, secret, ok := strings.Cut(token, ".")
	if !ok || sid == "" || secret == "" {
		return Opened{}, ErrResumeRejected
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Opened{}, ErrClosed
	}
	s := e.sessions[sid]
	if s == nil || s.rec == nil || s.rec.User != user ||
		subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(s.rec.SecretHash)) != 1 {
		return Opened{}, ErrResumeRejected
	}
	now := e.clock.Now()
	// Every resume starts a new owner epoch, above the record's and, as a
	// wall-clock time, above any other node's earlier resume that this one
	// has not heard of (a client that went back and forth between nodes).
	epoch := max(s.rec.Epoch+1, uint64(now.UnixMilli()))
	o := e.owned[sid]
	if o != nil {
		o.epoch = max(o.epoch+1, epoch)
	} else {
		// The session was owned by another node: take it over by writing its
		// entries again as this node, with a newer clock. The old owner sees
		// its entries lose and drops its copy (see applySessionLocked).
		o = &owned{id: sid, kind: s.rec.Kind, epoch: epoch}
		e.owned[sid] = o
		if ce := e.log.Check(zapcore.DebugLevel, "session taken over"); ce != nil {
			ce.Write(zap.String("session", sid), zap.Stringer("from", s.origin), zap.Uint64("epoch", o.epoch))
		}
		for name, mr := range s.rooms.all() {
			e.setLocked(memberKey(sid, name), mustJSON(mr))
		}
	}
	o.attach++
	o.connected, o.hidden = true, false
	o.lastActive, o.lastBeat, o.staleSince = now, now, time.Time{}
	rec := *s.rec
	rec.State, rec.LastActive, rec.Epoch = Active, now.UnixMilli(), o.epoch
	e.setLocked(sessionKey(sid), rec.marshal())
	e.scheduleLocked(o)
	return Opened{Session: sid, ResumeToken: token, Resumed: true, Attach: o.attach}, nil
}

// ownedByUserLocked counts the sessions of user that this node owns.
func (e *Engine) ownedByUserLocked(user string) int {
	n := 0
	if u := e.users[user]; u != nil {
		u.each(func(s *sess) {
			if _, ok := e.owned[s.id]; ok {
				n++
			}
		})
	}
	return n
}

// withOwned runs fn with the engine locked, on session sid, which this node
// must own.
func (e *Engine) withOwned(sid string, fn func(o *owned, s *sess) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, s, err := e.ownedLocked(sid)
	if err != nil {
		return err
	}
	return fn(o, s)
}

// ownedLocked returns the owned session sid with its record.
func (e *Engine) ownedLocked(sid string) (*owned, *sess, error) {
	if e.closed {
		return nil, nil, ErrClosed
	}
	o := e.owned[sid]
	s := e.sessions[sid]
	if o == nil || s == nil || s.rec == nil {
		if s != nil && s.rec != nil {
			return nil, nil, ErrNotOwner
		}
		return nil, nil, ErrUnknownSession
	}
	return o, s, nil
}

// writeRecordLocked writes s's record after fn changes a copy of it.
func (e *Engine) writeRecordLocked(s *sess, fn func(*sessionRecord)) {
	rec := *s.rec
	fn(&rec)
	e.setLocked(sessionKey(s.id), rec.marshal())
}

// Disconnect marks a session's connection lost: it goes stale and leaves
// its rooms after the grace window unless resumed. attach is the Attach of
// the Opened that connection got (0 for "whichever"): when the session has
// been resumed since, by a newer attachment, nothing happens.
func (e *Engine) Disconnect(sid string, attach uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, s, err := e.ownedLocked(sid)
	if err != nil || !o.connected || (attach != 0 && attach != o.attach) {
		return
	}
	e.disconnectLocked(o, s, e.clock.Now())
}

func (e *Engine) disconnectLocked(o *owned, s *sess, at time.Time) {
	if ce := e.log.Check(zapcore.DebugLevel, "session disconnected: stale"); ce != nil {
		ce.Write(zap.String("session", s.id))
	}
	o.connected = false
	o.staleSince = at
	for name := range o.typing {
		e.stopTypingLocked(o, name)
	}
	e.writeRecordLocked(s, func(r *sessionRecord) { r.State = Stale })
	e.scheduleLocked(o)
}

// Close ends a session at once: it leaves every room with reason and data.
func (e *Engine) Close(sid string, reason Reason, data json.RawMessage) error {
	if !reason.Valid() {
		reason = ReasonClosed
	}
	if err := e.validData(data); err != nil {
		return err
	}
	return e.withOwned(sid, func(o *owned, s *sess) error {
		e.endLocked(o, s, goneRecord{Reason: reason, Data: data})
		return nil
	})
}

func (e *Engine) endLocked(o *owned, s *sess, gone goneRecord) {
	if ce := e.log.Check(zapcore.DebugLevel, "session ended"); ce != nil {
		ce.Write(zap.String("session", s.id), zap.String("reason", string(gone.Reason)))
	}
	o.stopTimers()
	delete(e.owned, o.id)
	gone.Epoch = o.epoch
	userID, lastActive := s.rec.User, s.rec.LastActive
	for name := range s.typing {
		e.deleteLocked(typingKey(s.id, name), goneRecord{Reason: gone.Reason})
	}
	for name := range s.rooms.all() {
		e.deleteLocked(memberKey(s.id, name), gone)
	}
	e.deleteLocked(sessionKey(s.id), goneRecord{Reason: gone.Reason, Epoch: gone.Epoch})
	if userID != "" && e.users[userID] == nil {
		if ls, ok := e.lastSeen[userID]; ok && ls.LastActive > lastActive {
			lastActive = ls.LastActive
		}
		e.setLocked(lastSeenKey(userID), mustJSON(lastSeenRecord{LastSeen: e.nowMS(), LastActive: lastActive}))
	}
}

// Activity applies a client's activity signal to a session it owns.
func (e *Engine) Activity(sid string, a Activity) error {
	return e.withOwned(sid, func(o *owned, s *sess) error {
		now := e.clock.Now()
		switch a {
		case ActivityActive, ActivityVisible:
			o.hidden = false
			o.lastActive = now
			// Write when the state changes, and otherwise refresh the replicated
			// last-active time at most every IdleAfter/4, not on every input.
			stale := now.Sub(time.UnixMilli(s.rec.LastActive)) >= e.cfg.IdleAfter/4
			if s.rec.State != Active || stale {
				e.writeRecordLocked(s, func(r *sessionRecord) { r.State, r.LastActive = Active, now.UnixMilli() })
			}
		case ActivityHidden:
			o.hidden = true
			if s.rec.State != Away {
				e.writeRecordLocked(s, func(r *sessionRecord) { r.State = Away })
			}
		default:
			return fmt.Errorf("%w: unknown activity %q", ErrInvalidData, a)
		}
		e.scheduleLocked(o)
		return nil
	})
}

// Heartbeat keeps an HTTP-heartbeat session alive for another HeartbeatTTL;
// a stale one is live again (no leave or enter is seen).
func (e *Engine) Heartbeat(sid string) error {
	return e.withOwned(sid, func(o *owned, s *sess) error {
		now := e.clock.Now()
		o.lastBeat = now
		if !o.connected {
			o.connected, o.staleSince = true, time.Time{}
			st := Active
			if o.hidden {
				st = Away
			}
			e.writeRecordLocked(s, func(r *sessionRecord) { r.State = st })
		}
		e.scheduleLocked(o)
		return nil
	})
}

// SetMeta replaces a session's metadata (the seed API's heartbeat metadata).
func (e *Engine) SetMeta(sid string, meta json.RawMessage) error {
	if err := e.validData(meta); err != nil {
		return err
	}
	return e.withOwned(sid, func(_ *owned, s *sess) error {
		if string(s.rec.Meta) != string(meta) {
			e.writeRecordLocked(s, func(r *sessionRecord) { r.Meta = meta })
		}
		return nil
	})
}

// SetLocation records what the session is viewing ("" for nothing); a room
// counts the session "here" while its location is the room's id.
func (e *Engine) SetLocation(sid, location string) error {
	if location != "" {
		if err := e.validID(location); err != nil {
			return err
		}
	}
	return e.withOwned(sid, func(_ *owned, s *sess) error {
		if s.rec.Location != location {
			e.writeRecordLocked(s, func(r *sessionRecord) { r.Location = location })
		}
		return nil
	})
}
