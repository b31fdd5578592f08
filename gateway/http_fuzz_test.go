package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presenced/presenced/crdt"
	"github.com/presenced/presenced/session"
)

// FuzzHTTPHandlers drives the node's real HTTP handler (every /v1 and /api
// route, health and the WebSocket upgrade's pre-check) with fuzzed methods,
// path segments, queries, credentials and bodies, against a node that
// already holds sessions of several kinds. After each request it checks that
//
//   - nothing panicked and no 5xx came back but the documented 503s
//     (metadata store missing or unavailable, /readyz not ready);
//   - every route that promises JSON answered JSON, /v1 errors have the
//     {"error":{"code","message"}} shape and /api errors the seed pattern's
//     {"error":"..."}; answers of reads agree with the engine;
//   - the engine's aggregates hold: counts and users match the member
//     listing, the cached member encodings match the members, sessions and
//     rooms agree both ways, a subscriber's event stream rebuilds exactly
//     the room, and all of it still holds as the clock runs timers down;
//   - with authentication on, a request changes only its own user's
//     sessions, enters only rooms its caps allow and reads only rooms its
//     caps allow.
//
// Arguments: route picks a route (fuzzRoutes); method 0 keeps the route's
// method, anything else picks one of fuzzMethods; flags (fuzzRaw...) pick raw
// or escaped segments, auth mode, the metadata store's state, readiness and
// whether the request is sent twice; auth picks a credential form
// (the auth* constants) using cred, and its high nibble a heartbeat client id.
func FuzzHTTPHandlers(f *testing.F) {
	type seed struct {
		route, method, flags, auth uint8
		seg1, seg2, query, cred    string
		body                       string
	}
	seeds := []seed{
		{route: 0, seg1: "lobby"},
		{route: 2, seg1: "full", flags: fuzzSecured, auth: authBearer, cred: "alice"},
		{route: 4, seg1: "ops", flags: fuzzSecured, auth: authCapsToken, cred: "op*"},
		{route: 9, query: "ids=alice,bob,,carol"},
		{route: 11, seg1: "alice", flags: fuzzSecured, auth: authBearerLower, cred: "alice"},
		{route: 13, body: `{"user":"summarizer","device":{"kind":"Agent","platform":"gpt"},"rooms":[{"room":"ops","data":{"task":"x"}},{"room":"lobby"}],"location":"ops","meta":{"v":1}}`},
		{route: 13, flags: fuzzSecured, auth: authCapsToken, cred: "team-*", body: `{"rooms":[{"room":"team-a"},{"room":"secret"}]}`},
		{route: 14, seg1: "agent-1", query: "reason=kicked", flags: fuzzSecured | fuzzTwice, auth: authBearer, cred: "bot"},
		{route: 15, seg1: "agent-1", seg2: "full", body: `{"data":[1,2,3]}`},
		{route: 16, seg1: "agent-2", seg2: "lobby", query: "reason=node_failure", flags: fuzzSecured, auth: authQuery, cred: "alice"},
		{route: 17, auth: authUserHeader | 1<<4, cred: "carol", body: `{"status":"away","metadata":{"page":"/x"}}`, flags: fuzzTwice},
		{route: 17, flags: fuzzSecured, auth: authCookie | 2<<4, cred: "carol", body: `{"status":"offline"}`},
		{route: 18, query: "userIds=alice,carol,bot&token=x"},
		{route: 20, seg1: "full", auth: authUserQuery, cred: "dave", body: `{"action":"join"}`},
		{route: 20, seg1: "project-1", auth: authUserHeader | 1<<4, cred: "carol", body: `{"action":"leave"}`},
		{route: 21, seg1: "c1", auth: authUserHeader, cred: "erin", body: `{"typing":true}`, flags: fuzzTwice},
		{route: 7, seg1: "full", flags: fuzzSecured, auth: authAdminToken, cred: "ops", body: `{"max_members":2,"grace_ms":1000}`},
		{route: 7, seg1: "x", flags: fuzzSecured | fuzzMetaDown, auth: authAdminToken, cred: "ops", body: `{}`},
		{route: 6, seg1: "full", flags: fuzzNoMeta},
		{route: 6, seg1: "full", query: "consistent=true", flags: fuzzSecured, auth: authQuery, cred: "u"},
		{route: 24, flags: fuzzNotReady},
		{route: 25, flags: fuzzSecured, auth: authWrongKey, cred: "alice"},
		{route: 26, seg1: "/v1/rooms/a%2Fb/../members?x=%zz", flags: fuzzRaw},
		{route: 1, method: 3, seg1: "lobby", body: "{"},
	}
	for _, s := range seeds {
		f.Add(s.route, s.method, s.flags, s.auth, s.seg1, s.seg2, s.query, s.cred, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route, method, flags, auth uint8, seg1, seg2, query, cred string, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		m := rt.method
		if method != 0 {
			m = fuzzMethods[int(method)%len(fuzzMethods)]
		}
		n := newFuzzNode(t, flags)
		defer n.close()
		a := n.credentials(t, auth, cred)
		target, ok := rt.target(seg1, seg2, query, a.query, flags&fuzzRaw != 0)
		if !ok {
			return // not a request line a server would parse
		}
		raw, ok := rawRequest(m, target, a.headers, body)
		if !ok {
			return
		}
		n.watch(seg1, seg2)
		n.before()
		times := 1
		if flags&fuzzTwice != 0 {
			times = 2
		}
		for range times {
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				return // the server answers 400 itself
			}
			family := n.serve(t, rt, req, a, seg1, flags)
			n.checkAuthz(t, a, family)
			n.checkInvariants(t, "after the request")
		}
		// Let every timer run: typing expires, sessions go idle and away,
		// HTTP-heartbeat sessions expire and leave after grace.
		for _, d := range []time.Duration{4 * time.Second, 61 * time.Second, 16 * time.Second, 5 * time.Minute, time.Hour} {
			n.clock.Advance(d)
			n.checkInvariants(t, "after "+d.String())
		}
		n.checkExpired(t)
	})
}

