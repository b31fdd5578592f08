package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

func TestWSEnterIsSeenBySubscriber(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	watcher := n.dial(client.Options{User: "watcher"})
	snap, err := watcher.Subscribe(ctx, "lobby")
	if err != nil || snap.Version != 0 || len(snap.Members) != 0 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	alice := n.dial(client.Options{User: "alice", Device: session.Device{Kind: "desktop"}})
	if alice.Welcome.User != "alice" || alice.Welcome.HeartbeatMS != 25000 || alice.Welcome.GraceMS != 15000 {
		t.Fatalf("welcome %+v", alice.Welcome)
	}
	if err := alice.Enter(ctx, "lobby", map[string]any{"cursor": 3}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, watcher, session.EventEnter)
	if ev.Version != 1 || ev.User != "alice" || ev.Member == nil || string(ev.Member.Data) != `{"cursor":3}` {
		t.Fatalf("enter event %+v", ev)
	}
	if ev := nextEvent(t, watcher, session.EventOnline); ev.Version != 2 || ev.User != "alice" {
		t.Fatalf("online event %+v", ev)
	}
	var counts session.Counts
	if err := watcher.Query(ctx, "counts", "lobby", nil, &counts); err != nil || counts.Online.Users != 1 {
		t.Fatalf("counts %+v %v", counts, err)
	}
}

