package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// A client that resumes before the server noticed its old socket died: the
// old connection is closed with 4103 and cannot mark the session stale.
func TestWSOldConnectionCannotStaleResumedSession(t *testing.T) {
	n := newTestNode(t, nodeOpts{engine: session.Config{Grace: 200 * time.Millisecond}})
	ctx := ctxT(t)
	old := n.dial(client.Options{User: "ola"})
	if err := old.Enter(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	fresh := n.dial(client.Options{User: "ola", Resume: old.Welcome.ResumeToken})
	if !fresh.Welcome.Resumed {
		t.Fatal("not resumed")
	}
	if code := old.CloseStatus(); code != CloseSessionEnded {
		t.Fatalf("old connection closed with %d, want %d", code, CloseSessionEnded)
	}
	// Well past grace, the session is still live on the fresh connection.
	watcher := n.dial(client.Options{User: "w"})
	if _, err := watcher.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Update(ctx, "r", map[string]int{"after": 1}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, watcher, session.EventUpdate)
	if ev.Member.State != session.Active {
		t.Fatalf("resumed session %s", ev.Member.State)
	}
	if p := n.engine.UserPresence("ola"); p.State != session.Active {
		t.Fatalf("ola %s", p.State)
	}
}

// A resume token of another user's session is refused without touching that
// session: it still goes stale and leaves after grace.
func TestWSForeignResumeLeavesVictimUntouched(t *testing.T) {
	n := newTestNode(t, nodeOpts{engine: session.Config{Grace: 200 * time.Millisecond}})
	ctx := ctxT(t)
	bob := n.dial(client.Options{User: "bob"})
	if err := bob.Enter(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	bob.Drop()
	eve := n.dial(client.Options{User: "eve", Resume: bob.Welcome.ResumeToken})
	if eve.Welcome.Resumed {
		t.Fatal("eve resumed bob's session")
	}
	eventually(t, "bob gone after grace", func() bool { return n.engine.UserPresence("bob").State == session.Offline })
}

type fakeMeta struct{ puts int }

func (f *fakeMeta) PutJSON(ctx context.Context, room string, body []byte, id string) ([]byte, error) {
	f.puts++
	return []byte(`{"room":"` + room + `"}`), nil
}
func (f *fakeMeta) GetJSON(room string) ([]byte, bool) {
	return []byte(`{"room":"` + room + `"}`), true
}
func (f *fakeMeta) GetJSONConsistent(ctx context.Context, room string) ([]byte, error) {
	return []byte(`{"room":"` + room + `"}`), nil
}
func (f *fakeMeta) DeleteRoom(ctx context.Context, room, id string) error {
	return ErrMetaNotFound
}
func (f *fakeMeta) ListJSON() []byte { return []byte(`{"rooms":[]}`) }

func TestHTTPMetaWritesNeedAdminAndCookiesAreNotTokens(t *testing.T) {
	meta := &fakeMeta{}
	n := newTestNode(t, nodeOpts{secured: true, gateway: Config{Meta: meta}})
	user := token(t, "u", time.Hour, nil)
	admin := token(t, "ops", time.Hour, map[string]any{"caps": map[string]any{"admin": true}})
	if code, _ := n.do("PUT", "/v1/rooms/r/meta", "", `{"max_members":1}`, map[string]string{"Authorization": "Bearer " + user}); code != 403 {
		t.Fatalf("user wrote metadata: %d", code)
	}
	if code, _ := n.do("GET", "/v1/rooms/r/meta", "", "", map[string]string{"Authorization": "Bearer " + user}); code != 200 {
		t.Fatalf("user cannot read metadata: %d", code)
	}
	if code, _ := n.do("PUT", "/v1/rooms/r/meta", "", `{"max_members":1}`, map[string]string{"Authorization": "Bearer " + admin}); code != 200 || meta.puts != 1 {
		t.Fatalf("admin write: %d", code)
	}
	if code, _ := n.do("DELETE", "/v1/rooms/r/meta", "", "", map[string]string{"Authorization": "Bearer " + admin}); code != 404 {
		t.Fatalf("delete of a missing room: %d", code)
	}
	// A cookie is not a token on /v1 (a cross-site text/plain POST could use it).
	if code, _ := n.do("POST", "/v1/agents", "text/plain", `{}`, map[string]string{"Cookie": "presence_token=" + user}); code != 401 {
		t.Fatalf("cookie accepted on /v1: %d", code)
	}
}

func TestWSCapsLimitTypingAndRoomsOfUser(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	ctx := ctxT(t)
	full := n.dial(client.Options{Token: token(t, "ann", time.Hour, nil)})
	if err := full.Enter(ctx, "secret", nil); err != nil {
		t.Fatal(err)
	}
	limited := n.dial(client.Options{Token: token(t, "lim", time.Hour, map[string]any{
		"caps": map[string]any{"enter": []string{"team-*"}, "subscribe": []string{"team-*"}}})})
	var ce *client.Error
	if err := limited.Typing(ctx, "secret", true); !errors.As(err, &ce) || ce.Code != string(CodeForbidden) {
		t.Fatalf("typing outside caps: %v", err)
	}
	var rooms userRoomsBody
	if err := limited.Query(ctx, "rooms", "", []string{"ann"}, &rooms); err != nil || len(rooms.Rooms) != 0 {
		t.Fatalf("rooms of ann leaked: %+v %v", rooms, err)
	}
}

func TestWSLimitsSubscriptionsAndDeviceMeta(t *testing.T) {
	n := newTestNode(t, nodeOpts{gateway: Config{MaxSubscriptions: 3}})
	ctx := ctxT(t)
	c := n.dial(client.Options{User: "s"})
	for i := 0; i < 3; i++ {
		if _, err := c.Subscribe(ctx, "room"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Subscribe(ctx, "rooma"); err != nil {
		t.Fatalf("resubscribing counts as new: %v", err)
	}
	var ce *client.Error
	if _, err := c.Subscribe(ctx, "roomz"); !errors.As(err, &ce) || ce.Code != string(CodeTooManySubs) {
		t.Fatalf("4th subscription: %v", err)
	}
	_, err := client.Dial(ctx, n.wsURL, client.Options{User: "m", Device: session.Device{Kind: "web", Meta: []byte(`"` + strings.Repeat("x", 5000) + `"`)}})
	if !errors.As(err, &ce) || ce.Code != string(CodeTooLarge) {
		t.Fatalf("oversize device meta: %v", err)
	}
}

func TestSessionsPerUserAreCapped(t *testing.T) {
	n := newTestNode(t, nodeOpts{engine: session.Config{MaxSessionsPerUser: 2}})
	ctx := ctxT(t)
	n.dial(client.Options{User: "tabby"})
	n.dial(client.Options{User: "tabby"})
	var ce *client.Error
	if _, err := client.Dial(ctx, n.wsURL, client.Options{User: "tabby"}); !errors.As(err, &ce) || ce.Code != string(CodeTooManySess) {
		t.Fatalf("third session: %v", err)
	}
	if code, body := n.do("POST", "/api/presence?client=c3", "text/plain", `{"status":"online"}`, map[string]string{"X-Presence-User": "tabby"}); code != 409 {
		t.Fatalf("third heartbeat client: %d %s", code, body)
	}
	n.dial(client.Options{User: "other"}) // other users are not affected
}
