package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/session"
)

// These tests speak to presenced exactly as the seed-001 client does.

func TestSeedHeartbeatPresenceAndOfflineBeacon(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	alice := map[string]string{"X-Presence-User": "alice", "X-Presence-Client": "tab-1"}
	code, body := n.do("POST", "/api/presence", "application/json", `{"status":"online","metadata":{"page":"/doc"}}`, alice)
	if code != 200 || body != "{\"success\":true}\n" {
		t.Fatalf("heartbeat: %d %q", code, body)
	}
	code, body = n.do("GET", "/api/presence?userIds=alice,bob", "", "", nil)
	var got struct {
		Presence map[string]*struct {
			UserID   string          `json:"userId"`
			Status   string          `json:"status"`
			LastSeen int64           `json:"lastSeen"`
			Metadata json.RawMessage `json:"metadata"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("presence: %d %s", code, body)
	}
	if a := got.Presence["alice"]; a == nil || a.Status != "online" || string(a.Metadata) != `{"page":"/doc"}` || a.LastSeen == 0 {
		t.Fatalf("alice: %s", body)
	}
	if b, ok := got.Presence["bob"]; !ok || b != nil {
		t.Fatalf("bob should be null: %s", body)
	}
	// Away (the seed sends it when the tab is hidden).
	n.do("POST", "/api/presence", "application/json", `{"status":"away"}`, alice)
	if _, body := n.do("GET", "/api/presence?userIds=alice", "", "", nil); !strings.Contains(body, `"status":"away"`) {
		t.Fatalf("away: %s", body)
	}
	// A second tab (another client id) is another session: the user stays online when one ends.
	alice2 := map[string]string{"X-Presence-User": "alice", "X-Presence-Client": "tab-2"}
	n.do("POST", "/api/presence", "application/json", `{"status":"online"}`, alice2)
	// The unmount beacon: navigator.sendBeacon posts text/plain.
	if code, _ := n.do("POST", "/api/presence", "text/plain;charset=UTF-8", `{"status":"offline"}`, alice2); code != 200 {
		t.Fatalf("beacon: %d", code)
	}
	if _, body := n.do("GET", "/api/presence?userIds=alice", "", "", nil); !strings.Contains(body, `"status":"away"`) {
		t.Fatalf("after closing tab 2: %s", body)
	}
	n.do("POST", "/api/presence", "text/plain", `{"status":"offline"}`, alice)
	if _, body := n.do("GET", "/api/presence?userIds=alice", "", "", nil); body != "{\"presence\":{\"alice\":null}}\n" {
		t.Fatalf("after the last beacon: %s", body)
	}
}

func TestSeedPresenceIDLimits(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	if code, body := n.do("GET", "/api/presence?userIds="+ids(101), "", "", nil); code != 400 || body != "{\"error\":\"Too many user IDs\"}\n" {
		t.Fatalf("101 ids: %d %s", code, body)
	}
	if code, body := n.do("GET", "/api/presence?userIds="+ids(100), "", "", nil); code != 200 || strings.Count(body, "null") != 100 {
		t.Fatalf("100 ids: %d %s", code, body)
	}
	if code, body := n.do("GET", "/api/presence", "", "", nil); code != 400 || body != "{\"error\":\"No user IDs provided\"}\n" {
		t.Fatalf("no ids: %d %s", code, body)
	}
}

func TestSeedRoomsAndTyping(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	for _, u := range []string{"ann", "ben"} {
		h := map[string]string{"X-Presence-User": u}
		if code, body := n.do("POST", "/api/presence/room/project-1", "text/plain", `{"action":"join"}`, h); code != 200 || body != "{\"success\":true}\n" {
			t.Fatalf("join: %d %s", code, body)
		}
	}
	code, body := n.do("GET", "/api/presence/room/project-1", "", "", nil)
	var room struct {
		Members []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(body), &room); code != 200 || err != nil || len(room.Members) != 2 ||
		room.Members[0].ID != "ann" || room.Members[0].Status != "online" {
		t.Fatalf("room: %d %s", code, body)
	}
	n.do("POST", "/api/presence/room/project-1", "application/json", `{"action":"leave"}`, map[string]string{"X-Presence-User": "ben"})
	if _, body := n.do("GET", "/api/presence/room/project-1", "", "", nil); strings.Contains(body, `"ben"`) {
		t.Fatalf("ben still listed: %s", body)
	}
	if code, _ := n.do("POST", "/api/presence/room/project-1", "application/json", `{"action":"dance"}`, map[string]string{"X-Presence-User": "ben"}); code != 400 {
		t.Fatalf("bad action: %d", code)
	}
	// Typing: the seed posts without a content type.
	if code, body := n.do("POST", "/api/channels/c1/typing", "", `{"typing":true}`, map[string]string{"X-Presence-User": "ann"}); code != 200 {
		t.Fatalf("typing: %d %s", code, body)
	}
	if _, body := n.do("GET", "/api/channels/c1/typing", "", "", nil); body != "{\"typingUsers\":[\"ann\"]}\n" {
		t.Fatalf("typingUsers: %s", body)
	}
	n.do("POST", "/api/channels/c1/typing", "", `{"typing":false}`, map[string]string{"X-Presence-User": "ann"})
	if _, body := n.do("GET", "/api/channels/c1/typing", "", "", nil); body != "{\"typingUsers\":[]}\n" {
		t.Fatalf("typingUsers after stop: %s", body)
	}
}

func TestSeedAuthFromCookieQueryAndHeader(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	tok := token(t, "zed", time.Hour, nil)
	if code, body := n.do("POST", "/api/presence", "text/plain", `{"status":"online"}`, nil); code != 401 || body != "{\"error\":\"Unauthorized\"}\n" {
		t.Fatalf("no token: %d %s", code, body)
	}
	if code, _ := n.do("POST", "/api/presence?token=bad", "text/plain", `{"status":"online"}`, nil); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	if code, _ := n.do("POST", "/api/presence", "text/plain", `{"status":"online"}`, map[string]string{"Cookie": "presence_token=" + tok}); code != 200 {
		t.Fatalf("cookie token: %d", code)
	}
	if code, _ := n.do("GET", "/api/presence?userIds=zed&token="+tok, "", "", nil); code != 200 {
		t.Fatalf("query token: %d", code)
	}
	code, body := n.do("GET", "/api/presence?userIds=zed", "", "", map[string]string{"Authorization": "Bearer " + tok})
	if code != 200 || !strings.Contains(body, `"status":"online"`) {
		t.Fatalf("bearer: %d %s", code, body)
	}
	// The beacon with ?token= ends the session.
	if code, _ := n.do("POST", "/api/presence?token="+tok, "text/plain", `{"status":"offline"}`, nil); code != 200 {
		t.Fatalf("beacon: %d", code)
	}
	if _, body := n.do("GET", "/api/presence?userIds=zed", "", "", map[string]string{"Authorization": "Bearer " + tok}); !strings.Contains(body, `"zed":null`) {
		t.Fatalf("after beacon: %s", body)
	}
}

func TestSeedHeartbeatTTLExpires(t *testing.T) {
	n := newTestNode(t, nodeOpts{engine: session.Config{HeartbeatTTL: 100 * time.Millisecond, Grace: 100 * time.Millisecond}})
	n.do("POST", "/api/presence", "application/json", `{"status":"online"}`, map[string]string{"X-Presence-User": "ttl"})
	eventually(t, "offline after TTL + grace", func() bool {
		_, body := n.do("GET", "/api/presence?userIds=ttl", "", "", nil)
		return strings.Contains(body, `"ttl":null`)
	})
}

// A malformed or too large body on a seed route is answered in the
// pattern's {"error":"..."}, like its other errors, not in the /v1 shape
// (found by FuzzHTTPHandlers).
func TestSeedBodyErrorsKeepThePatternShape(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	h := map[string]string{"X-Presence-User": "ann"}
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/api/presence", `0`, 400},
		{"/api/presence", `{"status":`, 400},
		{"/api/presence", `{"metadata":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
		{"/api/presence/room/r", `[]`, 400},
		{"/api/presence/room/r", `{"action":"` + strings.Repeat("x", 5000) + `"}`, 413},
		{"/api/channels/c/typing", `{"typing":"yes"}`, 400},
	} {
		code, body := n.do("POST", tc.path, "text/plain", tc.body, h)
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); code != tc.code || err != nil || e.Error == "" {
			t.Errorf("POST %s %.20q: %d %s", tc.path, tc.body, code, body)
		}
	}
}
