package gateway

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// countConn is a net.Conn whose reads come from r and whose writes are
// recorded one by one.
type countConn struct {
	net.Conn
	r      io.Reader
	writes [][]byte
}

func (c *countConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *countConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}
func (c *countConn) SetWriteDeadline(time.Time) error { return nil }

// Writes between beginBatch and endBatch leave in one socket write, and the
// pooled buffer is given back; writes outside a batch go straight through.
func TestSockConnBatchesWritesIntoOne(t *testing.T) {
	cc := &countConn{}
	c := &sockConn{Conn: cc}
	c.beginBatch()
	for _, s := range []string{"\x81\x05", "hello", "\x81\x03", "abc"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if len(cc.writes) != 0 {
		t.Fatalf("%d socket writes inside the batch", len(cc.writes))
	}
	if err := c.endBatch(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(cc.writes) != 1 || string(cc.writes[0]) != "\x81\x05hello\x81\x03abc" {
		t.Fatalf("socket writes %q, want one", cc.writes)
	}
	if c.wbuf != nil {
		t.Fatal("write buffer kept after the batch")
	}
	_, _ = c.Write([]byte("x"))
	if len(cc.writes) != 2 {
		t.Fatal("a write outside a batch was held back")
	}
	big := bytes.Repeat([]byte("y"), 3*wsPooled)
	c.beginBatch()
	_, _ = c.Write(big)
	_ = c.endBatch(time.Second)
	if !bytes.Equal(cc.writes[2], big) {
		t.Fatal("a batch larger than the pooled buffer was not written whole")
	}
}

// Reads return pending bytes first, then the socket's; the pooled read
// buffer is held only while it has unread bytes.
func TestSockConnReadsHoldNoBufferWhenDrained(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes
	c := &sockConn{Conn: &countConn{r: bytes.NewReader(data)}, pending: []byte("pre:")}
	var got bytes.Buffer
	p := make([]byte, 16)
	for {
		n, err := c.Read(p)
		got.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c.pending) == 0 && c.rbuf != nil {
			t.Fatal("read buffer held with nothing pending")
		}
	}
	if got.String() != "pre:"+string(data) {
		t.Fatalf("read %d bytes, want %d", got.Len(), len(data)+4)
	}
	if c.rbuf != nil {
		t.Fatal("read buffer held at EOF")
	}
}