// Flags of the fuzz input.
const (
	fuzzRaw      = 1 << 0 // path segments and query are not escaped
	fuzzSecured  = 1 << 1 // tokens required (else open dev mode)
	fuzzNoMeta   = 1 << 2 // no metadata store: its endpoints answer 503
	fuzzMetaDown = 1 << 3 // the store has no raft leader: writes answer 503
	fuzzNotReady = 1 << 4 // readiness reports not ready
	fuzzTwice    = 1 << 5 // the request is sent twice
)

// Credential forms (low nibble of auth); the high nibble picks the
// heartbeat client id: none, "tab-1", cred in X-Presence-Client, or cred in
// the presence_client cookie.
const (
	authNone        = iota
	authBearer      // Authorization: Bearer <token for sub=cred>
	authBearerLower // authorization: bearer <token for sub=cred>
	authQuery       // ?token=<token for sub=cred>
	authCookie      // presence_token=<token for sub=cred>
	authCapsToken   // token for alice with caps enter and subscribe [cred]
	authAdminToken  // token for sub=cred with caps admin
	authExpired     // expired token for sub=cred
	authWrongKey    // token for sub=cred signed with another secret
	authRawBearer   // Authorization: Bearer <cred>
	authRawHeader   // Authorization: <cred>
	authRawQuery    // ?token=<cred>
	authRawCookie   // presence_token=<cred>
	authUserHeader  // X-Presence-User: cred (open mode)
	authUserQuery   // ?user=cred (open mode)
	authEmptyCaps   // token for sub=cred with caps that allow no room
)

var fuzzMethods = []string{"GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PURGE"}

type fuzzRoute struct{ method, path string }

// routeKind is the family of the route that answered (familyOf).
type routeKind int

const (
	kindV1     routeKind = iota // JSON; errors {"error":{"code","message"}}
	kindAPI                     // seed pattern: JSON; errors {"error":"..."}
	kindSSE                     // text/event-stream on success
	kindHealth                  // JSON
	kindWS                      // 401 JSON before the upgrade; anything the WebSocket library answers otherwise
	kindOther                   // Prometheus text, the cluster's held connection
)

// fuzzRoutes are the node's routes; {1} and {2} are replaced by seg1 and
// seg2. The last one is seg1 as the whole path (with fuzzRaw).
var fuzzRoutes = []fuzzRoute{
	{"GET", "/v1/rooms/{1}/members"},
	{"GET", "/v1/rooms/{1}/users"},
	{"GET", "/v1/rooms/{1}/counts"},
	{"GET", "/v1/rooms/{1}/typing"},
	{"GET", "/v1/rooms/{1}/events"},
	{"GET", "/v1/rooms"},
	{"GET", "/v1/rooms/{1}/meta"},
	{"PUT", "/v1/rooms/{1}/meta"},
	{"DELETE", "/v1/rooms/{1}/meta"},
	{"GET", "/v1/users"},
	{"GET", "/v1/users/{1}"},
	{"GET", "/v1/users/{1}/rooms"},
	{"GET", "/v1/users/{1}/last-seen"},
	{"POST", "/v1/agents"},
	{"DELETE", "/v1/agents/{1}"},
	{"PUT", "/v1/agents/{1}/rooms/{2}"},
	{"DELETE", "/v1/agents/{1}/rooms/{2}"},
	{"POST", "/api/presence"},
	{"GET", "/api/presence"},
	{"GET", "/api/presence/room/{1}"},
	{"POST", "/api/presence/room/{1}"},
	{"POST", "/api/channels/{1}/typing"},
	{"GET", "/api/channels/{1}/typing"},
	{"GET", "/healthz"},
	{"GET", "/readyz"},
	{"GET", "/v1/ws"},
	{"GET", "{1}"},
}

// roomRead reports whether the route reads the room named by {1}.
func (r fuzzRoute) roomRead() bool {
	switch r.path {
	case "/v1/rooms/{1}/members", "/v1/rooms/{1}/users", "/v1/rooms/{1}/counts", "/v1/rooms/{1}/typing",
		"/v1/rooms/{1}/events", "/api/presence/room/{1}", "/api/channels/{1}/typing":
		return r.method == "GET"
	}
	return false
}

