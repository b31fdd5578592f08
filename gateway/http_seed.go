package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/presenced/presenced/session"
)

// The routes in this file speak the request and response shapes of the
// Redis-TTL heartbeat pattern (seed 001) so an app written against it works
// when pointed at presenced. Their errors use that pattern's {"error": "..."}.

type seedError struct {
	Error string `json:"error"`
}

// seedPresenceData is the pattern's PresenceData, plus our derived state.
type seedPresenceData struct {
	UserID   string          `json:"userId"`
	Status   string          `json:"status"` // "online" (active, idle or stale) or "away"
	State    session.State   `json:"state"`  // the derived state itself
	LastSeen int64           `json:"lastSeen"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// seedStatus maps a derived state to the pattern's status; nil is offline.
func seedData(p session.UserPresence) *seedPresenceData {
	var status string
	switch p.State {
	case session.Active, session.Idle, session.Stale:
		status = "online"
	case session.Away:
		status = "away"
	default:
		return nil
	}
	return &seedPresenceData{UserID: p.User, Status: status, State: p.State, LastSeen: p.LastSeen, Metadata: p.Meta}
}

// httpSessionID derives the session of an HTTP-heartbeat client: one per
// user and client id, so two tabs sending different client ids are two sessions.
func httpSessionID(user, client string) string {
	h := sha256.Sum256([]byte(user + "\x00" + client))
	return "h" + base64.RawURLEncoding.EncodeToString(h[:15])
}

func clientID(r *http.Request) string {
	if v := r.Header.Get("X-Presence-Client"); v != "" {
		return v
	}
	if c, err := r.Cookie("presence_client"); err == nil && c.Value != "" {
		return c.Value
	}
	return r.URL.Query().Get("client")
}

// seedCaller authenticates a seed route (the token may come from a cookie or
// ?token=, since sendBeacon cannot set headers) and names its HTTP session.
func (s *Server) seedCaller(w http.ResponseWriter, r *http.Request) (Identity, string, bool) {
	var id Identity
	if s.auth.Open() {
		id.User = r.URL.Query().Get("user")
		if id.User == "" {
			id.User = r.Header.Get("X-Presence-User")
		}
	} else {
		v, err := s.auth.Verify(TokenFromRequest(r))
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, seedError{Error: "Unauthorized"})
			return id, "", false
		}
		id = v
	}
	client := clientID(r)
	if id.User == "" && client == "" {
		writeJSON(w, http.StatusUnauthorized, seedError{Error: "Unauthorized"})
		return id, "", false
	}
	return id, httpSessionID(id.User, client), true
}

// seedReader authenticates a seed read (any caller in open dev mode) and, if
// room is not "", checks the caller may read it. It answers 401/403 itself.
func (s *Server) seedReader(w http.ResponseWriter, r *http.Request, room string) bool {
	if s.auth.Open() {
		return true
	}
	id, err := s.auth.Verify(TokenFromRequest(r))
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, seedError{Error: "Unauthorized"})
		return false
	}
	if room != "" && !id.Caps.CanSubscribe(room) {
		writeJSON(w, http.StatusForbidden, seedError{Error: "Forbidden"})
		return false
	}
	return true
}

// ensureHTTPSession opens the caller's HTTP session if needed, else counts
// the request as a heartbeat.
func (s *Server) ensureHTTPSession(id Identity, sid string, meta json.RawMessage) error {
	op, err := s.engine.Open(session.OpenRequest{ID: sid, User: id.User, Kind: session.KindHTTP,
		Device: session.Device{Kind: "web"}, Meta: meta})
	if err != nil {
		return err
	}
	if op.Existing {
		if err := s.engine.Heartbeat(sid); err != nil {
			return err
		}
		if meta != nil {
			return s.engine.SetMeta(sid, meta)
		}
	}
	return nil
}

// seedBody reads a seed route's JSON body; a too large or malformed one is
// answered in the pattern's {"error":"..."}, not the /v1 error shape.
func seedBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	return readBodyAs(w, r, limit, v, func(w http.ResponseWriter, status int, _ Code, msg string) {
		writeJSON(w, status, seedError{Error: msg})
	})
}

func (s *Server) seedFail(w http.ResponseWriter, err error) {
	code := codeOf(err)
	writeJSON(w, statusOf(code), seedError{Error: err.Error()})
}

// POST /api/presence {status, metadata}: a heartbeat. status "offline" (the
// unmount beacon) ends the session at once; "away" marks it away.
func (s *Server) seedHeartbeat(w http.ResponseWriter, r *http.Request) {
	id, sid, ok := s.seedCaller(w, r)
	if !ok {
		return
	}
	var body struct {
		Status   string          `json:"status"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if !seedBody(w, r, int64(s.cfg.MaxFrameBytes), &body) {
		return
	}
	if body.Status == "offline" {
		err := s.engine.Close(sid, session.ReasonClosed, nil)
		if err != nil && !errors.Is(err, session.ErrUnknownSession) {
			s.seedFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		return
	}
	if string(body.Metadata) == "null" {
		body.Metadata = nil
	}
	if err := s.ensureHTTPSession(id, sid, body.Metadata); err != nil {
		s.seedFail(w, err)
		return
	}
	act := session.ActivityActive
	if body.Status == "away" {
		act = session.ActivityHidden
	}
	if err := s.engine.Activity(sid, act); err != nil {
		s.seedFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// GET /api/presence?userIds=a,b → {presence: {id: data|null}}.
func (s *Server) seedPresence(w http.ResponseWriter, r *http.Request) {
	if !s.seedReader(w, r, "") {
		return
	}
	ids := splitIDs(r.URL.Query().Get("userIds"))
	if len(ids) == 0 {
		writeJSON(w, http.StatusBadRequest, seedError{Error: "No user IDs provided"})
		return
	}
	if len(ids) > s.cfg.MaxBatchIDs {
		writeJSON(w, http.StatusBadRequest, seedError{Error: "Too many user IDs"})
		return
	}
	out := make(map[string]*seedPresenceData, len(ids))
	for id, p := range s.engine.UsersPresence(ids) {
		out[id] = seedData(p)
	}
	writeJSON(w, http.StatusOK, map[string]any{"presence": out})
}

type seedMember struct {
	ID string `json:"id"`
	*seedPresenceData
}

// GET /api/presence/room/{roomId} → {members: [{id, ...presence}]}, one per user.
func (s *Server) seedRoom(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("roomId")
	if !s.seedReader(w, r, room) {
		return
	}
	users, _ := s.engine.RoomUsers(room)
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.User
	}
	presence := s.engine.UsersPresence(ids)
	members := make([]seedMember, 0, len(ids))
	for _, id := range ids {
		if d := seedData(presence[id]); d != nil {
			members = append(members, seedMember{ID: id, seedPresenceData: d})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": members})
}

// POST /api/presence/room/{roomId} {action: "join"|"leave"}.
func (s *Server) seedRoomAction(w http.ResponseWriter, r *http.Request) {
	id, sid, ok := s.seedCaller(w, r)
	if !ok {
		return
	}
	room := r.PathValue("roomId")
	var body struct {
		Action string `json:"action"`
	}
	if !seedBody(w, r, 4096, &body) {
		return
	}
	var err error
	switch body.Action {
	case "join":
		if !id.Caps.CanEnter(room) {
			writeJSON(w, http.StatusForbidden, seedError{Error: "Forbidden"})
			return
		}
		if err = s.ensureHTTPSession(id, sid, nil); err == nil {
			err = s.engine.Enter(sid, room, nil)
		}
	case "leave":
		err = s.engine.Leave(sid, room, session.ReasonExplicit, nil)
		if errors.Is(err, session.ErrNotMember) || errors.Is(err, session.ErrUnknownSession) {
			err = nil // leaving a room one is not in is done already
		}
	default:
		writeJSON(w, http.StatusBadRequest, seedError{Error: `action must be "join" or "leave"`})
		return
	}
	if err != nil {
		s.seedFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// POST /api/channels/{id}/typing {typing: bool}.
func (s *Server) seedTyping(w http.ResponseWriter, r *http.Request) {
	id, sid, ok := s.seedCaller(w, r)
	if !ok {
		return
	}
	var body struct {
		Typing *bool `json:"typing"`
	}
	if !seedBody(w, r, 4096, &body) {
		return
	}
	if body.Typing == nil {
		writeJSON(w, http.StatusBadRequest, seedError{Error: `body needs "typing": true|false`})
		return
	}
	if !id.Caps.CanEnter(r.PathValue("id")) {
		writeJSON(w, http.StatusForbidden, seedError{Error: "Forbidden"})
		return
	}
	if err := s.ensureHTTPSession(id, sid, nil); err != nil {
		s.seedFail(w, err)
		return
	}
	if err := s.engine.Typing(sid, r.PathValue("id"), *body.Typing); err != nil {
		s.seedFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// GET /api/channels/{id}/typing → {typingUsers: [...]}.
func (s *Server) seedTypingUsers(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("id")
	if !s.seedReader(w, r, room) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"typingUsers": s.engine.TypingUsers(room)})
}
