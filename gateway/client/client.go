// Package client is a Go client of presenced's WebSocket protocol
// (gateway/PROTOCOL.md). It is used by the tests, the load generator and the
// chaos driver, and works as an SDK for Go services and agents.
//
// A Client owns one connection: one goroutine reads frames and routes
// replies to the call waiting for them (by request id) and room events to
// Events(). Calls are safe from several goroutines.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/session"
)

// Options configure Dial.
type Options struct {
	Token    string          // JWT; sent in hello
	User     string          // open dev mode only: the user to act as
	Device   session.Device  //
	Resume   string          // resume token of an earlier session
	Location string          //
	Meta     json.RawMessage //
	Header   http.Header     // extra handshake headers
	// EventBuffer is the capacity of the Events channel (default 4096). When
	// it is full, further events are dropped and counted in Dropped.
	EventBuffer int
	// NoAutoPing turns off the heartbeat goroutine that pings every half
	// heartbeat interval (the server closes silent connections with 4000).
	NoAutoPing bool
	// HTTPClient makes the WebSocket handshake (e.g. one whose transport
	// dials from a chosen local address); nil: http.DefaultClient.
	HTTPClient *http.Client
	// Tap, when set, sees every incoming message (one JSON object) before
	// it is decoded; returning true consumes it. Load generators use it to
	// read events without decoding them.
	Tap func(msg []byte) bool
}

// Welcome is the server's answer to hello.
type Welcome struct {
	Session         string `json:"session"`
	User            string `json:"user"`
	ResumeToken     string `json:"resume_token"`
	Resumed         bool   `json:"resumed"`
	Node            string `json:"node"`
	HeartbeatMS     int64  `json:"heartbeat_ms"`
	GraceMS         int64  `json:"grace_ms"`
	IdleAfterMS     int64  `json:"idle_after_ms"`
	AwayAfterMS     int64  `json:"away_after_ms"`
	TypingTimeoutMS int64  `json:"typing_timeout_ms"`
}

// Error is an error reply from the server.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrClosed is returned by calls on a closed connection.
var ErrClosed = errors.New("client: connection closed")

type envelope struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Client is one WebSocket session with a presenced node.
type Client struct {
	ws      *websocket.Conn
	Welcome Welcome

	nextID  atomic.Int64
	mu      sync.Mutex
	pending map[string]chan []byte
	events  chan *session.Event
	errs    chan *Error
	done    chan struct{}
	err     error // why the read loop ended
	tap     func([]byte) bool
	Dropped atomic.Int64
}

// Dial connects to a node's WebSocket endpoint (ws://host:port/v1/ws) and
// sends hello. It returns after the welcome, or the error that replaced it.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: opts.Header, HTTPClient: opts.HTTPClient})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 24)
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 4096
	}
	c := &Client{ws: ws, pending: make(map[string]chan []byte), events: make(chan *session.Event, opts.EventBuffer),
		errs: make(chan *Error, 64), done: make(chan struct{}), tap: opts.Tap}
	hello := map[string]any{"type": "hello", "id": 0}
	if opts.Token != "" {
		hello["token"] = opts.Token
	}
	if opts.User != "" {
		hello["user"] = opts.User
	}
	if opts.Device.Kind != "" || opts.Device.Platform != "" || len(opts.Device.Meta) > 0 {
		hello["device"] = opts.Device
	}
	if opts.Resume != "" {
		hello["resume"] = opts.Resume
	}
	if opts.Location != "" {
		hello["location"] = opts.Location
	}
	if len(opts.Meta) > 0 {
		hello["meta"] = opts.Meta
	}
	wait := c.expect("0")
	go c.readLoop()
	if err := c.write(ctx, hello); err != nil {
		c.ws.CloseNow()
		return nil, err
	}
	reply, err := c.await(ctx, "0", wait)
	if err != nil {
		c.ws.CloseNow()
		return nil, err
	}
	if err := json.Unmarshal(reply, &c.Welcome); err != nil {
		c.ws.CloseNow()
		return nil, err
	}
	if !opts.NoAutoPing && c.Welcome.HeartbeatMS > 0 {
		go c.heartbeat(time.Duration(c.Welcome.HeartbeatMS) * time.Millisecond / 2)
	}
	return c, nil
}