// roomPattern is the mux pattern's path of a route path.
func roomPattern(path string) string {
	if strings.HasPrefix(path, "/api/presence/room/") {
		return strings.Replace(path, "{1}", "{roomId}", 1)
	}
	if strings.HasPrefix(path, "/api/channels/") {
		return strings.Replace(path, "{1}", "{id}", 1)
	}
	return strings.Replace(path, "{1}", "{room}", 1)
}

// target builds the request target. Escaped segments reach the handler as
// given (unless they are "." or "..", which the mux redirects); raw ones may
// change the route.
func (r fuzzRoute) target(seg1, seg2, query, authQuery string, raw bool) (string, bool) {
	p := r.path
	if raw {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "{1}", seg1), "{2}", seg2)
	} else {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "{1}", url.PathEscape(seg1)), "{2}", url.PathEscape(seg2))
	}
	q := query
	if !raw {
		// Keep the fuzzer's pairs but make each key and value well formed.
		var parts []string
		for _, kv := range strings.Split(query, "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
		q = strings.Join(parts, "&")
	}
	if authQuery != "" { // first, so that it is the value handlers read
		if q != "" {
			q = authQuery + "&" + q
		} else {
			q = authQuery
		}
	}
	if q != "" {
		p += "?" + q
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n\x00") {
		return "", false
	}
	return p, true
}

