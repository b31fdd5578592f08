package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Reading a connection after its hello. With the poller (Linux, plain TCP)
// a reader goroutine exists only while the socket has something to read:
// the poller hands the socket to readReady, which reads every message
// already arrived, lingers briefly for more, and arms the socket again.
// Otherwise one goroutine reads until the end. Whichever way, endLocked runs
// once when the connection is over: its reader saw EOF, an error or a
// closing message, or the writer closed or lost the socket (writerClosed),
// which for a socket nobody is reading is the only way the end is noticed.

// startReading hands a connection that said hello to its reader.
func (c *conn) startReading() {
	c.reading.Store(true) // before watch: see writerClosed
	p := c.s.poller
	if p == nil || c.raw == nil {
		go func() {
			c.readMu.Lock()
			defer c.readMu.Unlock()
			c.readMessages(true)
			c.endLocked()
		}()
		return
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.over {
		return // the writer lost the socket meanwhile
	}
	if c.hasBuffered() {
		go c.readReady() // it arms the socket when done
		return
	}
	if err := p.watch(c); err != nil { // the socket closed already
		c.endLocked()
	}
}

// writerClosed is called by the writer when it closed the socket or lost
// it. A socket nobody is reading would wait in the poller for good: the
// read side ends here. (Before startReading, serveWS sees to it; after, the
// reading flag is set before the socket is watched, so either this sees it
// or the watch fails on the closed socket.)
func (c *conn) writerClosed() {
	// Closed here whatever the phase: a write that failed leaves the socket
	// open, and a socket watched after this must fail to be, not wait.
	// It also cuts a read blocked on a partial frame.
	c.ws.CloseNow()
	if !c.reading.Load() {
		return
	}
	go func() {
		c.readMu.Lock()
		defer c.readMu.Unlock()
		c.endLocked()
	}()
}

// Readers and writers. A socket the poller finds readable goes to a free
// reader goroutine; when none is free a new one starts (a reader can wait
// on a partial frame for as long as its client takes, and lingers for a
// talkative connection's next message), and stays to take more work until
// it has been idle for spareIdle. A goroutine per readable socket would pay
// for its stack growth on every message: a CPU profile of a bench node at
// a kill had 15 % of its samples in runtime.newstack, and one in churn,
// where lingering readers kept a fixed pool of 8 busy, 9 %. Flushes use
// pools of the same kind.
func poolWorkers() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// spareIdle is how long a reader or writer started for a busy moment waits
// for more work before it ends. At most maxSpares of each kind wait so;
// past that (thousands of sockets waking at once, as when a load
// balancer's clients all drop) a goroutine handles its one connection and
// ends, as before spares: each spare keeps its grown stack while it waits.
const (
	spareIdle = 2 * time.Second
	maxSpares = 256
)

// startWorkers starts n goroutines that run fn for each connection sent on
// the channel it returns, until the server closes. (Writers use the same:
// a flush that started a goroutine grew its stack on every burst.)
func (s *Server) startWorkers(n int, fn func(*conn)) chan *conn {
	ch := make(chan *conn)
	for range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case c := <-ch:
					fn(c)
				case <-s.stop:
					return
				}
			}
		}()
	}
	return ch
}

// A pool is the channel to one kind of worker and the count of its spares.
type pool struct {
	ch     chan *conn
	fn     func(*conn)
	spares atomic.Int32
}

// dispatch hands c to a free worker of p, or to a new one when none is
// free. It never blocks.
func (s *Server) dispatch(p *pool, c *conn) {
	select {
	case p.ch <- c:
		return
	default:
	}
	if p.spares.Add(1) > maxSpares {
		p.spares.Add(-1)
		go p.fn(c)
		return
	}
	go s.spare(p, c)
}

// spare runs p.fn for c and then for whatever comes on p.ch, until it has
// waited spareIdle for work or the server closes.
func (s *Server) spare(p *pool, c *conn) {
	defer p.spares.Add(-1)
	p.fn(c)
	t := time.NewTimer(spareIdle)
	defer t.Stop()
	for {
		select {
		case c := <-p.ch:
			p.fn(c)
			t.Reset(spareIdle)
		case <-t.C:
			return
		case <-s.stop:
			return
		}
	}
}

// dispatchFlush hands a connection with something to send to a writer (a
// write can wait on a slow client up to WriteTimeout). Called with c.mu
// held: it never blocks.
func (s *Server) dispatchFlush(c *conn) { s.dispatch(&s.writers, c) }

// dispatchRead hands a readable connection to a reader.
func (s *Server) dispatchRead(c *conn) { s.dispatch(&s.readers, c) }

// readLinger is how long a reader waits (in Go's netpoller, as a
// goroutine-per-connection server would) for the next message before it
// hands its socket back to the poller. A connection that talks often keeps
// its reader and pays no extra hand-off per message: through the poller a
// message waits to be scheduled twice (the poller's goroutine, then the
// reader), which on a saturated machine doubled the propagation latency.
// Only a connection that talks often lingers: one whose message before
// this wake-up came within lingerIfWithin. An idle connection (a heartbeat
// every 25 s) hands its socket back at once: lingering, 2k heartbeats/s
// kept ~500 readers waiting, so nearly every wake-up found the pool busy
// and started a goroutine, and each linger cost a timer, a wake-up and a
// syscall more.
const (
	readLinger     = 250 * time.Millisecond
	lingerIfWithin = time.Second
)

