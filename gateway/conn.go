package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// conn is one WebSocket connection: one reader at a time and a bounded
// send queue. On Linux an idle connection has no goroutine at all: the
// poller hands its socket to a reader when it is readable, and the reader
// lets go when nothing more comes (ws_read.go). A flush runs only while
// there is something to write: the first message queued hands the
// connection to a writer (a pooled goroutine, or a new one when all are
// busy), which drains the queue, joining everything queued into one frame
// (messages separated by '\n'), so a burst costs one write syscall instead
// of one per message, and lets go when the queue is empty.
type conn struct {
	s        *Server
	ws       *websocket.Conn
	ctx      context.Context
	cancel   context.CancelFunc
	lastRead atomic.Int64 // unix nanos of the last frame read
	// superseded is set when the session was resumed on another connection:
	// this one must no longer act for it.
	superseded atomic.Bool

	mu          sync.Mutex
	queue       [][]byte
	queuedBytes int
	closing     bool
	closeCode   websocket.StatusCode
	closeReason string
	flushing    bool // a flusher goroutine is running
	// handling is set while the reader handles a message: a flush that
	// would start then is left to the reader, which runs it when done
	// (flushAfter), so an answer goes out without waking a writer.
	handling   bool
	flushAfter bool
	late       bool          // in the server's batch of delayed flushes
	finished   bool          // writing is over: no flusher will start again
	writerDone chan struct{} // closed when finished is set

	// Read side. readMu is held by whoever reads (one goroutine at a time,
	// but not always the same one) and by end.
	readMu sync.Mutex
	br     *bufio.Reader // coder/websocket's read buffer (ours: smallBuffers)
	pc     *sockConn     // the socket under it
	// reading is set once the hello is done and the connection has a reader.
	reading atomic.Bool
	raw     syscall.RawConn // nil: read with a goroutine that blocks
	pollID  uint64          // the poller's key for c
	over    bool            // end has run
	// bufMu orders the reader's look at the read buffers (hasBuffered)
	// before the close handshake, which reads them from the writer.
	bufMu        sync.Mutex
	closeStarted bool

	// Owned by the reader (under readMu once the connection is watched).
	identity Identity
	sid      string
	attach   uint64 // session.Opened.Attach of this connection
	ended    bool   // the session was closed by the client or server: do not mark it stale
	subs     map[string]*subscription
	tokens   float64
	lastFill time.Time
	flood    int
}

func newConn(s *Server, ws *websocket.Conn, parent context.Context) *conn {
	ctx, cancel := context.WithCancel(parent)
	c := &conn{s: s, ws: ws, ctx: ctx, cancel: cancel,
		writerDone: make(chan struct{}), subs: make(map[string]*subscription),
		tokens: s.cfg.RateLimit, lastFill: time.Now()}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// claimFlushLocked marks a flush running and reports true, unless one is
// running or writing is over. Whoever claims it starts it. c.mu held.
func (c *conn) claimFlushLocked() bool {
	if c.flushing || c.finished {
		return false
	}
	c.flushing = true
	return true
}

// signal starts a flush unless one is running. Called with c.mu held.
func (c *conn) signal() {
	if !c.claimFlushLocked() {
		return
	}
	if c.handling && !c.closing {
		c.flushAfter = true
		return
	}
	c.s.dispatchFlush(c)
}

// beginHandling and endHandling bracket the reader's handling of one
// message; endHandling runs the flush signalled meanwhile.
func (c *conn) beginHandling() {
	c.mu.Lock()
	c.handling = true
	c.mu.Unlock()
}

func (c *conn) endHandling() {
	c.mu.Lock()
	c.handling = false
	run := c.flushAfter
	c.flushAfter = false
	if run && c.closing {
		// The close handshake waits for the client's answer: a writer's job.
		c.s.dispatchFlush(c)
		run = false
	}
	c.mu.Unlock()
	if run {
		c.flushOnce()
	}
}

// finishLocked marks writing over and releases those waiting for it.
// Called with c.mu held.
func (c *conn) finishLocked() {
	c.flushing = false
	if !c.finished {
		c.finished = true
		close(c.writerDone)
	}
}

// stop ends the connection: it cancels its context and waits until no
// write is in progress. A running flusher notices the cancel after its
// current write, which the context cuts short, or after its close
// handshake, which coder/websocket bounds by itself (5 s each way).
func (c *conn) stop() {
	c.cancel()
	c.mu.Lock()
	if !c.flushing {
		c.finishLocked()
	}
	c.mu.Unlock()
	<-c.writerDone
}

// joinBuffers hold the messages of one flush joined into one frame (in a
// CPU profile of a node in the fan-out bench, growing a buffer per flush
// was 0.44 s of the 0.50 s spent in the allocator).
// One that grew past maxJoinBuffer is left to the GC.
var joinBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxJoinBuffer = 64 << 10

// enqueue queues one encoded message. It never blocks: when the queue is
// full the connection is closed as a slow consumer (4001), and other
// connections are never held up by it. Safe from any goroutine, including
// the engine's event delivery.
func (c *conn) enqueue(b []byte) bool { return c.push(b, false) }

// push is enqueue; with later, the flush may wait for the next batch of
// delayed flushes (flushLater) when none is running already.
func (c *conn) push(b []byte, later bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		c.s.metrics.dropped.Inc()
		return false
	}
	if len(c.queue) >= c.s.cfg.SendQueue || (len(c.queue) > 0 && c.queuedBytes+len(b) > c.s.cfg.SendQueueBytes) {
		c.closing, c.closeCode, c.closeReason = true, CloseSlowConsumer, "slow consumer"
		c.s.metrics.dropped.Add(float64(len(c.queue) + 1))
		c.queue, c.queuedBytes = nil, 0
		c.s.metrics.slowConsumers.Inc()
		c.signal()
		return false
	}
	c.queue = append(c.queue, b)
	c.queuedBytes += len(b)
	// A burst (a page of replicated changes, a node's sessions going
	// stale) is not held for the window: waiting, it could fill the queue
	// and cost every subscriber of the room its connection.
	if later && len(c.queue) < max(1, c.s.cfg.SendQueue/4) {
		c.signalLater()
	} else {
		c.signal()
	}
	return true
}