// rawRequest is the request as a client sends it, so that it goes through
// the server's own parser.
func rawRequest(method, target string, headers [][2]string, body []byte) ([]byte, bool) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: node.test\r\n", method, target)
	for _, h := range headers {
		if strings.ContainsAny(h[1], "\r\n") {
			return nil, false
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes(), true
}

// fuzzAuthn is the credential of one fuzz request and what it proves.
type fuzzAuthn struct {
	headers [][2]string
	query   string
	// who the request may act as when authentication is on: sub of a valid
	// token presented where the route family reads it; valid is false if
	// no valid token was made at all.
	sub   string
	caps  Caps
	valid bool
	// accepted: the token is one the verifier accepts (sub of 1..128
	// bytes, the whole token within maxTokenBytes), so no route that reads
	// it where it was presented may answer 401.
	accepted bool
	via      int // authBearer, authBearerLower, authQuery or authCookie
	secured  bool
}

var fuzzNow = time.UnixMilli(1_750_000_000_000)

func (n *fuzzNode) credentials(t *testing.T, auth uint8, cred string) fuzzAuthn {
	a := fuzzAuthn{secured: n.secured}
	tok := func(key string, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := fuzzNow.Add(time.Hour).Unix()
	// Claims travel as JSON: invalid UTF-8 in cred arrives as U+FFFD.
	var sub string
	_ = json.Unmarshal(mustMarshal(cred), &sub)
	present := func(form int, token string) {
		a.via = form
		a.accepted = a.valid && a.sub != "" && len(a.sub) <= maxSubjectBytes && len(token) <= maxTokenBytes
		switch form {
		case authBearer:
			a.headers = append(a.headers, [2]string{"Authorization", "Bearer " + token})
		case authBearerLower:
			a.headers = append(a.headers, [2]string{"authorization", "bearer " + token})
		case authQuery:
			a.query = "token=" + url.QueryEscape(token)
		case authCookie:
			a.headers = append(a.headers, [2]string{"Cookie", "presence_token=" + token})
		}
	}
	form := int(auth & 0x0f)
	switch form {
	case authBearer, authBearerLower, authQuery, authCookie:
		a.sub, a.valid = sub, true
		present(form, tok(testSecret, jwt.MapClaims{"sub": cred, "exp": exp}))
	case authCapsToken:
		a.sub, a.valid, a.caps = "alice", true, Caps{Enter: []string{sub}, Subscribe: []string{sub}}
		present(authBearer, tok(testSecret, jwt.MapClaims{"sub": "alice", "exp": exp,
			"caps": map[string]any{"enter": []string{cred}, "subscribe": []string{cred}}}))
	case authEmptyCaps:
		a.sub, a.valid, a.caps = sub, true, Caps{Enter: []string{}, Subscribe: []string{}}
		present(authBearer, tok(testSecret, jwt.MapClaims{"sub": cred, "exp": exp,
			"caps": map[string]any{"enter": []string{}, "subscribe": []string{}}}))
	case authAdminToken:
		a.sub, a.valid, a.caps = sub, true, Caps{Admin: true}
		present(authBearer, tok(testSecret, jwt.MapClaims{"sub": cred, "exp": exp, "caps": map[string]any{"admin": true}}))
	case authExpired:
		present(authBearer, tok(testSecret, jwt.MapClaims{"sub": cred, "exp": fuzzNow.Add(-time.Hour).Unix()}))
	case authWrongKey:
		present(authBearer, tok("another secret, not the node's one", jwt.MapClaims{"sub": cred, "exp": exp}))
	case authRawBearer:
		a.headers = append(a.headers, [2]string{"Authorization", "Bearer " + cred})
	case authRawHeader:
		a.headers = append(a.headers, [2]string{"Authorization", cred})
	case authRawQuery:
		a.query = "token=" + url.QueryEscape(cred)
	case authRawCookie:
		a.headers = append(a.headers, [2]string{"Cookie", "presence_token=" + cred})
	case authUserHeader:
		a.headers = append(a.headers, [2]string{"X-Presence-User", cred})
	case authUserQuery:
		a.query = "user=" + url.QueryEscape(cred)
	}
	switch auth >> 4 & 3 {
	case 1:
		a.headers = append(a.headers, [2]string{"X-Presence-Client", "tab-1"})
	case 2:
		a.headers = append(a.headers, [2]string{"X-Presence-Client", cred})
	case 3:
		a.headers = append(a.headers, [2]string{"Cookie", "presence_client=" + cred})
	}
	return a
}

// fuzzNode is one node: engine on a fake clock, gateway, metadata store.
type fuzzNode struct {
	clock   *session.FakeClock
	engine  *session.Engine
	gw      *Server
	meta    *fuzzMeta
	secured bool

	mu       sync.Mutex
	phase    string            // "setup" or "request"
	sids     map[string]bool   // every session id written
	rooms    map[string]bool   // every room a member or typing entry named
	writes   []crdt.Entry      // entries written during the request
	initial  map[string][]byte // setup sessions' info before the request
	views    map[string]*session.RoomView
	pending  map[string][]*session.Event
	cancels  []func()
	httpSids map[string]bool // sessions opened by heartbeats (kind http)
}

func newFuzzNode(t *testing.T, flags uint8) *fuzzNode {
	n := &fuzzNode{
		clock: session.NewFakeClock(fuzzNow), meta: newFuzzMeta(), secured: flags&fuzzSecured != 0,
		phase: "setup", sids: map[string]bool{}, rooms: map[string]bool{}, views: map[string]*session.RoomView{},
		pending: map[string][]*session.Event{}, httpSids: map[string]bool{},
	}
	n.meta.down = flags&fuzzMetaDown != 0
	n.meta.docs["full"] = fuzzRoomMeta{MaxMembers: 1}
	n.engine = session.New(session.Config{
		Node: "fz", Incarnation: 1, Clock: n.clock, Rooms: n.meta,
		MaxSessionsPerUser: 3, MaxRoomsPerSession: 4,
		OnLocalWrite: n.noteWrite,
	})
	ac := AuthConfig{Now: func() time.Time { return fuzzNow }}
	if n.secured {
		ac.HS256Secret = testSecret
	}
	v, err := NewVerifier(ac)
	if err != nil {
		t.Fatal(err)
	}
	gc := Config{Node: "fz", MaxFrameBytes: 4096}
	if flags&fuzzNoMeta == 0 {
		gc.Meta = n.meta
	}
	if flags&fuzzNotReady != 0 {
		gc.Ready = func() bool { return false }
	}
	n.gw = New(gc, n.engine, v)

	// Sessions of every kind, in shared rooms.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	open := func(req session.OpenRequest, rooms ...string) {
		t.Helper()
		_, err := n.engine.Open(req)
		must(err)
		for _, r := range rooms {
			must(n.engine.Enter(req.ID, r, json.RawMessage(`{"since":1}`)))
		}
	}
	open(session.OpenRequest{ID: "ws-1", User: "alice", Device: session.Device{Kind: "desktop"}, Location: "lobby"}, "lobby", "full")
	open(session.OpenRequest{ID: "anon-1", Location: "lobby"}, "lobby")
	open(session.OpenRequest{ID: "agent-1", User: "bot", Kind: session.KindAgent, Device: session.Device{Kind: "agent"}}, "ops")
	must(n.engine.Typing("agent-1", "ops", true))
	open(session.OpenRequest{ID: "agent-2", User: "alice", Kind: session.KindAgent}, "lobby", "ops")
	open(session.OpenRequest{ID: httpSessionID("carol", "tab-1"), User: "carol", Kind: session.KindHTTP,
		Device: session.Device{Kind: "web"}, Meta: json.RawMessage(`{"page":"/"}`)}, "project-1")
	must(n.engine.Typing(httpSessionID("carol", "tab-1"), "project-1", true))
	return n
}

func (n *fuzzNode) close() {
	for _, c := range n.cancels {
		c()
	}
	n.gw.Close()
	n.engine.Stop()
}

// noteWrite runs under the engine's lock: it only records.
func (n *fuzzNode) noteWrite(e crdt.Entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := e.Key
	switch {
	case strings.HasPrefix(k, "s/"):
		n.sids[k[2:]] = true
	case strings.HasPrefix(k, "m/"), strings.HasPrefix(k, "t/"):
		if sid, room, ok := strings.Cut(k[2:], "/"); ok {
			n.sids[sid] = true
			n.rooms[room] = true
		}
	}
	if n.phase == "request" {
		n.writes = append(n.writes, e)
	}
}

// watch subscribes a view to the known rooms and the fuzzed segments.
func (n *fuzzNode) watch(extra ...string) {
	rooms := n.knownRooms()
	rooms = append(rooms, extra...)
	for _, room := range rooms {
		if _, ok := n.views[room]; ok {
			continue
		}
		snap, cancel, err := n.engine.Subscribe(room, func(ev *session.Event) {
			n.mu.Lock()
			n.pending[room] = append(n.pending[room], ev)
			n.mu.Unlock()
		})
		if err != nil {
			continue // not a valid room id: nothing can enter it either
		}
		n.views[room] = session.NewRoomView(snap)
		n.cancels = append(n.cancels, cancel)
	}
}

func (n *fuzzNode) knownRooms() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.rooms)+len(n.views))
	for r := range n.rooms {
		out = append(out, r)
	}
	for r := range n.views {
		if !n.rooms[r] {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func (n *fuzzNode) knownSessions() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.sids))
	for s := range n.sids {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// before records the setup sessions and starts recording the request's writes.
func (n *fuzzNode) before() {
	n.initial = map[string][]byte{}
	for _, sid := range n.knownSessions() {
		if info, ok := n.engine.Session(sid); ok {
			n.initial[sid] = mustMarshal(info)
		}
	}
	n.mu.Lock()
	n.phase = "request"
	n.mu.Unlock()
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// serve runs one request through the node's handler and checks the answer.
func (n *fuzzNode) serve(t *testing.T, rt fuzzRoute, req *http.Request, a fuzzAuthn, seg1 string, flags uint8) (family routeKind) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // an SSE stream sends its snapshot, then ends
	req = req.WithContext(ctx)
	req.RemoteAddr = "192.0.2.7:40000"
	_, pattern := n.gw.mux.Handler(req) // which route answers
	family = familyOf(pattern)
	rec := httptest.NewRecorder()
	n.gw.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	status, body, ctype := res.StatusCode, rec.Body.Bytes(), res.Header.Get("Content-Type")
	what := fmt.Sprintf("%s %s → %d %q", req.Method, req.URL.RequestURI(), status, truncate(body))
	if testing.Verbose() {
		t.Log(pattern, "|", what, "|", roomPattern(rt.path))
	}

	if status >= 500 && !documented5xx(pattern, status, body) {
		t.Fatalf("undocumented server error: %s", what)
	}
	if status >= 300 && status < 400 {
		if res.Header.Get("Location") == "" {
			t.Fatalf("redirect without Location: %s", what)
		}
		return // the mux cleaning the path: nothing of ours ran
	}
	if status == http.StatusNoContent {
		if len(body) != 0 {
			t.Fatalf("204 with a body: %s", what)
		}
		return
	}
	switch {
	case family == kindSSE && status == http.StatusOK:
		if ctype != "text/event-stream" {
			t.Fatalf("SSE without its content type: %s", what)
		}
		checkSSE(t, body, what)
		return
	case family == kindWS && status != http.StatusUnauthorized:
		return // the WebSocket library's own refusal of a non-upgrade request
	case family == kindOther:
		return
	}
	if !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("not JSON (Content-Type %q): %s", ctype, what)
	}
	if !json.Valid(body) {
		t.Fatalf("invalid JSON: %s", what)
	}
	if status >= 400 && family != kindHealth {
		if family == kindAPI {
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf(`/api error not {"error":"..."}: %s`, what)
			}
		} else {
			var e errorBody
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf(`error not {"error":{"code","message"}}: %s`, what)
			}
		}
		if status == http.StatusUnauthorized && !a.secured && family != kindAPI {
			t.Fatalf("401 in open mode: %s", what)
		}
		if status == http.StatusUnauthorized && a.secured && a.accepted && flags&fuzzRaw == 0 && a.acts(family) {
			t.Fatalf("a valid token refused: %s", what)
		}
		return
	}
	if status >= 300 {
		return
	}
	// 2xx: the caller was allowed.
	if a.secured {
		if family != kindHealth && !a.acts(family) {
			t.Fatalf("answered without a valid token: %s", what)
		}
		// Escaped, seg1 is the room the route read if the mux chose that route.
		if rt.roomRead() && pattern == "GET "+roomPattern(rt.path) && flags&fuzzRaw == 0 && !a.caps.CanSubscribe(seg1) {
			t.Fatalf("read of %q outside caps %+v: %s", seg1, a.caps, what)
		}
	}
	n.checkAnswer(t, pattern, body, a, what)
	return family
}