// heartbeat pings until the connection ends.
func (c *Client) heartbeat(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			_, _ = c.Ping(ctx)
			cancel()
		}
	}
}

func (c *Client) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeFrame(ctx, b)
}

// WriteTimeout bounds the write of one frame. A frame not written by then
// means a dead or stuck connection, which is closed.
const WriteTimeout = 10 * time.Second

// writeFrame writes one text frame. A frame whose write has begun is
// finished even if ctx ends meanwhile: coder/websocket closes a connection
// whose write is cancelled midway, and a caller that stops waiting for an
// answer should not end its session with it (the load generator lost
// hundreds of sessions so when a phase ended). ctx still ends the wait for
// the answer (await) and a call whose ctx ended before its write.
func (c *Client) writeFrame(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), WriteTimeout)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, b)
}

func (c *Client) expect(id string) chan []byte {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	return ch
}

func (c *Client) await(ctx context.Context, id string, ch chan []byte) ([]byte, error) {
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	var b []byte
	select {
	case b = <-ch:
	case <-c.done:
		// The reply may have arrived just before the close: prefer it.
		select {
		case b = <-ch:
		default:
			return nil, fmt.Errorf("%w: %v", ErrClosed, c.err)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	if env.Type == "error" {
		return nil, &Error{Code: env.Code, Message: env.Message}
	}
	return b, nil
}

// Call sends a message with a fresh id and returns the raw reply.
func (c *Client) Call(ctx context.Context, msg map[string]any) ([]byte, error) {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	msg["id"] = json.RawMessage(id)
	ch := c.expect(id)
	if err := c.write(ctx, msg); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	return c.await(ctx, id, ch)
}

// Send writes a raw frame without waiting for a reply (tests of bad input).
func (c *Client) Send(ctx context.Context, frame []byte) error {
	return c.writeFrame(ctx, frame)
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		_, frame, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			c.ws.CloseNow() // the connection is over: release its socket
			return
		}
		for _, b := range bytes.Split(frame, []byte{'\n'}) {
			if c.tap != nil && c.tap(b) {
				continue
			}
			c.route(b)
		}
	}
}

func (c *Client) route(b []byte) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return
	}
	if len(env.ID) > 0 {
		id := string(env.ID)
		if s, err := strconv.Unquote(id); err == nil {
			id = s
		}
		c.mu.Lock()
		ch := c.pending[id]
		c.mu.Unlock()
		if ch != nil {
			ch <- append([]byte(nil), b...)
			return
		}
	}
	switch env.Type {
	case "error":
		select {
		case c.errs <- &Error{Code: env.Code, Message: env.Message}:
		default:
		}
	case "enter", "leave", "update", "typing", "online", "offline", "state":
		ev := new(session.Event)
		if err := json.Unmarshal(b, ev); err != nil {
			return
		}
		select {
		case c.events <- ev:
		default:
			c.Dropped.Add(1)
		}
	}
}

// Events delivers room events of every subscribed room, in order per room.
func (c *Client) Events() <-chan *session.Event { return c.events }

// Errors delivers error messages that answer no request (e.g. rate_limited).
func (c *Client) Errors() <-chan *Error { return c.errs }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// CloseStatus is the close code the server sent, once Done is closed (-1 if none).
func (c *Client) CloseStatus() websocket.StatusCode {
	<-c.done
	return websocket.CloseStatus(c.err)
}

// CloseReason is the close reason text the server sent, once Done is closed.
func (c *Client) CloseReason() string {
	<-c.done
	var ce websocket.CloseError
	if errors.As(c.err, &ce) {
		return ce.Reason
	}
	return ""
}

// Drop cuts the connection without ending the session (as a crash or a
// network loss would): the session goes stale and can be resumed.
func (c *Client) Drop() {
	c.ws.CloseNow()
	<-c.done
}
