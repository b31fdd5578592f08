package gateway

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

func ids(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = "u" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return strings.Join(out, ",")
}

func TestHTTPUserBatchLimit(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	if code, body := n.do("GET", "/v1/users?ids="+ids(100), "", "", nil); code != 200 || !strings.Contains(body, `"users"`) {
		t.Fatalf("100 ids: %d %s", code, body)
	}
	if code, body := n.do("GET", "/v1/users?ids="+ids(101), "", "", nil); code != 400 || !strings.Contains(body, `"bad_request"`) {
		t.Fatalf("101 ids: %d %s", code, body)
	}
	if code, _ := n.do("GET", "/v1/users?ids=", "", "", nil); code != 400 {
		t.Fatalf("no ids: %d", code)
	}
}

func TestHTTPQueriesAnswerWhatWebSocketsDid(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	a1 := n.dial(client.Options{User: "alice", Device: session.Device{Kind: "desktop"}, Location: "chat"})
	a2 := n.dial(client.Options{User: "alice", Device: session.Device{Kind: "mobile"}})
	anon := n.dial(client.Options{Location: "chat"})
	for _, c := range []*client.Client{a1, a2, anon} {
		if err := c.Enter(ctx, "chat", nil); err != nil {
			t.Fatal(err)
		}
	}
	code, body := n.do("GET", "/v1/rooms/chat/counts", "", "", nil)
	var counts session.Counts
	if err := json.Unmarshal([]byte(body), &counts); code != 200 || err != nil {
		t.Fatalf("counts %d %s", code, body)
	}
	want := session.CountSet{Connections: 3, Users: 1, Anonymous: 1}
	wantHere := session.CountSet{Connections: 2, Users: 1, Anonymous: 1}
	if counts.Online != want || counts.Here != wantHere {
		t.Fatalf("counts %+v", counts)
	}
	code, body = n.do("GET", "/v1/rooms/chat/members", "", "", nil)
	if code != 200 || strings.Count(body, `"session"`) != 3 {
		t.Fatalf("members %d %s", code, body)
	}
	code, body = n.do("GET", "/v1/rooms/chat/users", "", "", nil)
	if code != 200 || !strings.Contains(body, `"user":"alice","state":"active","sessions":2`) {
		t.Fatalf("users %d %s", code, body)
	}
	code, body = n.do("GET", "/v1/users/alice", "", "", nil)
	if code != 200 || !strings.Contains(body, `"devices":{"desktop":"active","mobile":"active"}`) {
		t.Fatalf("user %d %s", code, body)
	}
	code, body = n.do("GET", "/v1/users/alice/rooms", "", "", nil)
	if code != 200 || !strings.Contains(body, `"rooms":["chat"]`) {
		t.Fatalf("rooms %d %s", code, body)
	}
	code, body = n.do("GET", "/v1/users/nobody/last-seen", "", "", nil)
	if code != 200 || !strings.Contains(body, `"last_seen":null`) {
		t.Fatalf("last-seen %d %s", code, body)
	}
	if code, body := n.do("GET", "/v1/nothing", "", "", nil); code != 404 || !strings.Contains(body, "not_found") {
		t.Fatalf("unknown route %d %s", code, body)
	}
	if code, _ := n.do("GET", "/v1/rooms/chat/meta", "", "", nil); code != 503 {
		t.Fatalf("meta without a store: %d", code)
	}
}

func TestHTTPAuthRequired(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	for _, path := range []string{"/v1/rooms/r/members", "/v1/users?ids=a", "/v1/users/a", "/v1/rooms/r/counts"} {
		if code, body := n.do("GET", path, "", "", nil); code != 401 || !strings.Contains(body, "unauthorized") {
			t.Errorf("%s without token: %d %s", path, code, body)
		}
		if code, _ := n.do("GET", path, "", "", map[string]string{"Authorization": "Bearer nope"}); code != 401 {
			t.Errorf("%s with bad token: %d", path, code)
		}
		if code, _ := n.do("GET", path, "", "", map[string]string{"Authorization": "Bearer " + token(t, "x", time.Hour, nil)}); code != 200 {
			t.Errorf("%s with good token: %d", path, code)
		}
	}
	if code, _ := n.do("GET", "/healthz", "", "", nil); code != 200 {
		t.Fatal("healthz needs no token")
	}
	limited := token(t, "x", time.Hour, map[string]any{"caps": map[string]any{"subscribe": []string{"public-*"}}})
	if code, _ := n.do("GET", "/v1/rooms/secret/members", "", "", map[string]string{"Authorization": "Bearer " + limited}); code != 403 {
		t.Fatalf("caps not enforced: %d", code)
	}
}

