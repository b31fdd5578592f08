package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// A call whose context ends while its frame is being written must not end
// the connection: coder/websocket closes a connection whose write is
// cancelled midway, and the load generator lost hundreds of sessions so at
// the end of each phase. The fake server takes the hello, then reads only
// the header of the next (64 MiB) frame and stops: the write is certainly
// midway when the caller's context is cancelled.
func TestCancelledCallLeavesTheConnectionOpen(t *testing.T) {
	defer goleak.VerifyNone(t)
	headerRead, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws := acceptHello(w, r)
		if ws == nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(-1)
		ctx := r.Context()
		_, rd, err := ws.Reader(ctx) // the big frame's header
		if err != nil {
			return
		}
		close(headerRead)
		<-release
		if _, err := io.Copy(io.Discard, rd); err != nil {
			return
		}
		for { // then answer pings
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Type string          `json:"type"`
				ID   json.RawMessage `json:"id"`
			}
			if json.Unmarshal(b, &m) == nil && m.Type == "ping" {
				_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"pong","id":`+string(m.ID)+`,"time":1}`))
			}
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), Options{NoAutoPing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Drop()

	callCtx, callCancel := context.WithCancel(ctx)
	sent := make(chan error, 1)
	go func() { sent <- c.Send(callCtx, make([]byte, 64<<20)) }()
	select {
	case <-headerRead:
	case <-ctx.Done():
		t.Fatal("the server never saw the frame's header")
	}
	callCancel() // midway through the 64 MiB
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("the frame whose write had begun: %v, want it written", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the cancelled call: %v (connection closed: %v)", err, errors.Is(err, ErrClosed))
	}
	// A call whose context ended before its write is refused, and the
	// connection stays.
	if err := c.Send(callCtx, []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("send with an ended context: %v, want context.Canceled", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the refused call: %v", err)
	}
}

// A frame the peer never takes closes the connection after WriteTimeout:
// the write gets no context of its own, so this timer is all that ends it.
// A call waiting for its turn to write ends with its context meanwhile.
func TestStuckWriteClosesTheConnection(t *testing.T) {
	defer goleak.VerifyNone(t)
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws := acceptHello(w, r)
		if ws == nil {
			return
		}
		defer ws.CloseNow()
		<-quit // reads nothing more
	}))
	defer srv.Close()
	defer close(quit)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), Options{NoAutoPing: true, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Drop()
	stuck := make(chan error, 1)
	go func() { stuck <- c.Send(ctx, make([]byte, 64<<20)) }() // far past the socket buffers
	// Once the big frame holds the turn to write, a second frame waits for
	// it, and its own context ends the wait.
	for len(c.writing) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the big frame never began")
		}
		time.Sleep(time.Millisecond) // polling against ctx's deadline
	}
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	if err := c.Send(wctx, []byte(`{"type":"ping","id":1}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a frame behind the stuck one: %v, want its context's deadline", err)
	}
	select {
	case err := <-stuck:
		if err == nil {
			t.Fatal("the 64 MiB frame nobody reads was written")
		}
	case <-ctx.Done():
		t.Fatal("the stuck write did not end")
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the connection stayed open after its stuck write")
	}
}

// acceptHello accepts a WebSocket, reads the client's hello and answers it
// with a welcome; nil if any of that failed.
func acceptHello(w http.ResponseWriter, r *http.Request) *websocket.Conn {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil
	}
	if _, _, err := ws.Read(r.Context()); err != nil {
		ws.CloseNow()
		return nil
	}
	if ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"welcome","id":0,"session":"s1"}`)) != nil {
		ws.CloseNow()
		return nil
	}
	return ws
}
