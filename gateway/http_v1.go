package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/session"
)

func (s *Server) roomMembers(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !s.readRoom(w, r, room) {
		return
	}
	// Hand-assembled so the members' cached encodings are copied, not re-encoded.
	roomJSON, _ := json.Marshal(room)
	bp := listBufs.Get().(*[]byte)
	defer listBufs.Put(bp)
	buf := (*bp)[:0]
	buf = append(buf, `{"room":`...)
	buf = append(buf, roomJSON...)
	buf = append(buf, `,"members":`...)
	buf, v := s.engine.AppendMembersJSON(buf, room)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendUint(buf, v, 10)
	buf = append(buf, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(buf))) // one write, no chunking
	_, _ = w.Write(buf)
	if cap(buf) <= 16<<20 {
		*bp = buf
	}
}

// listBufs recycles the buffers of large member listings.
var listBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (s *Server) roomUsers(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !s.readRoom(w, r, room) {
		return
	}
	us, v := s.engine.RoomUsers(room)
	writeJSON(w, http.StatusOK, usersBody{Room: room, Version: v, Users: us})
}

func (s *Server) roomCounts(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !s.readRoom(w, r, room) {
		return
	}
	writeJSON(w, http.StatusOK, s.engine.RoomCounts(room))
}

func (s *Server) roomTyping(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !s.readRoom(w, r, room) {
		return
	}
	writeJSON(w, http.StatusOK, typingBody{Room: room, Typing: s.engine.TypingUsers(room)})
}

// splitIDs parses a comma-separated id list, dropping empty items.
func splitIDs(v string) []string {
	var out []string
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

func (s *Server) usersBatch(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.identity(w, r); !ok {
		return
	}
	ids := splitIDs(r.URL.Query().Get("ids"))
	if len(ids) == 0 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "ids: give 1 to 100 comma-separated user ids")
		return
	}
	if len(ids) > s.cfg.MaxBatchIDs {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "ids: at most 100 user ids per request")
		return
	}
	writeJSON(w, http.StatusOK, batchBody{Users: s.engine.UsersPresence(ids)})
}

func (s *Server) userPresence(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.identity(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.engine.UserPresence(r.PathValue("user")))
}

func (s *Server) userRooms(w http.ResponseWriter, r *http.Request) {
	id, ok := s.identity(w, r)
	if !ok {
		return
	}
	u := r.PathValue("user")
	writeJSON(w, http.StatusOK, userRoomsBody{User: u, Rooms: visibleRooms(id, s.engine.UserRooms(u))})
}

func (s *Server) userLastSeen(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.identity(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, lastSeenBody(s.engine.UserPresence(r.PathValue("user"))))
}

// Agents: sessions kept on behalf of server-side agents. They never go idle
// or stale by themselves; they stay until removed.

type agentRoom struct {
	Room string          `json:"room"`
	Data json.RawMessage `json:"data,omitempty"`
}

type agentRequest struct {
	User     string          `json:"user,omitempty"` // open mode only; otherwise the token's subject
	Device   session.Device  `json:"device"`
	Rooms    []agentRoom     `json:"rooms,omitempty"`
	Location string          `json:"location,omitempty"`
	Meta     json.RawMessage `json:"meta,omitempty"`
}

type agentResponse struct {
	Session string   `json:"session"`
	User    string   `json:"user,omitempty"`
	Rooms   []string `json:"rooms"`
}

func (s *Server) agentCreate(w http.ResponseWriter, r *http.Request) {
	id, ok := s.identity(w, r)
	if !ok {
		return
	}
	var req agentRequest
	if !readBody(w, r, int64(s.cfg.MaxFrameBytes), &req) {
		return
	}
	user := id.User
	if s.auth.Open() && req.User != "" {
		user = req.User
	}
	for _, ar := range req.Rooms {
		if !id.Caps.CanEnter(ar.Room) {
			writeError(w, http.StatusForbidden, CodeForbidden, "token does not allow entering "+ar.Room)
			return
		}
	}
	if req.Device.Kind == "" {
		req.Device.Kind = "agent"
	}
	op, err := s.engine.Open(session.OpenRequest{User: user, Kind: session.KindAgent, Device: req.Device, Meta: req.Meta, Location: req.Location})
	if err != nil {
		writeErr(w, err)
		return
	}
	resp := agentResponse{Session: op.Session, User: user, Rooms: []string{}}
	for _, ar := range req.Rooms {
		if err := s.engine.Enter(op.Session, ar.Room, ar.Data); err != nil {
			_ = s.engine.Close(op.Session, session.ReasonClosed, nil) // all or nothing
			writeErr(w, err)
			return
		}
		resp.Rooms = append(resp.Rooms, ar.Room)
	}
	writeJSON(w, http.StatusCreated, resp)
}