// acts reports whether the request carries a valid token where routes of
// family read one: /v1 and the WebSocket upgrade read the Authorization
// header and ?token=, never the cookie; /api reads all three.
func (a fuzzAuthn) acts(family routeKind) bool {
	return a.valid && (family == kindAPI || a.via != authCookie)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// documented5xx: the metadata endpoints answer 503 without a store or
// without a raft leader, /readyz 503 when not ready.
func documented5xx(pattern string, status int, body []byte) bool {
	if status != http.StatusServiceUnavailable {
		return false
	}
	switch pattern {
	case "GET /readyz":
		return true
	case "GET /v1/rooms", "GET /v1/rooms/{room}/meta", "PUT /v1/rooms/{room}/meta", "DELETE /v1/rooms/{room}/meta":
		var e errorBody
		_ = json.Unmarshal(body, &e)
		return e.Error.Code == CodeUnavailable
	}
	return false
}

// webPatterns are the routes of the browser files (/, /dashboard, /presence.js …).
var webPatterns = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range webPatternList() {
		m[p] = true
	}
	return m
}()

// familyOf says which kind of route the mux pattern is.
func familyOf(pattern string) routeKind {
	_, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasPrefix(path, "/api/"):
		return kindAPI
	case path == "/v1/rooms/{room}/events":
		return kindSSE
	case path == "/healthz" || path == "/readyz":
		return kindHealth
	case path == "/v1/ws" || path == "/ws":
		return kindWS
	case path == "/metrics" || path == "/internal/v1/hold":
		return kindOther
	case webPatterns[pattern]:
		return kindOther // the browser files: public, not JSON
	}
	return kindV1 // the /v1 routes and the catch-all 404
}

