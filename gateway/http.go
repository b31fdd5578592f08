package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/presenced/presenced/session"
)

func nowMS() int64 { return time.Now().UnixMilli() }

// routes registers every endpoint. Each handler is wrapped to record its
// latency under its route pattern.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	h := func(pattern string, fn http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.instrument(pattern, fn))
	}
	h("GET /healthz", s.healthz)
	h("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.handler())
	h("GET /v1/ws", s.serveWS)
	h("GET /ws", s.serveWS)
	mux.HandleFunc("GET /internal/v1/hold", s.hold)
	if s.cfg.DebugEndpoints {
		mux.HandleFunc("GET /internal/v1/debug/sessions/{session}", s.debugSession)
		pprofRoutes(mux)
	}

	h("GET /v1/rooms/{room}/members", s.roomMembers)
	h("GET /v1/rooms/{room}/users", s.roomUsers)
	h("GET /v1/rooms/{room}/counts", s.roomCounts)
	h("GET /v1/rooms/{room}/typing", s.roomTyping)
	h("GET /v1/rooms/{room}/events", s.roomEvents)
	h("GET /v1/rooms", s.listMeta)
	h("GET /v1/rooms/{room}/meta", s.getMeta)
	h("PUT /v1/rooms/{room}/meta", s.putMeta)
	h("DELETE /v1/rooms/{room}/meta", s.deleteMeta)
	h("GET /v1/users", s.usersBatch)
	h("GET /v1/users/{user}", s.userPresence)
	h("GET /v1/users/{user}/rooms", s.userRooms)
	h("GET /v1/users/{user}/last-seen", s.userLastSeen)
	h("POST /v1/agents", s.agentCreate)
	h("DELETE /v1/agents/{session}", s.agentDelete)
	h("PUT /v1/agents/{session}/rooms/{room}", s.agentEnter)
	h("DELETE /v1/agents/{session}/rooms/{room}", s.agentLeave)

	// Seed-001 compatible routes (the Redis-TTL heartbeat pattern).
	h("POST /api/presence", s.seedHeartbeat)
	h("GET /api/presence", s.seedPresence)
	h("GET /api/presence/room/{roomId}", s.seedRoom)
	h("POST /api/presence/room/{roomId}", s.seedRoomAction)
	h("POST /api/channels/{id}/typing", s.seedTyping)
	h("GET /api/channels/{id}/typing", s.seedTypingUsers)

	h("GET /v1/cluster", s.clusterView)

	// The browser side: / (demo), /dashboard, /presence.js and friends.
	s.registerWeb(mux, h)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error wireError `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code Code, msg string) {
	writeJSON(w, status, errorBody{Error: wireError{Code: code, Message: msg}})
}

// statusOf maps a wire code to an HTTP status.
func statusOf(code Code) int {
	switch code {
	case CodeNotFound, CodeNotMember:
		return http.StatusNotFound
	case CodeForbidden:
		return http.StatusForbidden
	case CodeRoomFull, CodeTooManyRooms, CodeTooManySess:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeInternal:
		return http.StatusInternalServerError
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func writeErr(w http.ResponseWriter, err error) {
	code := codeOf(err)
	writeError(w, statusOf(code), code, err.Error())
}

// identity authenticates an HTTP request. In open dev mode the caller names
// itself with ?user= or the X-Presence-User header (anonymous if neither).
// It writes 401 and returns false when a token is required and bad.
func (s *Server) identity(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	if s.auth.Open() {
		u := r.URL.Query().Get("user")
		if u == "" {
			u = r.Header.Get("X-Presence-User")
		}
		return Identity{User: u}, true
	}
	// Header or ?token= only: a cookie would let any site act for the user
	// with a text/plain POST (no CORS preflight). Cookies are for /api only.
	tok := wsToken(r)
	if tok == "" {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "missing token")
		return Identity{}, false
	}
	id, err := s.auth.Verify(tok)
	if err != nil {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, err.Error())
		return Identity{}, false
	}
	return id, true
}

// readRoom authenticates and checks the caller may read room.
func (s *Server) readRoom(w http.ResponseWriter, r *http.Request, room string) bool {
	id, ok := s.identity(w, r)
	if !ok {
		return false
	}
	if !id.Caps.CanSubscribe(room) {
		writeError(w, http.StatusForbidden, CodeForbidden, "token does not allow reading "+room)
		return false
	}
	return true
}

// visibleRooms keeps the rooms the identity may read.
func visibleRooms(id Identity, rooms []string) []string {
	out := rooms[:0]
	for _, r := range rooms {
		if id.Caps.CanSubscribe(r) {
			out = append(out, r)
		}
	}
	return out
}

// readBody reads a small request body. navigator.sendBeacon posts
// text/plain, so the content type is not checked; the body must be JSON.
// Errors are answered in the /v1 shape.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	return readBodyAs(w, r, limit, v, writeError)
}

// readBodyAs is readBody with the error writer of the route family: the
// seed routes answer their pattern's {"error":"..."} (seedError).
func readBodyAs(w http.ResponseWriter, r *http.Request, limit int64, v any, fail func(http.ResponseWriter, int, Code, string)) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "body over "+strconv.FormatInt(limit, 10)+" bytes")
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return true
	}
	if err := json.Unmarshal(b, v); err != nil {
		fail(w, http.StatusBadRequest, CodeBadJSON, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.Node})
}

// debugSession shows what this node holds of one session (?rooms=a,b adds
// those rooms' membership keys): its entries as stored and the index's view.
func (s *Server) debugSession(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.engine.DebugSession(r.PathValue("session"), splitIDs(r.URL.Query().Get("rooms"))))
}

// hold keeps the request open, writing a byte every 250 ms, until this node
// drains or stops. Cluster peers hold one each: when this process dies the
// kernel closes the socket at once, and the peer's EOF tells it to treat
// this node as failed without waiting for gossip's failure detector; while
// the bytes keep coming, the peer knows this process runs.
func (s *Server) hold(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	if f != nil {
		f.Flush()
	}
	// One byte every 250 ms tells the peer this process still runs: when
	// gossip declares us dead while these keep arriving (a false death under
	// CPU saturation), the peer waits instead of failing our sessions
	// (cluster/overrule.go). A peer that predates this discards them.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	nl := []byte{'\n'}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.drained:
			return
		case <-s.stop:
			return
		case <-tick.C:
			if _, err := w.Write(nl); err != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "node": s.cfg.Node})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": s.cfg.Node})
}

// Bodies shared by the HTTP API and WebSocket queries.
type membersBody struct {
	Room    string           `json:"room"`
	Version uint64           `json:"version"`
	Members []session.Member `json:"members"`
}

type usersBody struct {
	Room    string             `json:"room"`
	Version uint64             `json:"version"`
	Users   []session.RoomUser `json:"users"`
}

type typingBody struct {
	Room   string   `json:"room"`
	Typing []string `json:"typing"`
}

type batchBody struct {
	Users map[string]session.UserPresence `json:"users"`
}

type userRoomsBody struct {
	User  string   `json:"user"`
	Rooms []string `json:"rooms"`
}

type lastSeenResp struct {
	User       string `json:"user"`
	Online     bool   `json:"online"`
	LastSeen   *int64 `json:"last_seen"` // unix ms; null if never seen (or forgotten after the TTL)
	LastActive int64  `json:"last_active,omitempty"`
}

func lastSeenBody(p session.UserPresence) lastSeenResp {
	out := lastSeenResp{User: p.User, Online: p.State != session.Offline, LastActive: p.LastActive}
	if p.LastSeen != 0 {
		v := p.LastSeen
		out.LastSeen = &v
	}
	return out
}