// signalLater starts a flush at the server's next batch of delayed
// flushes, unless one is running or due. Called with c.mu held.
func (c *conn) signalLater() {
	if c.flushing || c.finished || c.late {
		return
	}
	c.late = true
	c.s.flushLater(c)
}

func (c *conn) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.s.log.DPanic("marshal outbound message")
		return
	}
	c.enqueue(b)
}

// fail flushes what is queued, then closes with code.
func (c *conn) fail(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closing, c.closeCode, c.closeReason = true, code, reason
	c.signal()
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// closeRestart closes with 1012 and a jittered retry hint (node draining).
func (c *conn) closeRestart(ctx context.Context) {
	retry := 500 + rand.IntN(2500)
	c.fail(CloseServiceRestart, fmt.Sprintf("retry_ms=%d", retry))
	select {
	case <-c.writerDone:
	case <-ctx.Done():
	}
}

// flush writes what is queued until the queue is empty, then ends; with
// the connection closing it writes the close frame and writing is over.
func (c *conn) flush() {
	for c.flushStep() {
	}
}

// flushOnce is the reader's flush of what its handling queued (the
// answer, usually): one write, then, if more has been queued meanwhile, a
// writer takes over, so a busy stream never keeps the reader from reading.
func (c *conn) flushOnce() {
	if !c.flushStep() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 && !c.closing && c.ctx.Err() == nil {
		c.flushing = false
		return
	}
	c.s.dispatchFlush(c)
}

// flushStep writes what is queued as one frame, or with the connection
// closing the close frame after it; it reports false when the flush is
// over (nothing queued, or writing finished).
func (c *conn) flushStep() bool {
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.finishLocked()
		c.mu.Unlock()
		return false
	}
	batch := c.queue
	c.queue, c.queuedBytes = nil, 0
	closing, code, reason := c.closing, c.closeCode, c.closeReason
	if len(batch) == 0 && !closing {
		c.flushing = false
		c.mu.Unlock()
		return false
	}
	c.mu.Unlock()
	if len(batch) > 0 {
		frame := batch[0] // one message: written as it is, no copy
		var joined *[]byte
		if len(batch) > 1 {
			joined = joinBuffers.Get().(*[]byte)
			for i, b := range batch {
				if i > 0 {
					*joined = append(*joined, '\n')
				}
				*joined = append(*joined, b...)
			}
			frame = *joined
		}
		// coder/websocket writes the frame into the socket's batch,
		// which goes out in one write bounded by WriteTimeout.
		c.pc.beginBatch()
		err := c.ws.Write(context.Background(), websocket.MessageText, frame)
		if berr := c.pc.endBatch(c.s.cfg.WriteTimeout); err == nil {
			err = berr
		}
		if joined != nil && cap(*joined) <= maxJoinBuffer {
			*joined = (*joined)[:0]
			joinBuffers.Put(joined)
		}
		if err != nil {
			c.cancel()
			c.writerClosed()
			return true // finishes in the next step
		}
		c.s.metrics.framesOut.Inc()
		c.s.metrics.messagesOut.Add(float64(len(batch)))
	}
	if closing {
		c.s.metrics.closes.WithLabelValues(fmt.Sprint(int(code))).Inc()
		c.bufMu.Lock()
		c.closeStarted = true
		c.bufMu.Unlock()
		_ = c.ws.Close(code, reason)
		c.cancel()
		c.writerClosed()
	}
	return true
}

// allow applies the per-connection token bucket. Over the limit the message
// is dropped with rate_limited; a second's worth of dropped messages closes
// the connection with 4002.
func (c *conn) allow(now time.Time) bool {
	rate := c.s.cfg.RateLimit
	c.tokens += now.Sub(c.lastFill).Seconds() * rate
	c.lastFill = now
	if c.tokens > rate {
		c.tokens = rate
	}
	if c.tokens >= 1 {
		c.tokens--
		c.flood = 0
		return true
	}
	c.flood++
	c.s.metrics.rateLimited.Inc()
	if float64(c.flood) > rate {
		c.fail(CloseFlood, "message flood")
	}
	return false
}

// subscription delivers one room's events to a connection, holding back
// events that race ahead of the snapshot until the snapshot is queued.
type subscription struct {
	c       *conn
	mu      sync.Mutex
	ready   bool
	pending [][]byte
	cancel  func()
}

// deliver queues one event; the event of a room with bulkFanout or more
// subscribers on this node is flushed with the next batch of delayed
// flushes (see flushLater).
func (sub *subscription) deliver(b []byte, fanout int) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.ready {
		sub.pending = append(sub.pending, b)
		return
	}
	sub.c.push(b, fanout >= sub.c.s.cfg.bulkFanout)
}

func (sub *subscription) start(snapshot []byte) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.c.enqueue(snapshot)
	for _, b := range sub.pending {
		sub.c.enqueue(b)
	}
	sub.pending, sub.ready = nil, true
}