// talksOften reports whether a connection whose last two messages came at
// prev and last (unix nanos) should linger for the next one.
func talksOften(prev, last int64) bool { return last-prev <= int64(lingerIfWithin) }

// readReady reads what the socket has, then arms it again.
func (c *conn) readReady() {
	c.s.metrics.readers.Inc()
	defer c.s.metrics.readers.Dec()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.over {
		return
	}
	for {
		prev := c.lastRead.Load() // the message before these
		if over := c.readMessages(false); over {
			c.endLocked()
			return
		}
		if !talksOften(prev, c.lastRead.Load()) || !c.linger(readLinger) {
			break
		}
	}
	var err error
	if c.pollID == 0 {
		err = c.s.poller.watch(c) // first read was of bytes buffered with the hello
	} else {
		err = c.s.poller.arm(c)
	}
	if err != nil {
		c.s.metrics.readEnds.WithLabelValues("poll").Inc()
		c.endLocked()
	}
}

// readEndWhy names why a read failed, for presenced_ws_read_ends_total.
func readEndWhy(err error) string {
	switch {
	case websocket.CloseStatus(err) != -1:
		return "close"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	default:
		return "error"
	}
}

// hasBuffered reports whether bytes already read from the socket wait in
// the connection's buffers (the poller would not see them). Once the
// writer has begun the close handshake, which reads them itself, it says
// no: what is left is the handshake's.
func (c *conn) hasBuffered() bool {
	c.bufMu.Lock()
	defer c.bufMu.Unlock()
	if c.closeStarted {
		return false
	}
	return c.br.Buffered() > 0 || len(c.pc.pending) > 0
}

// readMessages handles messages until the connection is over (true) or,
// unless wait, until nothing more is buffered (false).
func (c *conn) readMessages(wait bool) (over bool) {
	for {
		if c.readOne() {
			return true
		}
		if !wait && !c.hasBuffered() {
			return false
		}
	}
}

// readOne reads and handles one message; it reports whether the connection
// is over. A partial frame blocks it until the rest arrives.
func (c *conn) readOne() (over bool) {
	// No context: coder/websocket would register one callback per read in
	// it. A read is cut by closing the socket (writerClosed, endLocked).
	buf := readBuffers.Get().(*bytes.Buffer)
	defer putReadBuffer(buf)
	b, err := c.readMessage(buf)
	if err != nil {
		if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
			c.s.metrics.errors.WithLabelValues(string(CodeTooLarge)).Inc()
		}
		c.s.metrics.readEnds.WithLabelValues(readEndWhy(err)).Inc()
		return true
	}
	c.beginHandling()
	defer c.endHandling()
	now := time.Now()
	c.lastRead.Store(now.UnixNano())
	c.s.metrics.messagesIn.Inc()
	if !c.identity.ExpiresAt.IsZero() && now.After(c.identity.ExpiresAt) {
		c.fail(CloseTokenExpired, "token expired")
		return true
	}
	m, werr := decodeInbound(b)
	if !c.allow(now) {
		c.replyError(m.ID, CodeRateLimited, "over the message rate limit")
		return false
	}
	if werr != nil {
		c.replyError(m.ID, werr.Code, werr.Message)
		return false
	}
	if c.superseded.Load() {
		return true // the session lives on another connection now
	}
	return c.handle(m)
}

// readBuffers hold one message while it is decoded (json.Unmarshal copies
// what it keeps): coder/websocket's Read allocated a new slice per message.
var readBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

func putReadBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxJoinBuffer { // a rare big one is left to the GC
		b.Reset()
		readBuffers.Put(b)
	}
}

// readMessage reads the next message into buf.
func (c *conn) readMessage(buf *bytes.Buffer) ([]byte, error) {
	_, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// endLocked, with readMu held, ends the connection once: the session goes
// stale (unless it was closed or resumed elsewhere), subscriptions end, the
// writer finishes (a close the server chose is flushed first) and the
// socket is closed.
func (c *conn) endLocked() {
	if c.over {
		return
	}
	c.over = true
	if c.pollID != 0 {
		c.s.poller.forget(c)
	}
	for room, sub := range c.subs {
		sub.cancel()
		delete(c.subs, room)
	}
	if !c.ended {
		c.s.engine.Disconnect(c.sid, c.attach) // ignored if the session was resumed since
	}
	if c.isClosing() {
		// The server chose to close: let the writer flush and send the close code.
		t := time.NewTimer(c.s.cfg.WriteTimeout)
		select {
		case <-c.writerDone:
		case <-t.C:
		}
		t.Stop()
	}
	// The hijacked socket is ours to close: coder/websocket does not close
	// it when a read fails (the peer went away without a close frame), and
	// every such connection would keep its file descriptor for good. Closed
	// before waiting for the writer, whose socket write it cuts short.
	c.cancel()
	c.ws.CloseNow()
	c.stop()
	c.s.removeConn(c)
	c.s.metrics.connections.Dec()
}