// checkSSE: every event of the stream is well formed, its data JSON.
func checkSSE(t *testing.T, body []byte, what string) {
	t.Helper()
	if !bytes.HasPrefix(body, []byte("id: ")) || !bytes.Contains(body, []byte("\nevent: snapshot\n")) {
		t.Fatalf("SSE stream does not start with a snapshot: %s", what)
	}
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok && !json.Valid([]byte(data)) {
				t.Fatalf("SSE data not JSON: %s", what)
			} else if !ok && !strings.HasPrefix(line, "id: ") && !strings.HasPrefix(line, "event: ") && !strings.HasPrefix(line, ":") {
				t.Fatalf("SSE line %q: %s", line, what)
			}
		}
	}
}

// checkAnswer compares a successful answer with the engine.
func (n *fuzzNode) checkAnswer(t *testing.T, pattern string, body []byte, a fuzzAuthn, what string) {
	t.Helper()
	switch pattern {
	case "GET /v1/rooms/{room}/members":
		var got membersBody
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("members: %v: %s", err, what)
		}
		if strings.ContainsRune(got.Room, '\uFFFD') {
			return // not the UTF-8 the room id was
		}
		want, v := n.engine.RoomMembers(got.Room)
		if len(got.Members) != len(want) || got.Version != v {
			t.Fatalf("members answer %d at v%d, engine has %d at v%d: %s", len(got.Members), got.Version, len(want), v, what)
		}
	case "GET /v1/rooms/{room}/counts":
		var got session.Counts
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("counts: %v: %s", err, what)
		}
		if strings.ContainsRune(got.Room, '\uFFFD') {
			return
		}
		if want := n.engine.RoomCounts(got.Room); got != want {
			t.Fatalf("counts answer %+v, engine %+v: %s", got, want, what)
		}
	case "GET /v1/users/{user}/rooms":
		var got userRoomsBody
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("rooms of user: %v: %s", err, what)
		}
		for _, r := range got.Rooms {
			if a.secured && !a.caps.CanSubscribe(r) {
				t.Fatalf("room %q shown outside caps %+v: %s", r, a.caps, what)
			}
		}
	}
}

// checkAuthz: with authentication on, only the token's user's sessions
// change, and they only enter rooms the caps allow.
func (n *fuzzNode) checkAuthz(t *testing.T, a fuzzAuthn, family routeKind) {
	t.Helper()
	if !a.secured {
		return
	}
	valid := a.acts(family)
	n.mu.Lock()
	writes := append([]crdt.Entry(nil), n.writes...)
	n.mu.Unlock()
	for sid, was := range n.initial {
		info, ok := n.engine.Session(sid)
		if valid && ok && info.User == a.sub {
			continue
		}
		var prev session.SessionInfo
		_ = json.Unmarshal(was, &prev)
		if valid && prev.User == a.sub {
			continue
		}
		if !ok || !bytes.Equal(mustMarshal(info), was) {
			t.Fatalf("session %s of %q changed by a request as %q (valid %v): %s → %+v (found %v)", sid, prev.User, a.sub, valid, was, info, ok)
		}
	}
	for _, e := range writes {
		rest, isMember := strings.CutPrefix(e.Key, "m/")
		if !isMember {
			rest, isMember = strings.CutPrefix(e.Key, "t/")
		}
		if s, ok := strings.CutPrefix(e.Key, "s/"); ok && !e.Deleted {
			if info, found := n.engine.Session(s); found && (!valid || info.User != a.sub) {
				t.Fatalf("session %s of %q written by a request as %q (valid %v)", s, info.User, a.sub, valid)
			}
		}
		if !isMember || e.Deleted {
			continue
		}
		sid, room, _ := strings.Cut(rest, "/")
		if !valid {
			t.Fatalf("%s written without a valid token", e.Key)
		}
		if info, ok := n.engine.Session(sid); ok && info.User != a.sub {
			t.Fatalf("session %s of %q entered %q by a request as %q", sid, info.User, room, a.sub)
		}
		if !a.caps.CanEnter(room) {
			t.Fatalf("entered or typed in %q outside caps %+v", room, a.caps)
		}
	}
}

