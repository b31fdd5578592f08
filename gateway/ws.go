package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/presenced/presenced/session"
)

// serveWS upgrades to a WebSocket, reads the hello, and hands the
// connection to its reader (ws_read.go); the handler goroutine then ends, and
// with it net/http's per-request state.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	// A token in the URL or header is checked before the upgrade, so a bad
	// one gets a plain 401. (Cookies are not read here: a cross-site page
	// could otherwise open a socket with the user's cookie.)
	var pre *Identity
	if tok := wsToken(r); tok != "" && !s.auth.Open() {
		id, err := s.auth.Verify(tok)
		if err != nil {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, err.Error())
			return
		}
		pre = &id
	}
	sw := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // any origin: auth is by token, never by cookie
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept wrote the HTTP error
	}
	ws.SetReadLimit(int64(s.cfg.MaxFrameBytes))
	c := newConn(s, ws, context.Background())
	c.br, c.pc, c.raw = sw.br, sw.conn, sw.conn.rawConn()
	if !s.addConn(c) {
		_ = ws.Close(CloseServiceRestart, "retry_ms=1000")
		c.stop()
		ws.CloseNow()
		return
	}
	s.metrics.connections.Inc()
	if !c.hello(r, pre) {
		<-c.writerDone
		c.stop()
		// The hijacked socket is ours to close: coder/websocket does not
		// close it when a read fails (the peer went away without a close
		// frame), and every such connection would keep its descriptor.
		ws.CloseNow()
		s.removeConn(c)
		s.metrics.connections.Dec()
		return
	}
	c.startReading()
}

// wsToken finds the token of a /v1 request or WebSocket upgrade: the
// Authorization header (scheme in any case, as TokenFromRequest reads it),
// then ?token=. Never a cookie.
func wsToken(r *http.Request) string {
	if tok := bearerToken(r); tok != "" {
		return tok
	}
	return r.URL.Query().Get("token")
}

// hello reads the first message, authenticates and opens or resumes the
// session. On failure it closes the connection and returns false.
func (c *conn) hello(r *http.Request, pre *Identity) bool {
	// Not derived from c.ctx: a context with children keeps a map of them
	// for good, and an idle connection should hold nothing it can spare.
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.HelloTimeout)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.fail(CloseProtocolError, "no hello")
		return false
	}
	c.lastRead.Store(time.Now().UnixNano())
	m, werr := decodeInbound(b)
	if werr == nil && m.Type != "hello" {
		werr = &wireError{Code: CodeHelloFirst, Message: "the first message must be hello"}
	}
	if werr != nil {
		c.send(errorMsg{Type: "error", ID: rawID(m.ID), Code: werr.Code, Message: werr.Message})
		c.fail(CloseProtocolError, string(werr.Code))
		return false
	}
	id, code, why := c.s.identify(r, m, pre)
	if code != 0 {
		c.send(errorMsg{Type: "error", ID: rawID(m.ID), Code: CodeUnauthorized, Message: why})
		c.fail(code, why)
		return false
	}
	c.identity = id
	opened, err := c.s.openOrResume(id, m)
	if err != nil {
		c.send(errorMsg{Type: "error", ID: rawID(m.ID), Code: codeOf(err), Message: err.Error()})
		c.fail(CloseProtocolError, "bad hello")
		return false
	}
	c.sid, c.attach = opened.Session, opened.Attach
	c.s.attach(c)
	cfg := c.s.cfg
	c.send(welcomeMsg{
		Type: "welcome", ID: rawID(m.ID), Session: opened.Session, User: id.User,
		ResumeToken: opened.ResumeToken, Resumed: opened.Resumed, Node: cfg.Node,
		HeartbeatMS: cfg.HeartbeatInterval.Milliseconds(), GraceMS: cfg.Grace.Milliseconds(),
		IdleAfterMS: cfg.IdleAfter.Milliseconds(), AwayAfterMS: cfg.AwayAfter.Milliseconds(),
		TypingTimeoutMS: cfg.TypingTimeout.Milliseconds(),
		Limits: limits{MaxFrameBytes: cfg.MaxFrameBytes, MaxDataBytes: cfg.MaxDataBytes, MaxIDBytes: cfg.MaxIDBytes,
			MaxRoomsPerSession: cfg.MaxRoomsPerSession, RatePerSecond: cfg.RateLimit},
	})
	return true
}

