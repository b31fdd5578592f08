package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// readModes runs a test with the poller (no goroutine per idle connection,
// Linux) and with a reading goroutine per connection (other systems).
func readModes(t *testing.T, f func(t *testing.T, o nodeOpts)) {
	t.Run("poller", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("epoll is Linux only")
		}
		f(t, nodeOpts{})
	})
	t.Run("goroutine", func(t *testing.T) { f(t, nodeOpts{gateway: Config{blockingReads: true}}) })
}

// goroutinesIn counts goroutines whose stack has fn in it.
func goroutinesIn(fn string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

// An idle connection has no goroutine on the server: the handler returns
// after the hello and the poller watches the socket. (Each one used to keep
// a blocked reader with an 8–16 KiB stack: most of an idle session's memory.)
func TestWSIdleConnectionsHaveNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("epoll is Linux only")
	}
	n := newTestNode(t, nodeOpts{})
	ctx := ctxT(t)
	const conns = 30
	for i := 0; i < conns; i++ {
		c := n.dial(client.Options{User: fmt.Sprintf("u%d", i), NoAutoPing: true})
		if err := c.Enter(ctx, "room", nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every connection watched by the poller", func() bool { return n.gw.poller.watched() == conns })
	eventually(t, "no server goroutine per idle connection", func() bool {
		return goroutinesIn("gateway.(*Server).serveWS") == 0 && goroutinesIn("gateway.(*conn).readReady") == 0 &&
			goroutinesIn("gateway.(*conn).flush") == 0
	})
}

// rawWS is a hand-made WebSocket client that can send several frames in
// one TCP write (coder/websocket's client writes each frame on its own).
type rawWS struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// frame is a masked client text frame (mask key 0, so the payload is as is).
func frame(payload string) []byte {
	var b bytes.Buffer
	b.WriteByte(0x81)
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	default:
		b.WriteByte(0x80 | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	}
	b.Write([]byte{0, 0, 0, 0})
	b.WriteString(payload)
	return b.Bytes()
}

// dialRaw sends the upgrade request followed at once by frames, all in one
// write: the frames reach the server with the request.
func dialRaw(t *testing.T, n *testNode, frames ...string) *rawWS {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(n.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	b.WriteString("GET /v1/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	for _, f := range frames {
		b.Write(frame(f))
	}
	if _, err := nc.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := &rawWS{t: t, nc: nc, br: bufio.NewReader(nc)}
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 101") {
			t.Fatalf("upgrade refused: %s", line)
		}
		if line == "\r\n" {
			return r
		}
	}
}