// checkInvariants recomputes every room's aggregates from its members
// through the engine's public queries.
func (n *fuzzNode) checkInvariants(t *testing.T, when string) {
	t.Helper()
	n.watch() // rooms created by the request
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(when+": "+format, args...)
	}
	inRoom := map[string]map[string]bool{} // room → sessions listed
	for _, room := range n.knownRooms() {
		snap := n.engine.RoomSnapshot(room)
		members, v := n.engine.RoomMembers(room)
		users, uv := n.engine.RoomUsers(room)
		counts := n.engine.RoomCounts(room)
		if v != snap.Version || uv != v || counts.Version != v {
			fail("room %q versions disagree: snapshot %d members %d users %d counts %d", room, snap.Version, v, uv, counts.Version)
		}
		var online, here session.CountSet
		seen, hereUsers := map[string][]session.Member{}, map[string]bool{}
		inRoom[room] = map[string]bool{}
		for _, m := range members {
			inRoom[room][m.Session] = true
			online.Connections++
			if m.Here != (m.Location == room) {
				fail("room %q member %s here=%v at location %q", room, m.Session, m.Here, m.Location)
			}
			if m.Here {
				here.Connections++
			}
			if m.User == "" {
				online.Anonymous++
				if m.Here {
					here.Anonymous++
				}
				continue
			}
			seen[m.User] = append(seen[m.User], m)
			if m.Here {
				hereUsers[m.User] = true
			}
			info, ok := n.engine.Session(m.Session)
			if !ok || info.User != m.User || info.State != m.State || !contains(info.Rooms, room) {
				fail("room %q lists %+v; the session reads %+v (found %v)", room, m, info, ok)
			}
		}
		online.Users, here.Users = len(seen), len(hereUsers)
		if counts.Online != online || counts.Here != here {
			fail("room %q counts online %+v here %+v, members give %+v %+v", room, counts.Online, counts.Here, online, here)
		}
		if len(users) != len(seen) {
			fail("room %q lists %d users, members name %d", room, len(users), len(seen))
		}
		for _, u := range users {
			ms := seen[u.User]
			st, la, h := session.Offline, int64(0), false
			for _, m := range ms {
				if m.State.Stronger(st) {
					st = m.State
				}
				la = max(la, m.LastActive)
				h = h || m.Here
			}
			if u.Sessions != len(ms) || u.State != st || u.LastActive != la || u.Here != h {
				fail("room %q user %+v, members give %d sessions %s last active %d here %v", room, u, len(ms), st, la, h)
			}
		}
		// The cached encodings equal fresh ones.
		buf, cv := n.engine.AppendMembersJSON(nil, room)
		var cached []session.Member
		if err := json.Unmarshal(buf, &cached); err != nil || cv != v {
			fail("room %q cached listing %v at v%d: %s", room, err, cv, truncate(buf))
		}
		sort.Slice(cached, func(i, j int) bool { return cached[i].Session < cached[j].Session })
		if !bytes.Equal(mustMarshal(cached), mustMarshal(members)) {
			fail("room %q cached listing differs from the members:\n%s\n%s", room, mustMarshal(cached), mustMarshal(members))
		}
		// A subscriber's view, rebuilt from events, equals the room.
		if view := n.views[room]; view != nil {
			n.mu.Lock()
			evs := n.pending[room]
			n.pending[room] = nil
			n.mu.Unlock()
			for _, ev := range evs {
				if err := view.Apply(ev); err != nil {
					fail("room %q event stream: %v", room, err)
				}
			}
			fromEvents := make([]session.Member, 0, len(view.Members))
			for _, sid := range view.Sessions() {
				fromEvents = append(fromEvents, view.Members[sid])
			}
			if view.Version != v || !bytes.Equal(mustMarshal(fromEvents), mustMarshal(members)) {
				fail("room %q: events rebuild v%d %s, room is v%d %s", room, view.Version, mustMarshal(fromEvents), v, mustMarshal(members))
			}
			typing := make([]string, 0, len(view.Typing))
			for sid := range view.Typing {
				typing = append(typing, sid)
			}
			sort.Strings(typing)
			if !bytes.Equal(mustMarshal(typing), mustMarshal(snap.TypingSessions)) {
				fail("room %q: events say typing %v, room %v", room, typing, snap.TypingSessions)
			}
		}
	}
	// Sessions agree with rooms; users with their sessions.
	perUser := map[string]int{}
	userRooms := map[string]map[string]bool{}
	live := 0
	for _, sid := range n.knownSessions() {
		info, ok := n.engine.Session(sid)
		if !ok {
			continue
		}
		live++
		if info.Kind == session.KindHTTP {
			n.httpSids[sid] = true
		}
		for _, r := range info.Rooms {
			if !inRoom[r][sid] {
				fail("session %s is in %q, which does not list it", sid, r)
			}
		}
		if info.User != "" {
			perUser[info.User]++
			if userRooms[info.User] == nil {
				userRooms[info.User] = map[string]bool{}
			}
			for _, r := range info.Rooms {
				userRooms[info.User][r] = true
			}
		}
	}
	for u, c := range perUser {
		p := n.engine.UserPresence(u)
		if p.Sessions != c || p.State == session.Offline {
			fail("user %q has %d sessions, presence says %+v", u, c, p)
		}
		got := n.engine.UserRooms(u)
		if len(got) != len(userRooms[u]) {
			fail("user %q rooms %v, sessions give %v", u, got, userRooms[u])
		}
		for _, r := range got {
			if !userRooms[u][r] {
				fail("user %q rooms %v, sessions give %v", u, got, userRooms[u])
			}
		}
	}
	st := n.engine.Stats()
	if st.Sessions != live || st.OwnedSessions != live || st.Users != len(perUser) {
		fail("stats %+v, index has %d sessions of %d users", st, live, len(perUser))
	}
}

