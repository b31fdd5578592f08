//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// poller watches idle WebSocket connections for readability with one epoll
// instance, so that an idle connection has no goroutine (and no stack:
// 8–16 KiB each, the largest part of an idle session's memory). When a
// socket becomes readable the poller starts a goroutine that reads what
// has arrived and ends; the socket is then watched again. Registrations
// are one-shot, so at most one reader runs per connection.
//
// The sockets stay in Go's own netpoller too: a read that finds only part
// of a frame blocks as usual until the rest comes.
//
// The epoll instance is itself waited on in Go's netpoller (an epoll
// descriptor is readable while it has events), and read with a zero
// timeout: a goroutine blocked in epoll_wait would hold a thread in a
// system call, each wake-up a thread switch more, on a machine where
// switches were the largest part of an idle node's CPU.
type poller struct {
	epfd    int
	ep      *os.File // epfd, in Go's netpoller
	wake    [2]int   // a pipe: a byte written to wake[1] ends run
	onReady func(*conn)

	mu    sync.Mutex
	conns map[uint64]*conn
	next  uint64
	done  chan struct{}

	// fdMu keeps epfd from closing (and its number from being reused)
	// while epoll_ctl runs on it.
	fdMu   sync.RWMutex
	closed bool
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller(onReady func(*conn)) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil { // so os.NewFile puts it in the netpoller
		syscall.Close(epfd)
		return nil, err
	}
	p := &poller{epfd: epfd, ep: os.NewFile(uintptr(epfd), "epoll"), onReady: onReady, conns: make(map[uint64]*conn), done: make(chan struct{})}
	// os.NewFile keeps a descriptor the netpoller refused as a plain file,
	// which could not be waited on: then no poller (a reading goroutine per
	// connection instead).
	if err := p.ep.SetReadDeadline(time.Time{}); err != nil {
		p.ep.Close()
		return nil, fmt.Errorf("epoll descriptor not in Go's netpoller: %w", err)
	}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		p.ep.Close()
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // data 0: the wake pipe
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, err
	}
	go p.run()
	return p, nil
}

// watch registers c (whose socket is raw) and arms it.
func (p *poller) watch(c *conn) error {
	p.mu.Lock()
	p.next++
	c.pollID = p.next
	p.conns[c.pollID] = c
	p.mu.Unlock()
	if err := p.ctl(c, syscall.EPOLL_CTL_ADD); err != nil {
		p.forget(c)
		return err
	}
	return nil
}

// arm watches c's socket again after a read.
func (p *poller) arm(c *conn) error {
	err := p.ctl(c, syscall.EPOLL_CTL_MOD)
	if errors.Is(err, syscall.ENOENT) {
		err = p.ctl(c, syscall.EPOLL_CTL_ADD)
	}
	return err
}

// ctl runs epoll_ctl inside RawConn.Control, which holds the descriptor
// open: a socket closed meanwhile gives an error instead of acting on
// whatever connection reused its number.
func (p *poller) ctl(c *conn, op int) error {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.closed {
		return errPollerClosed
	}
	if c.pollID == 0 {
		return errors.New("poller: connection not watched") // id 0 is the wake pipe's
	}
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(c.pollID)), Pad: int32(uint32(c.pollID >> 32))}
	var opErr error
	err := c.raw.Control(func(fd uintptr) {
		opErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return opErr
}

// forget drops c. Its registration ends with its socket's close.
func (p *poller) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c.pollID)
	p.mu.Unlock()
}

func (p *poller) run() {
	defer close(p.done)
	rc, err := p.ep.SyscallConn()
	if err != nil {
		return
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		// Read parks in the netpoller until epfd is readable whenever the
		// function reports false (nothing ready yet).
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = syscall.EpollWait(int(fd), events, 0)
			return n > 0 || werr != nil
		})
		if errors.Is(werr, syscall.EINTR) {
			continue
		}
		if err != nil || werr != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				return
			}
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil {
				p.onReady(c)
			}
		}
	}
}

// close stops the poller. Connections still watched are not closed.
func (p *poller) close() {
	_, _ = syscall.Write(p.wake[1], []byte{0})
	<-p.done
	p.fdMu.Lock()
	p.closed = true
	p.closeFDs()
	p.fdMu.Unlock()
}

var errPollerClosed = errors.New("poller closed")

func (p *poller) closeFDs() {
	p.ep.Close()
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
}

// watched is how many connections the poller holds (for metrics and tests).
func (p *poller) watched() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// linger waits up to d for c's socket to have bytes to read (or its end),
// parked in Go's netpoller; it reports whether they came. Nothing is read:
// a peek tells readable from not.
func (c *conn) linger(d time.Duration) bool {
	if d <= 0 || c.isClosing() {
		// Closing: the close handshake reads the socket now, and a read
		// deadline set here would cut its wait for the client's answer.
		return false
	}
	if c.hasBuffered() {
		return true
	}
	if c.pc.SetReadDeadline(time.Now().Add(d)) != nil {
		return false
	}
	var b [1]byte
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return e != syscall.EAGAIN && e != syscall.EINTR
	})
	// Cleared before coder/websocket reads again: a read past a deadline
	// would close the connection.
	_ = c.pc.SetReadDeadline(time.Time{})
	return err == nil
}