// send writes frames in one TCP write.
func (r *rawWS) send(frames ...string) {
	var b bytes.Buffer
	for _, f := range frames {
		b.Write(frame(f))
	}
	if _, err := r.nc.Write(b.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

// ids reads server messages until every id has been answered.
func (r *rawWS) ids(want ...string) {
	r.t.Helper()
	missing := map[string]bool{}
	for _, id := range want {
		missing[id] = true
	}
	for len(missing) > 0 {
		var h [2]byte
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			r.t.Fatalf("still waiting for %v: %v", missing, err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l uint16
			_ = binary.Read(r.br, binary.BigEndian, &l)
			n = int(l)
		case 127:
			var l uint64
			_ = binary.Read(r.br, binary.BigEndian, &l)
			n = int(l)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r.br, p); err != nil {
			r.t.Fatal(err)
		}
		for _, line := range bytes.Split(p, []byte("\n")) {
			var m struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			}
			if json.Unmarshal(line, &m) == nil && m.ID != "" {
				if m.Type == "error" {
					r.t.Fatalf("error reply: %s", line)
				}
				delete(missing, m.ID)
			}
		}
	}
}

// Frames that arrive together are all handled, none left waiting for more
// bytes: those sent with the upgrade request (they sit in net/http's buffer
// at hijack time), and several in one TCP segment later (the first read
// takes them all, so the socket does not become readable again for the rest).
func TestWSFramesArrivingTogetherAreAllHandled(t *testing.T) {
	readModes(t, func(t *testing.T, o nodeOpts) {
		n := newTestNode(t, o)
		r := dialRaw(t, n, `{"type":"hello","id":"h","user":"raw"}`, `{"type":"ping","id":"p1"}`,
			`{"type":"enter","id":"e1","room":"r"}`, `{"type":"ping","id":"p2"}`)
		r.ids("h", "p1", "e1", "p2")
		r.send(`{"type":"ping","id":"p3"}`, `{"type":"typing","id":"t1","room":"r"}`, `{"type":"ping","id":"p4"}`)
		r.ids("p3", "t1", "p4")
		big := fmt.Sprintf(`{"type":"update","id":"u1","room":"r","data":{"s":%q}}`, strings.Repeat("x", 1500))
		r.send(big, `{"type":"ping","id":"p5"}`)
		r.ids("u1", "p5")
	})
}

// The server closes a connection nobody is reading (it was idle): the
// connection must still end, its socket close and its session let go.
// Here a resume on a second connection closes the first with 4103. The
// close comes after the write timeout of the last write has passed: the
// close frame must still go out (a write deadline left on the socket once
// made it fail, and the client saw no close code).
func TestWSServerCloseOfAnIdleConnectionEndsIt(t *testing.T) {
	readModes(t, func(t *testing.T, o nodeOpts) {
		o.gateway.WriteTimeout = 200 * time.Millisecond
		n := newTestNode(t, o)
		ctx := ctxT(t)
		first := n.dial(client.Options{User: "bob", NoAutoPing: true})
		if err := first.Enter(ctx, "r", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // not synchronisation: the last write's timeout passes
		if n.gw.poller != nil {
			eventually(t, "first connection watched", func() bool { return n.gw.poller.watched() == 1 })
		}
		second := n.dial(client.Options{User: "bob", Resume: first.Welcome.ResumeToken})
		select {
		case <-first.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("first connection not closed after the resume")
		}
		if code := first.CloseStatus(); code != websocket.StatusCode(CloseSessionEnded) {
			t.Fatalf("first closed with %d, want %d", code, CloseSessionEnded)
		}
		eventually(t, "the superseded connection ended on the server", func() bool {
			n.gw.mu.Lock()
			defer n.gw.mu.Unlock()
			return len(n.gw.conns) == 1
		})
		if n.gw.poller != nil && n.gw.poller.watched() != 1 {
			t.Fatalf("poller still watches %d connections", n.gw.poller.watched())
		}
		if err := second.Enter(ctx, "r2", nil); err != nil {
			t.Fatal(err)
		}
	})
}

// A client that goes away while idle is noticed at once (its socket becomes
// readable with EOF) and its session goes stale.
func TestWSIdleClientGoneIsNoticed(t *testing.T) {
	readModes(t, func(t *testing.T, o nodeOpts) {
		n := newTestNode(t, o)
		ctx := ctxT(t)
		c := n.dial(client.Options{User: "gone", NoAutoPing: true})
		if err := c.Enter(ctx, "r", nil); err != nil {
			t.Fatal(err)
		}
		sid := c.Welcome.Session
		c.Drop()
		eventually(t, "the dropped connection ended on the server", func() bool {
			n.gw.mu.Lock()
			defer n.gw.mu.Unlock()
			return len(n.gw.conns) == 0
		})
		s, ok := n.engine.Session(sid)
		if !ok || s.State != session.Stale {
			t.Fatalf("session after drop: %+v (found %v)", s, ok)
		}
	})
}

// A peer that stops answering is closed by the server (heartbeat timeout);
// it does not answer the close frame either, so the close handshake gives
// up after coder/websocket's 5 s and closes the socket. Nobody is reading a
// silent connection, and a closed socket never becomes readable: the writer
// must end the connection itself, or it stays open on the server for good.
func TestWSSilentPeerIsClosedAndEnded(t *testing.T) {
	readModes(t, func(t *testing.T, o nodeOpts) {
		o.gateway.HeartbeatInterval = 100 * time.Millisecond
		n := newTestNode(t, o)
		r := dialRaw(t, n, `{"type":"hello","id":"h","user":"silent"}`, `{"type":"enter","id":"e","room":"r"}`)
		r.ids("h", "e")
		// r now reads nothing and sends nothing.
		deadline := time.Now().Add(15 * time.Second)
		for {
			n.gw.mu.Lock()
			open := len(n.gw.conns)
			n.gw.mu.Unlock()
			if open == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the silent connection is still open on the server 15 s later")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Close without Drain returns even while a reader waits on a frame its
// client never finishes: the sockets still open are closed. (It used to
// wait for that reader for good.)
func TestCloseWithoutDrainEndsReadersOnPartialFrames(t *testing.T) {
	readModes(t, func(t *testing.T, o nodeOpts) {
		e := session.New(session.Config{Logger: zaptest.NewLogger(t)})
		defer e.Stop()
		v, err := NewVerifier(AuthConfig{})
		if err != nil {
			t.Fatal(err)
		}
		gc := o.gateway
		gc.Logger = zaptest.NewLogger(t)
		gw := New(gc, e, v)
		hs := httptest.NewServer(gw.Handler())
		n := &testNode{t: t, engine: e, gw: gw, http: hs}
		r := dialRaw(t, n, `{"type":"hello","id":"h","user":"half"}`)
		r.ids("h")
		// A frame header announcing 100 bytes, and 10 of them.
		if _, err := r.nc.Write(append([]byte{0x81, 0x80 | 100, 0, 0, 0, 0}, "0123456789"...)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a reader waits on the partial frame", func() bool { return goroutinesIn("gateway.(*conn).readOne") == 1 })
		hs.Close()
		done := make(chan struct{})
		go func() { gw.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close still waits 10 s later on a reader of a partial frame")
		}
	})
}

func TestOnlyConnectionsThatTalkOftenLinger(t *testing.T) {
	sec := int64(time.Second)
	for _, tc := range []struct {
		prev, last int64
		want       bool
	}{
		{0, 25 * sec, false},              // a heartbeat every 25 s
		{10 * sec, 12 * sec, false},       // two seconds apart
		{10 * sec, 10*sec + sec/40, true}, // a writer at 40/s
		{10 * sec, 11 * sec, true},
		{10 * sec, 10 * sec, true}, // arrived together
	} {
		if got := talksOften(tc.prev, tc.last); got != tc.want {
			t.Errorf("talksOften(%d, %d) = %v, want %v", tc.prev, tc.last, got, tc.want)
		}
	}
}

// A reader or writer started because the pool was busy stays to take more
// work (its grown stack is kept), and ends when the server closes; past
// maxSpares a busy moment's goroutine handles its one connection and ends.
func TestSpareWorkerTakesMoreWorkUntilTheServerCloses(t *testing.T) {
	s := &Server{stop: make(chan struct{})}
	got := make(chan *conn, 3)
	p := &pool{ch: make(chan *conn), fn: func(c *conn) { got <- c }} // no workers: always busy
	first, second := &conn{}, &conn{}
	s.dispatch(p, first)
	select {
	case p.ch <- second: // taken only by a spare still waiting for work
	case <-time.After(spareIdle / 2):
		t.Fatal("no spare took a second connection")
	}
	if a, b := <-got, <-got; a != first || b != second {
		t.Fatalf("handled %p then %p, want %p then %p", a, b, first, second)
	}
	if n := p.spares.Load(); n != 1 {
		t.Fatalf("%d spares, want 1", n)
	}

	// At the cap: handled, and no spare more.
	p.spares.Add(maxSpares - 1)
	third := &conn{}
	s.dispatch(p, third)
	if c := <-got; c != third {
		t.Fatalf("handled %p, want %p", c, third)
	}
	if n := p.spares.Load(); n != maxSpares {
		t.Fatalf("%d spares at the cap, want %d", n, maxSpares)
	}
	p.spares.Add(-(maxSpares - 1))

	close(s.stop)
	eventually(t, "the spare ends when the server closes", func() bool { return p.spares.Load() == 0 })
}