// checkExpired: an hour on, every heartbeat session has expired and every
// agent session the request did not end is still there.
func (n *fuzzNode) checkExpired(t *testing.T) {
	t.Helper()
	for sid := range n.httpSids {
		if info, ok := n.engine.Session(sid); ok {
			t.Fatalf("heartbeat session %s outlived its TTL and grace: %+v", sid, info)
		}
	}
	for _, sid := range []string{"agent-1", "agent-2"} {
		if info, ok := n.engine.Session(sid); ok && info.State != session.Active {
			t.Fatalf("agent session %s went %s by itself", sid, info.State)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fuzzMeta is an in-memory room metadata store that validates like the
// cluster's: a JSON object of known fields with non-negative numbers.
type fuzzMeta struct {
	mu   sync.Mutex
	down bool // no raft leader: writes fail
	docs map[string]fuzzRoomMeta
}

type fuzzRoomMeta struct {
	GraceMS         int64           `json:"grace_ms,omitempty"`
	MaxMembers      int             `json:"max_members,omitempty"`
	TypingTimeoutMS int64           `json:"typing_timeout_ms,omitempty"`
	Visibility      string          `json:"visibility,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
}

func newFuzzMeta() *fuzzMeta { return &fuzzMeta{docs: map[string]fuzzRoomMeta{}} }

func (m *fuzzMeta) RoomConfig(room string) (session.RoomConfig, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[room]
	if !ok {
		return session.RoomConfig{}, false
	}
	return session.RoomConfig{Grace: time.Duration(d.GraceMS) * time.Millisecond, MaxMembers: d.MaxMembers,
		TypingTimeout: time.Duration(d.TypingTimeoutMS) * time.Millisecond}, true
}

func (m *fuzzMeta) PutJSON(_ context.Context, room string, body []byte, _ string) ([]byte, error) {
	var d fuzzRoomMeta
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil || dec.More() || bytes.TrimSpace(body)[0] != '{' {
		return nil, fmt.Errorf("%w: want a JSON object of known fields", ErrMetaInvalid)
	}
	if d.GraceMS < 0 || d.MaxMembers < 0 || d.TypingTimeoutMS < 0 || d.GraceMS > 3_600_000 || d.TypingTimeoutMS > 60_000 {
		return nil, fmt.Errorf("%w: out of range", ErrMetaInvalid)
	}
	if room == "" || len(room) > 128 {
		return nil, fmt.Errorf("%w: room id", ErrMetaInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("%w: no leader", ErrMetaUnavailable)
	}
	m.docs[room] = d
	return m.docLocked(room), nil
}

func (m *fuzzMeta) docLocked(room string) []byte {
	d := m.docs[room]
	b := mustMarshal(d)
	return append(append([]byte(`{"room":`), mustMarshal(room)...), append([]byte(`,"meta":`), append(b, '}')...)...)
}

func (m *fuzzMeta) GetJSON(room string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[room]; !ok {
		return nil, false
	}
	return m.docLocked(room), true
}

func (m *fuzzMeta) GetJSONConsistent(_ context.Context, room string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("%w: no leader", ErrMetaUnavailable)
	}
	if _, ok := m.docs[room]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrMetaNotFound, room)
	}
	return m.docLocked(room), nil
}

func (m *fuzzMeta) DeleteRoom(_ context.Context, room, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return fmt.Errorf("%w: no leader", ErrMetaUnavailable)
	}
	if _, ok := m.docs[room]; !ok {
		return ErrMetaNotFound
	}
	delete(m.docs, room)
	return nil
}

func (m *fuzzMeta) ListJSON() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.docs))
	for r := range m.docs {
		names = append(names, r)
	}
	sort.Strings(names)
	out := []byte(`{"rooms":[`)
	for i, r := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m.docLocked(r)...)
	}
	return append(out, "]}\n"...)
}