func TestWSResumeInsideGraceShowsNoLeaveOrEnter(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	watcher := n.dial(client.Options{User: "watcher"})
	if _, err := watcher.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	bob := n.dial(client.Options{User: "bob"})
	if err := bob.Enter(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, watcher, session.EventOnline)
	bob.Drop()
	stale := nextEvent(t, watcher, session.EventUpdate)
	if stale.Member.State != session.Stale {
		t.Fatalf("after drop: %+v", stale.Member)
	}
	again := n.dial(client.Options{User: "bob", Resume: bob.Welcome.ResumeToken})
	if !again.Welcome.Resumed || again.Welcome.Session != bob.Welcome.Session {
		t.Fatalf("welcome after resume %+v", again.Welcome)
	}
	evs := eventsUntil(t, watcher, func(ev *session.Event) bool {
		return ev.Type == session.EventUpdate && ev.Member.State == session.Active
	})
	for _, ev := range evs {
		if ev.Type == session.EventLeave || ev.Type == session.EventEnter || ev.Type == session.EventOffline {
			t.Fatalf("subscriber saw %s during a resume", ev.Type)
		}
	}
	// The resumed session still works and still is in the room.
	if err := again.Update(ctx, "r", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
}

func TestWSResumeOfAnotherUsersSessionOpensANewOne(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	bob := n.dial(client.Options{User: "bob"})
	bob.Drop()
	mallory := n.dial(client.Options{User: "mallory", Resume: bob.Welcome.ResumeToken})
	if mallory.Welcome.Resumed || mallory.Welcome.Session == bob.Welcome.Session {
		t.Fatalf("resumed someone else's session: %+v", mallory.Welcome)
	}
}

func TestWSDropWithoutResumeLeavesWithTimeout(t *testing.T) {
	n := newTestNode(t, nodeOpts{engine: session.Config{Grace: 200 * time.Millisecond}})
	ctx := ctxT(t)
	watcher := n.dial(client.Options{User: "watcher"})
	if _, err := watcher.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	carl := n.dial(client.Options{User: "carl"})
	if err := carl.Enter(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	carl.Drop()
	leave := nextEvent(t, watcher, session.EventLeave)
	if leave.Reason != session.ReasonTimeout || leave.User != "carl" {
		t.Fatalf("leave %+v", leave)
	}
	if off := nextEvent(t, watcher, session.EventOffline); off.User != "carl" {
		t.Fatalf("offline %+v", off)
	}
}

func TestWSBadTokenIsRefused(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	ctx := ctxT(t)
	// A bad token on the upgrade request: plain HTTP 401.
	if _, err := client.Dial(ctx, n.wsURL+"?token=garbage", client.Options{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial with bad ?token: %v", err)
	}
	// A bad token in hello: close code 4100.
	_, err := client.Dial(ctx, n.wsURL, client.Options{Token: "garbage"})
	if code := websocket.CloseStatus(errors.Unwrap(err)); code != CloseUnauthorized && !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("dial with bad hello token: %v (code %d)", err, code)
	}
	// No token at all.
	if _, err := client.Dial(ctx, n.wsURL, client.Options{}); err == nil {
		t.Fatal("dial without a token succeeded")
	}
	// An expired token: 4101.
	if _, err := client.Dial(ctx, n.wsURL, client.Options{Token: token(t, "al", -time.Minute, nil)}); err == nil {
		t.Fatal("expired token accepted")
	}
	// A good one, with caps that allow only team-* rooms.
	c := n.dial(client.Options{Token: token(t, "al", time.Hour, map[string]any{"caps": map[string]any{"enter": []string{"team-*"}}})})
	if c.Welcome.User != "al" {
		t.Fatalf("welcome %+v", c.Welcome)
	}
	if err := c.Enter(ctx, "team-1", nil); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if err := c.Enter(ctx, "other", nil); !errors.As(err, &ce) || ce.Code != string(CodeForbidden) {
		t.Fatalf("enter outside caps: %v", err)
	}
}

func TestWSHelloTokenExpiredClosesWith4101(t *testing.T) {
	n := newTestNode(t, nodeOpts{secured: true})
	ctx := ctxT(t)
	ws, _, err := websocket.Dial(ctx, n.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	b, _ := json.Marshal(map[string]any{"type": "hello", "token": token(t, "al", -time.Minute, nil)})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err = ws.Read(ctx); err != nil {
			break
		}
	}
	if code := websocket.CloseStatus(err); code != CloseTokenExpired {
		t.Fatalf("close code %d (%v), want %d", code, err, CloseTokenExpired)
	}
}

func TestWSBadInputGetsCodesAndHarmsNothing(t *testing.T) {
	n := newTestNode(t, nodeOpts{gateway: Config{RateLimit: 10000}})
	ctx := ctxT(t)
	bystander := n.dial(client.Options{User: "bystander"})
	if err := bystander.Enter(ctx, "r", map[string]int{"v": 1}); err != nil {
		t.Fatal(err)
	}
	c := n.dial(client.Options{User: "fuzzer"})
	send := func(frame string) *client.Error {
		t.Helper()
		if err := c.Send(ctx, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-c.Errors():
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("no error reply to %s", frame)
			return nil
		}
	}
	for frame, want := range map[string]Code{
		`not json`:                   CodeBadJSON,
		`{"type":`:                   CodeBadJSON,
		`[1,2]`:                      CodeBadJSON,
		`{"room":"r"}`:               CodeBadRequest,
		`{"type":"teleport"}`:        CodeUnknownType,
		`{"type":"enter","room":""}`: CodeInvalidID,
		`{"type":"enter","room":"` + strings.Repeat("x", 129) + `"}`:             CodeInvalidID,
		`{"type":"enter","room":"r","data":"` + strings.Repeat("x", 3000) + `"}`: CodeTooLarge,
		`{"type":"update","room":"nowhere","data":{}}`:                           CodeNotMember,
		`{"type":"activity","state":"dancing"}`:                                  CodeBadRequest,
		`{"type":"hello"}`:                                                       CodeBadRequest,
	} {
		if got := send(frame); got.Code != string(want) {
			t.Errorf("%.40s: code %s (%s), want %s", frame, got.Code, got.Message, want)
		}
	}
	// More than 100 rooms.
	for i := 0; i < 100; i++ {
		if err := c.Enter(ctx, "room-"+strings.Repeat("r", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26)), nil); err != nil {
			t.Fatalf("enter %d: %v", i, err)
		}
	}
	var ce *client.Error
	if err := c.Enter(ctx, "one-too-many", nil); !errors.As(err, &ce) || ce.Code != string(CodeTooManyRooms) {
		t.Fatalf("101st room: %v", err)
	}
	// The connection still works and the bystander's state is untouched.
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	ms, _ := n.engine.RoomMembers("r")
	if len(ms) != 1 || ms[0].User != "bystander" || string(ms[0].Data) != `{"v":1}` {
		t.Fatalf("bystander's room changed: %+v", ms)
	}
}

func TestWSOversizeFrameCloses1009(t *testing.T) {
	n := newTestNode(t, nodeOpts{gateway: Config{MaxFrameBytes: 1024}})
	ctx := ctxT(t)
	c := n.dial(client.Options{User: "big"})
	_ = c.Send(ctx, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 2048)+`"}`))
	if code := c.CloseStatus(); code != CloseTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestWSFloodIsLimitedAndOthersUnaffected(t *testing.T) {
	n := newTestNode(t, nodeOpts{gateway: Config{RateLimit: 20}})
	ctx := ctxT(t)
	calm := n.dial(client.Options{User: "calm"})
	flood := n.dial(client.Options{User: "flood"})
	for i := 0; i < 200; i++ {
		if err := flood.Send(ctx, []byte(`{"type":"ping"}`)); err != nil {
			break // closed under us: fine
		}
	}
	if code := flood.CloseStatus(); code != CloseFlood {
		t.Fatalf("flooder closed with %d, want %d", code, CloseFlood)
	}
	if _, err := calm.Ping(ctx); err != nil {
		t.Fatalf("calm client affected: %v", err)
	}
}