func TestHTTPAgentsAndSSE(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	req, _ := http.NewRequest("GET", n.http.URL+"/v1/rooms/ops/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sse: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	code, body := n.do("POST", "/v1/agents", "application/json",
		`{"user":"summarizer","device":{"kind":"agent","platform":"gpt"},"rooms":[{"room":"ops","data":{"task":"x"}}]}`, nil)
	if code != 201 {
		t.Fatalf("create agent: %d %s", code, body)
	}
	var agent struct{ Session string }
	_ = json.Unmarshal([]byte(body), &agent)
	want := []string{"event: snapshot", "event: enter", "event: online"}
	deadline := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if l == want[0] {
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("sse: still waiting for %v", want)
		}
	}
	if code, _ := n.do("DELETE", "/v1/agents/"+agent.Session+"?reason=kicked", "", "", nil); code != 204 {
		t.Fatalf("delete agent: %d", code)
	}
	for l := range lines {
		if strings.HasPrefix(l, "data:") && strings.Contains(l, `"type":"leave"`) {
			if !strings.Contains(l, `"reason":"kicked"`) {
				t.Fatalf("leave without reason kicked: %s", l)
			}
			return
		}
	}
	t.Fatal("no leave on the stream")
}

func TestHealthReadyMetrics(t *testing.T) {
	ready := true
	n := newTestNode(t, nodeOpts{gateway: Config{Ready: func() bool { return ready }}})
	if code, _ := n.do("GET", "/readyz", "", "", nil); code != 200 {
		t.Fatal("not ready")
	}
	ready = false
	if code, _ := n.do("GET", "/readyz", "", "", nil); code != 503 {
		t.Fatal("ready while dependency not ready")
	}
	n.dial(client.Options{User: "m"})
	code, body := n.do("GET", "/metrics", "", "", nil)
	for _, want := range []string{"presenced_sessions 1", "presenced_ws_connections 1", "presenced_http_request_duration_seconds_bucket"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// The Authorization scheme is case-insensitive on /v1 as on /api: a client
// sending "bearer X" was refused with 401 "missing token" on /v1 (found by
// FuzzHTTPHandlers).
func TestHTTPBearerSchemeAnyCase(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	tok := token(t, "x", time.Hour, nil)
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "  Bearer   " + tok + " "} {
		if code, body := n.do("GET", "/v1/users/x/rooms", "", "", map[string]string{"Authorization": h}); code != 200 {
			t.Errorf("%q: %d %s", h[:10], code, body)
		}
		if code, _ := n.do("GET", "/api/presence?userIds=x", "", "", map[string]string{"Authorization": h}); code != 200 {
			t.Errorf("%q on /api: %d", h[:10], code)
		}
	}
	// A bad token in any case is checked before the WebSocket upgrade.
	if code, _ := n.do("GET", "/v1/ws", "", "", map[string]string{"Authorization": "bearer nope"}); code != 401 {
		t.Fatalf("bad lower-case bearer on the upgrade: %d", code)
	}
	if code, _ := n.do("GET", "/v1/users/x", "", "", map[string]string{"Authorization": "Basic eDp5"}); code != 401 {
		t.Fatalf("basic auth: %d", code)
	}
}

// The debug view of a session is served only with DebugEndpoints: its
// entries as stored and the index's view.
func TestDebugSessionEndpoint(t *testing.T) {
	off := newTestNode(t, nodeOpts{})
	if code, _ := off.do("GET", "/internal/v1/debug/sessions/x", "", "", nil); code != 404 {
		t.Fatalf("without DebugEndpoints: %d", code)
	}
	n := newTestNode(t, nodeOpts{gateway: Config{DebugEndpoints: true}})
	op, _ := n.engine.Open(session.OpenRequest{User: "dora"})
	_ = n.engine.Enter(op.Session, "r", nil)
	code, body := n.do("GET", "/internal/v1/debug/sessions/"+op.Session+"?rooms=r,other", "", "", nil)
	var d session.SessionDebug
	if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil {
		t.Fatalf("%d %s %v", code, body, err)
	}
	if !d.Owned || !d.Connected || !d.Record || len(d.Rooms) != 1 || len(d.Entries) != 3 ||
		!d.Entries[0].Present || !d.Entries[1].Present || d.Entries[2].Present {
		t.Fatalf("debug view %s", body)
	}
}
