package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// The browser files are served with their content types, revalidated by
// ETag; unknown paths still get the JSON 404.
func TestWebAssets(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	for _, c := range []struct {
		path, ctype, contains string
		csp                   bool
	}{
		{"/", "text/html; charset=utf-8", "presenced demo", true},
		{"/dashboard", "text/html; charset=utf-8", "presenced cluster", true},
		{"/presence.js", "text/javascript; charset=utf-8", "export class PresenceClient", false},
		{"/presence.d.ts", "application/typescript; charset=utf-8", "export class PresenceClient", false},
		{"/presence-react.js", "text/javascript; charset=utf-8", "export function usePresence", false},
		{"/presence-react.d.ts", "application/typescript; charset=utf-8", "export function useTyping", false},
		{"/presence-components.js", "text/javascript; charset=utf-8", "export function AvatarStack", false},
		{"/presence.css", "text/css; charset=utf-8", ".pr-dot", false},
		{"/demo.js", "text/javascript; charset=utf-8", "from '/presence.js'", false},
		{"/dashboard.js", "text/javascript; charset=utf-8", "/v1/cluster", false},
		{"/examples/react.html", "text/html; charset=utf-8", "importmap", false},
		{"/examples/react-app.js", "text/javascript; charset=utf-8", "usePresence", false},
	} {
		resp, err := http.Get(n.http.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(body.String(), c.contains) {
			t.Fatalf("GET %s: %d %q, body has %q: %v", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.contains, strings.Contains(body.String(), c.contains))
		}
		if got := resp.Header.Get("Content-Security-Policy") != ""; got != c.csp {
			t.Fatalf("GET %s: CSP set %v, want %v", c.path, got, c.csp)
		}
		page := c.path == "/" || c.path == "/dashboard" || strings.HasSuffix(c.path, ".html")
		if cors := resp.Header.Get("Access-Control-Allow-Origin"); (cors == "*") == page {
			t.Fatalf("GET %s: Access-Control-Allow-Origin %q", c.path, cors)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: no nosniff", c.path)
		}
		etag := resp.Header.Get("ETag")
		req, _ := http.NewRequest("GET", n.http.URL+c.path, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Fatalf("GET %s with If-None-Match %s: %d", c.path, etag, resp.StatusCode)
		}
	}
	// presence.js ends its session on pagehide (unless this is the
	// deliberately broken build).
	_, js := n.do("GET", "/presence.js", "", "", nil)
	if strings.Contains(js, "const LEAVE_ON_PAGEHIDE = true;") == BrokenBuild {
		t.Fatalf("LEAVE_ON_PAGEHIDE does not match the build (broken: %v)", BrokenBuild)
	}
	for _, p := range []string{"/nope", "/dashboard/x", "/index.html", "/web/presence.js"} {
		code, body := n.do("GET", p, "", "", nil)
		if code != 404 || !strings.Contains(body, `"code":"not_found"`) {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
	if code, body := n.do("POST", "/", "application/json", "{}", nil); code != 404 || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("POST /: %d %s", code, body)
	}
}

// GET /v1/cluster: this node alone without a cluster, the sessions it
// owns by state, and the rooms with members, busiest first.
func TestClusterEndpoint(t *testing.T) {
	n := newTestNode(t, nodeOpts{engine: session.Config{Node: "test"}})
	ctx := ctxT(t)
	a := n.dial(client.Options{User: "alice", Location: "lobby"})
	if err := a.Enter(ctx, "lobby", nil); err != nil {
		t.Fatal(err)
	}
	b := n.dial(client.Options{User: "bob"})
	for _, room := range []string{"lobby", "side"} {
		if err := b.Enter(ctx, room, nil); err != nil {
			t.Fatal(err)
		}
	}
	code, body := n.do("GET", "/v1/cluster", "", "", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var got struct {
		Node  string        `json:"node"`
		Nodes []ClusterNode `json:"nodes"`
		Raft  RaftInfo      `json:"raft"`
		Rooms []struct {
			Room   string           `json:"room"`
			Online session.CountSet `json:"online"`
			Here   session.CountSet `json:"here"`
		} `json:"rooms"`
		RoomsTotal int `json:"rooms_total"`
		Sessions   int `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Node != "test" || len(got.Nodes) != 1 || got.Nodes[0].Name != "test" || got.Nodes[0].State != "alive" || !got.Nodes[0].Self ||
		got.Nodes[0].Sessions != 2 || got.Nodes[0].SessionStates[session.Active] != 2 || got.Sessions != 2 {
		t.Fatalf("nodes: %s", body)
	}
	if got.RoomsTotal != 2 || len(got.Rooms) != 2 || got.Rooms[0].Room != "lobby" || got.Rooms[0].Online.Users != 2 ||
		got.Rooms[0].Here.Users != 1 || got.Rooms[1].Room != "side" {
		t.Fatalf("rooms: %s", body)
	}

	// A cluster view from the embedding program, and a node that owns
	// sessions but is no longer listed.
	n2 := newTestNode(t, nodeOpts{engine: session.Config{Node: "test"}, gateway: Config{Cluster: func() ClusterInfo {
		return ClusterInfo{
			Nodes: []ClusterNode{{Name: "test", State: "alive", Self: true, RaftRole: "leader"}, {Name: "peer", State: "suspect"}},
			Raft:  RaftInfo{Leader: "test", State: "Leader"},
		}
	}}})
	_, body = n2.do("GET", "/v1/cluster", "", "", nil)
	if !strings.Contains(body, `"name":"peer","state":"suspect"`) || !strings.Contains(body, `"leader":"test"`) || !strings.Contains(body, `"raft_role":"leader"`) {
		t.Fatalf("cluster view: %s", body)
	}
}

// With tokens on, /v1/cluster needs an admin token, and lists only
// readable rooms.
func TestClusterEndpointAuth(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	ctx := ctxT(t)
	c := n.dial(client.Options{Token: token(t, "alice", time.Hour, nil)})
	for _, room := range []string{"team-a", "secret"} {
		if err := c.Enter(ctx, room, nil); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := n.do("GET", "/v1/cluster", "", "", nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	plain := token(t, "viewer", time.Hour, map[string]any{"caps": map[string]any{"subscribe": []string{"*"}}})
	if code, body := n.do("GET", "/v1/cluster", "", "", map[string]string{"Authorization": "Bearer " + plain}); code != 403 || !strings.Contains(body, `"forbidden"`) {
		t.Fatalf("a token without caps.admin: %d %s", code, body)
	}
	tok := token(t, "viewer", time.Hour, map[string]any{"caps": map[string]any{"subscribe": []string{"team-*"}, "admin": true}})
	code, body := n.do("GET", "/v1/cluster", "", "", map[string]string{"Authorization": "Bearer " + tok})
	if code != 200 || !strings.Contains(body, `"room":"team-a"`) || strings.Contains(body, "secret") || !strings.Contains(body, `"rooms_total":1`) {
		t.Fatalf("%d %s", code, body)
	}
}

// webPatternList lists the mux patterns of the browser files (for tests).
func webPatternList() []string {
	routes := webRoutes(loadWebAssets())
	out := make([]string, 0, len(routes))
	for p := range routes {
		out = append(out, "GET "+p)
	}
	sort.Strings(out)
	return out
}