// agentSession authorises a call on an agent session: the caller must be
// its user (any caller in open mode).
func (s *Server) agentSession(w http.ResponseWriter, r *http.Request) (string, Identity, bool) {
	id, ok := s.identity(w, r)
	if !ok {
		return "", id, false
	}
	sid := r.PathValue("session")
	info, found := s.engine.Session(sid)
	if !found || info.Kind != session.KindAgent || !info.Owned {
		writeError(w, http.StatusNotFound, CodeNotFound, "no agent session "+sid+" on this node")
		return "", id, false
	}
	if !s.auth.Open() && info.User != id.User {
		writeError(w, http.StatusForbidden, CodeForbidden, "agent session belongs to another user")
		return "", id, false
	}
	return sid, id, true
}

func (s *Server) agentDelete(w http.ResponseWriter, r *http.Request) {
	sid, _, ok := s.agentSession(w, r)
	if !ok {
		return
	}
	reason := session.Reason(r.URL.Query().Get("reason"))
	if !reason.Valid() {
		reason = session.ReasonClosed
	}
	if err := s.engine.Close(sid, reason, nil); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) agentEnter(w http.ResponseWriter, r *http.Request) {
	sid, id, ok := s.agentSession(w, r)
	if !ok {
		return
	}
	room := r.PathValue("room")
	if !id.Caps.CanEnter(room) {
		writeError(w, http.StatusForbidden, CodeForbidden, "token does not allow entering "+room)
		return
	}
	var body struct {
		Data json.RawMessage `json:"data,omitempty"`
	}
	if !readBody(w, r, int64(s.cfg.MaxFrameBytes), &body) {
		return
	}
	if err := s.engine.Enter(sid, room, body.Data); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": sid, "room": room})
}

func (s *Server) agentLeave(w http.ResponseWriter, r *http.Request) {
	sid, _, ok := s.agentSession(w, r)
	if !ok {
		return
	}
	reason := session.Reason(r.URL.Query().Get("reason"))
	if err := s.engine.Leave(sid, r.PathValue("room"), reason, nil); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Room metadata, kept through Raft by the cluster.

func (s *Server) metaErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrMetaInvalid):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	case errors.Is(err, ErrMetaNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	}
}

// metaStore authenticates a metadata call; writes need the admin capability
// (any caller in open dev mode).
func (s *Server) metaStore(w http.ResponseWriter, r *http.Request) (MetaStore, bool) {
	id, ok := s.identity(w, r)
	if !ok {
		return nil, false
	}
	if r.Method != http.MethodGet && !s.auth.Open() && !id.Caps.Admin {
		writeError(w, http.StatusForbidden, CodeForbidden, `writing room metadata needs a token with "caps": {"admin": true}`)
		return nil, false
	}
	if s.cfg.Meta == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "no room metadata store on this node")
		return nil, false
	}
	return s.cfg.Meta, true
}

func (s *Server) listMeta(w http.ResponseWriter, r *http.Request) {
	m, ok := s.metaStore(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(m.ListJSON())
}

func (s *Server) getMeta(w http.ResponseWriter, r *http.Request) {
	m, ok := s.metaStore(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Get("consistent") == "true" {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		b, err := m.GetJSONConsistent(ctx, r.PathValue("room"))
		if err != nil {
			s.metaErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	b, found := m.GetJSON(r.PathValue("room"))
	if !found {
		writeError(w, http.StatusNotFound, CodeNotFound, "no metadata for room "+r.PathValue("room"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) putMeta(w http.ResponseWriter, r *http.Request) {
	m, ok := s.metaStore(w, r)
	if !ok {
		return
	}
	var raw json.RawMessage
	if !readBody(w, r, 16<<10, &raw) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	b, err := m.PutJSON(ctx, r.PathValue("room"), raw, r.Header.Get("Idempotency-Key"))
	if err != nil {
		s.metaErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) deleteMeta(w http.ResponseWriter, r *http.Request) {
	m, ok := s.metaStore(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := m.DeleteRoom(ctx, r.PathValue("room"), r.Header.Get("Idempotency-Key")); err != nil {
		s.metaErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
