package gateway

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Buffers of a hijacked WebSocket connection. net/http hands a hijacked
// connection its 4 KiB read buffer and a new 4 KiB write buffer: 8 KiB that
// an idle presence session would hold for nothing. Here coder/websocket
// gets minimal bufio buffers over a socket wrapper (sockConn) that borrows
// a pooled buffer only while bytes pass through it: an idle connection
// holds none.
const (
	wsBufio  = 16      // bufio's minimum: headers are read and written through it
	wsPooled = 4 << 10 // one socket read; a batch of writes up to this size
)

var wsBuffers = sync.Pool{New: func() any { b := make([]byte, wsPooled); return &b }}

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack
// swaps net/http's buffers for small ones and keeps what it hands out, so
// the connection can be watched for readability without a goroutine.
type smallBuffers struct {
	http.ResponseWriter
	conn *sockConn
	br   *bufio.Reader
}

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &sockConn{Conn: nc}
	// Bytes the client sent after its upgrade request are in net/http's
	// buffer: the connection returns them first.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		w.conn.pending = append([]byte(nil), b...)
	}
	w.br = bufio.NewReaderSize(w.conn, wsBufio)
	return w.conn, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.conn, wsBufio)), nil
}

func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sockConn is the socket under coder/websocket. Reads go through a pooled
// buffer, held only while it has unread bytes (one reader at a time, as
// coder/websocket reads). Writes made between beginBatch and endBatch are
// gathered in a pooled buffer and go out in one write; others go straight
// to the socket.
type sockConn struct {
	net.Conn
	pending []byte  // unread bytes of the last socket read
	rbuf    *[]byte // the pooled buffer pending lies in, if any

	wmu      sync.Mutex
	batching bool
	wbuf     *[]byte
}

func (c *sockConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if len(p) >= wsPooled {
			return c.Conn.Read(p)
		}
		if c.rbuf == nil {
			c.rbuf = wsBuffers.Get().(*[]byte)
		}
		n, err := c.Conn.Read(*c.rbuf)
		c.pending = (*c.rbuf)[:n]
		if n == 0 {
			c.release()
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.release()
	}
	return n, nil
}

func (c *sockConn) release() {
	c.pending = nil
	if c.rbuf != nil {
		wsBuffers.Put(c.rbuf)
		c.rbuf = nil
	}
}

func (c *sockConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	if c.batching {
		if c.wbuf == nil {
			c.wbuf = wsBuffers.Get().(*[]byte)
			*c.wbuf = (*c.wbuf)[:0]
		}
		*c.wbuf = append(*c.wbuf, p...)
		c.wmu.Unlock()
		return len(p), nil
	}
	c.wmu.Unlock()
	return c.Conn.Write(p)
}

// beginBatch gathers writes until endBatch.
func (c *sockConn) beginBatch() {
	c.wmu.Lock()
	c.batching = true
	c.wmu.Unlock()
}

// endBatch writes what was gathered in one write, bounded by timeout.
func (c *sockConn) endBatch(timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.batching = false
	if c.wbuf == nil {
		return nil
	}
	b := c.wbuf
	c.wbuf = nil
	_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Conn.Write(*b)
	// Cleared, or a later write outside a batch (coder/websocket's close
	// frame) would fail on this deadline once it has passed.
	_ = c.Conn.SetWriteDeadline(time.Time{})
	if cap(*b) <= 4*wsPooled {
		*b = (*b)[:wsPooled]
		wsBuffers.Put(b)
	}
	return err
}

// rawConn is the socket's syscall.RawConn, or nil (a TLS connection,
// whose readable socket says nothing of its decrypted bytes).
func (c *sockConn) rawConn() syscall.RawConn {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