// identify decides who a hello speaks for: the token's subject, or in open
// dev mode the user the client names (anonymous if none).
func (s *Server) identify(r *http.Request, m inbound, pre *Identity) (Identity, websocket.StatusCode, string) {
	if s.auth.Open() {
		u := m.User
		if u == "" {
			u = r.URL.Query().Get("user")
		}
		return Identity{User: u}, 0, ""
	}
	if m.Token == "" && pre != nil {
		return *pre, 0, ""
	}
	if m.Token == "" {
		return Identity{}, CloseUnauthorized, "missing token"
	}
	id, err := s.auth.Verify(m.Token)
	switch {
	case errors.Is(err, ErrExpired):
		return Identity{}, CloseTokenExpired, "token expired"
	case err != nil:
		return Identity{}, CloseUnauthorized, "invalid token"
	}
	return id, 0, ""
}

// openOrResume resumes the session named by the hello's resume token when it
// belongs to the same user, and otherwise opens a new one (welcome says
// resumed:false; the client then enters its rooms again).
func (s *Server) openOrResume(id Identity, m inbound) (session.Opened, error) {
	if m.Resume != "" {
		if op, err := s.engine.Resume(m.Resume, id.User); err == nil {
			s.metrics.resumes.WithLabelValues("ok").Inc()
			return op, nil
		}
		s.metrics.resumes.WithLabelValues("rejected").Inc()
	}
	req := session.OpenRequest{User: id.User, Kind: session.KindWebSocket, Meta: m.Meta}
	if m.Device != nil {
		req.Device = *m.Device
	}
	if m.Location != nil {
		req.Location = *m.Location
	}
	return s.engine.Open(req)
}

func (c *conn) replyError(id json.RawMessage, code Code, msg string) {
	c.s.metrics.errors.WithLabelValues(string(code)).Inc()
	c.send(errorMsg{Type: "error", ID: rawID(id), Code: code, Message: msg})
}

func (c *conn) replyErr(id json.RawMessage, err error) {
	code := codeOf(err)
	if code == CodeInternal {
		c.s.log.Error("operation failed", zap.Error(err))
	}
	if code == CodeNotFound {
		// The session is gone from under the connection (kicked, or taken over).
		c.ended = true
		c.fail(CloseSessionEnded, "session ended")
	}
	c.replyError(id, code, err.Error())
}

func (c *conn) ok(id json.RawMessage, err error) {
	if err != nil {
		c.replyErr(id, err)
		return
	}
	b := okJSON(id)
	if b == nil {
		c.s.log.DPanic("marshal outbound message")
		return
	}
	c.enqueue(b)
}

// okJSON is json.Marshal(okMsg{Type: "ok", ID: rawID(id)}) in one
// allocation instead of four: an ok is the answer to most messages. An id
// json.Marshal would rewrite (spaces to drop, <, > or & to escape) goes
// through json.Marshal (nil if that fails).
func okJSON(id json.RawMessage) []byte {
	const head, tail = `{"type":"ok","id":`, `}`
	if len(id) == 0 {
		return []byte(`{"type":"ok"}`)
	}
	if bytes.ContainsAny(id, " \t\r\n<>&") || !utf8.Valid(id) || bytes.Contains(id, []byte("\u2028")) || bytes.Contains(id, []byte("\u2029")) {
		b, err := json.Marshal(okMsg{Type: "ok", ID: id})
		if err != nil {
			return nil
		}
		return b
	}
	b := make([]byte, 0, len(head)+len(id)+len(tail))
	return append(append(append(b, head...), id...), tail...)
}