func TestWSCloseSessionLeavesAtOnce(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	watcher := n.dial(client.Options{User: "w"})
	if _, err := watcher.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	tab := n.dial(client.Options{User: "dora"})
	if err := tab.Enter(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	if err := tab.CloseSession(ctx, session.ReasonClosed, map[string]string{"why": "bye"}); err != nil {
		t.Fatal(err)
	}
	leave := nextEvent(t, watcher, session.EventLeave)
	if leave.Reason != session.ReasonClosed || string(leave.Data) != `{"why":"bye"}` {
		t.Fatalf("leave %+v", leave)
	}
	if tab.CloseStatus() != CloseNormal {
		t.Fatalf("close status %d", tab.CloseStatus())
	}
	if p := n.engine.UserPresence("dora"); p.State != session.Offline || p.LastSeen == 0 {
		t.Fatalf("presence after close %+v", p)
	}
}

func TestWSDrainTellsClientsToReconnect(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	c := n.dial(client.Options{User: "eve"})
	if err := c.Enter(ctx, "r", nil); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.gw.Drain(dctx)
	if c.CloseStatus() != CloseServiceRestart || !strings.HasPrefix(c.CloseReason(), "retry_ms=") {
		t.Fatalf("close %d %q", c.CloseStatus(), c.CloseReason())
	}
	eventually(t, "session stale after drain", func() bool {
		return n.engine.UserPresence("eve").State == session.Stale
	})
	if n.gw.Ready() {
		t.Fatal("draining node still ready")
	}
}

// A subscriber that stops reading is cut off as a slow consumer (4001) and
// never holds up the others: a reading subscriber still gets every event.
func TestWSSlowConsumerIsDroppedOthersUnaffected(t *testing.T) {
	n := newTestNode(t, nodeOpts{gateway: Config{SendQueue: 16, RateLimit: 100000}})
	// 3,000 round trips: ~5 s under -race alone, more while other packages'
	// tests (Chromium in cmd/presenced) share the cores.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The slow one: a raw socket that subscribes and then never reads.
	slow, _, err := websocket.Dial(ctx, n.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	for _, m := range []string{`{"type":"hello","user":"slow"}`, `{"type":"subscribe","room":"busy"}`} {
		if err := slow.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	fast := n.dial(client.Options{User: "fast", EventBuffer: 1 << 16})
	if _, err := fast.Subscribe(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both subscribed", func() bool { return n.engine.Stats().Subscribers == 2 })
	writer := n.dial(client.Options{User: "writer"})
	big := strings.Repeat("x", 2000)
	if err := writer.Enter(ctx, "busy", map[string]string{"pad": big}); err != nil {
		t.Fatal(err)
	}
	// The writer waits for the fast subscriber to see each update before the
	// next, so the fast one never lags; the slow one never reads at all.
	const updates = 3000 // ~6 MB of events: more than the socket buffers hold
	var last uint64
	for i := 0; i < updates; i++ {
		if err := writer.Update(ctx, "busy", map[string]any{"i": i, "pad": big[:1900]}); err != nil {
			t.Fatal(err)
		}
		for seen := false; !seen; {
			select {
			case ev := <-fast.Events():
				if ev.Version != last+1 {
					t.Fatalf("fast subscriber: version %d after %d", ev.Version, last)
				}
				last = ev.Version
				seen = ev.Type == session.EventUpdate
			case <-fast.Done():
				t.Fatalf("fast subscriber closed (%d) after %d updates", fast.CloseStatus(), i)
			case <-time.After(5 * time.Second):
				t.Fatalf("fast subscriber stalled at update %d", i)
			}
		}
	}
	// The slow one was closed with 4001 (seen once it drains what was buffered).
	var code websocket.StatusCode = -1
	for code == -1 {
		_, _, err := slow.Read(ctx)
		if err != nil {
			code = websocket.CloseStatus(err)
			if code == -1 {
				break // the close frame could not be delivered through the full socket
			}
		}
	}
	eventually(t, "slow consumer counted", func() bool {
		_, body := n.do("GET", "/metrics", "", "", nil)
		return strings.Contains(body, "presenced_slow_consumers_total 1")
	})
	if code != -1 && code != CloseSlowConsumer {
		t.Fatalf("slow consumer closed with %d", code)
	}
}

// A peer that goes away without a close frame (a crash, a dropped network)
// must not leave its socket open on the server: every connection's file
// descriptor is released once its handler ends. (Found by the load
// generator: a node kept 564 dead sockets and ran out of files.)
func TestWSAbruptCloseReleasesTheSocket(t *testing.T) {
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd: ", err)
		}
		return len(ents)
	}
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	warm := n.dial(client.Options{User: "warm"}) // the server's listener and pollers are open
	warm.Drop()
	before := fds()
	var cs []*client.Client
	for i := 0; i < 20; i++ {
		c := n.dial(client.Options{User: fmt.Sprintf("crash%d", i)})
		if err := c.Enter(ctx, "room", nil); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if got := fds(); got < before+20 {
		t.Fatalf("fds %d → %d with 20 connections open", before, got)
	}
	for _, c := range cs {
		c.Drop() // closes the TCP connection with no close frame
	}
	eventually(t, "the server closes the sockets of peers gone without a close frame", func() bool { return fds() <= before })
}
