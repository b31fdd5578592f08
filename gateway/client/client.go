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
	// read events without decoding them. msg is valid only during the
	// call (its buffer is reused): copy what you keep.
	Tap func(msg []byte) bool
	// WriteTimeout bounds the write of one frame (default WriteTimeout).
	WriteTimeout time.Duration
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

// envelope is what routing needs of an incoming message (data is skipped).
type envelope struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

// reply is the answer to a call: the message, or the error it carried.
type reply struct {
	msg []byte
	err *Error
}

// Client is one WebSocket session with a presenced node.
type Client struct {
	ws      *websocket.Conn
	Welcome Welcome

	nextID  atomic.Int64
	mu      sync.Mutex
	pending map[string]chan reply
	events  chan *session.Event
	errs    chan *Error
	done    chan struct{}
	err     error // why the read loop ended
	tap     func([]byte) bool
	Dropped atomic.Int64

	writing    chan struct{} // holds a token while a frame is being written
	writeTimer *time.Timer   // closes the connection when a write outlasts writeTimeout
	writeLimit time.Duration
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
	c := &Client{ws: ws, pending: make(map[string]chan reply), events: make(chan *session.Event, opts.EventBuffer),
		errs: make(chan *Error, 64), done: make(chan struct{}), tap: opts.Tap, writing: make(chan struct{}, 1), writeLimit: opts.WriteTimeout}
	if c.writeLimit <= 0 {
		c.writeLimit = WriteTimeout
	}
	c.writeTimer = time.AfterFunc(c.writeLimit, func() { c.ws.CloseNow() })
	c.writeTimer.Stop()
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
	welcome, err := c.await(ctx, "0", wait)
	if err != nil {
		c.ws.CloseNow()
		return nil, err
	}
	if err := json.Unmarshal(welcome, &c.Welcome); err != nil {
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

// WriteTimeout is the default bound on the write of one frame. A frame not
// written by then means a dead or stuck connection, which is closed.
const WriteTimeout = 10 * time.Second

// writeFrame writes one text frame. A frame whose write has begun is
// finished even if ctx ends meanwhile: coder/websocket closes a connection
// whose write is cancelled midway, and a caller that stops waiting for an
// answer should not end its session with it (the load generator lost
// hundreds of sessions so when a phase ended). ctx still ends the wait for
// the answer (await), for a turn to write, and a call whose ctx ended
// before its write.
//
// The write itself gets no context: one per frame cost the library a
// context.AfterFunc and us a timer, the largest part of a call's
// allocations. A frame not written within Options.WriteTimeout closes the
// connection through one timer the client keeps.
func (c *Client) writeFrame(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.writing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return fmt.Errorf("%w: %v", ErrClosed, c.err)
	}
	defer func() { <-c.writing }()
	c.writeTimer.Reset(c.writeLimit)
	err := c.ws.Write(context.Background(), websocket.MessageText, b)
	c.writeTimer.Stop()
	return err
}

func (c *Client) expect(id string) chan reply {
	ch := make(chan reply, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	return ch
}

func (c *Client) await(ctx context.Context, id string, ch chan reply) ([]byte, error) {
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	var r reply
	select {
	case r = <-ch:
	case <-c.done:
		// The reply may have arrived just before the close: prefer it.
		select {
		case r = <-ch:
		default:
			return nil, fmt.Errorf("%w: %v", ErrClosed, c.err)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.msg, nil
}

// Call sends a message with a fresh id and returns the raw reply.
func (c *Client) Call(ctx context.Context, msg map[string]any) ([]byte, error) {
	id := c.nextID.Add(1)
	msg["id"] = id
	return c.call(ctx, id, msg)
}

// call sends msg, whose id is id, and waits for its reply.
func (c *Client) call(ctx context.Context, id int64, msg any) ([]byte, error) {
	key := strconv.FormatInt(id, 10)
	ch := c.expect(key)
	if err := c.write(ctx, msg); err != nil {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
		return nil, err
	}
	return c.await(ctx, key, ch)
}

// Send writes a raw frame without waiting for a reply (tests of bad input).
func (c *Client) Send(ctx context.Context, frame []byte) error {
	return c.writeFrame(ctx, frame)
}

// frameBufs holds the read loops' frame buffers between frames: an idle
// connection (most of a load generator's) holds none.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrame: a buffer grown past this by a big frame (a snapshot) is
// left to the GC rather than kept.
const maxPooledFrame = 64 << 10

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		_, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.err = err
			c.ws.CloseNow() // the connection is over: release its socket
			return
		}
		buf := frameBufs.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			frameBufs.Put(buf)
			c.err = err
			c.ws.CloseNow()
			return
		}
		// A frame may hold several messages, one per line.
		for frame := buf.Bytes(); len(frame) > 0; {
			msg := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				msg, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if c.tap != nil && c.tap(msg) {
				continue
			}
			c.route(msg)
		}
		if buf.Cap() <= maxPooledFrame {
			frameBufs.Put(buf)
		}
	}
}

// route hands a reply to the call waiting for it, and an event or an
// unasked error to its channel. b is valid only during the call.
func (c *Client) route(b []byte) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return
	}
	if len(env.ID) > 0 {
		id := env.ID
		if id[0] == '"' {
			var s string
			if json.Unmarshal(id, &s) == nil {
				id = []byte(s)
			}
		}
		c.mu.Lock()
		ch := c.pending[string(id)]
		c.mu.Unlock()
		if ch != nil {
			var r reply
			if env.Type == "error" {
				r.err = &Error{Code: env.Code, Message: env.Message}
			} else {
				r.msg = append([]byte(nil), b...)
			}
			select {
			case ch <- r:
			default: // a second answer to one id: the first stands
			}
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
