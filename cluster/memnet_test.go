package cluster_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network for memberlist. Each node gets a
// memTransport with its own address; packets travel over channels and
// streams over net.Pipe, so nothing touches the host's network and faults
// are exact. As behind a firewall that drops everything:
//
//   - a packet over a cut link, a packet lost to the drop rate, and one sent
//     to an unknown, stopped or backed-up node vanish without an error.
//     Sending never blocks: memberlist answers pings on its packet
//     goroutine, and two nodes blocked on each other's queues would deadlock;
//   - a stream dial over a cut link, or to an unknown or stopped node, fails;
//   - a stream already open when its link is cut stays open (memberlist
//     opens one stream per exchange, so they are short-lived);
//   - delay is added to every packet and to every stream set-up.
//
// Shutdown closes every stream end the transport holds, so a goroutine
// reading the other end gets EOF instead of waiting for its deadline.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memTransport // by address
	cut   map[[2]string]bool       // both directions of every cut link
	drop  float64                  // share of packets lost
	delay time.Duration
	rng   *rand.Rand
	next  int // last port handed out
}

func newMemNet(seed uint64) *memNet {
	return &memNet{nodes: map[string]*memTransport{}, cut: map[[2]string]bool{}, rng: rand.New(rand.NewPCG(seed, seed)), next: 7945}
}

// newTransport attaches a node at a fresh address in 192.0.2.0/24
// (TEST-NET-1: documentation only, never routed).
func (n *memNet) newTransport() *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	t := &memTransport{
		net:     n,
		addr:    memAddr("192.0.2.1:" + strconv.Itoa(n.next)),
		packets: make(chan *memberlist.Packet, 4096),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
		conns:   map[*memConn]struct{}{},
	}
	n.nodes[string(t.addr)] = t
	return t
}

// partition cuts every link between a node of a and a node of b, both ways.
func (n *memNet) partition(a, b []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]string{x, y}], n.cut[[2]string{y, x}] = true, true
		}
	}
}

// heal restores every cut link.
func (n *memNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
}

// impair loses a share of all packets and delays packets and stream set-up.
func (n *memNet) impair(drop float64, delay time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop, n.delay = drop, delay
}

// route looks up the node at addr, whether the link from→addr is cut (or,
// for a packet, whether this one is lost) and the delay to add.
func (n *memNet) route(from, addr string, packet bool) (to *memTransport, lost bool, delay time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	lost = n.cut[[2]string{from, addr}]
	if packet && !lost && n.drop > 0 {
		lost = n.rng.Float64() < n.drop
	}
	return n.nodes[addr], lost, n.delay
}

// memAddr is a node's "host:port" on a memNet.
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// memTransport is one node's attachment to a memNet.
type memTransport struct {
	net     *memNet
	addr    memAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{} // closed by Shutdown
	stop    sync.Once
	mu      sync.Mutex
	conns   map[*memConn]struct{} // open stream ends; nil once shut down
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

// Addr is the address to give cluster.Config.GossipAddr and to join.
func (t *memTransport) Addr() string { return string(t.addr) }

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(string(t.addr))
	if err != nil {
		return nil, 0, err
	}
	p, err := strconv.Atoi(port)
	return net.ParseIP(host), p, err
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	to, lost, delay := t.net.route(string(t.addr), addr, true)
	if to == nil || lost {
		return now, nil
	}
	p := &memberlist.Packet{Buf: bytes.Clone(b), From: t.addr} // the caller reuses b
	if delay > 0 {
		time.AfterFunc(delay, func() { to.deliver(p) })
	} else {
		to.deliver(p)
	}
	return now, nil
}

func (t *memTransport) deliver(p *memberlist.Packet) {
	p.Timestamp = time.Now()
	select {
	case <-t.done:
	case t.packets <- p:
	default: // queue full: lost, like a full socket buffer
	}
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	to, cut, delay := t.net.route(string(t.addr), addr, false)
	switch {
	case cut:
		return nil, fmt.Errorf("dial %s: link cut", addr)
	case to == nil:
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	expired := time.NewTimer(timeout)
	defer expired.Stop()
	if delay > 0 { // a slow link: set-up takes the delay too
		slow := time.NewTimer(delay)
		defer slow.Stop()
		select {
		case <-slow.C:
		case <-expired.C:
			return nil, fmt.Errorf("dial %s: timeout", addr)
		case <-t.done:
			return nil, fmt.Errorf("dial %s: transport shut down", addr)
		}
	}
	a, b := net.Pipe()
	mine, theirs := t.track(a, to.addr), to.track(b, t.addr)
	if mine != nil && theirs != nil {
		select {
		case to.streams <- theirs:
			return mine, nil
		case <-to.done:
		case <-t.done:
		case <-expired.C:
		}
	}
	_, _ = a.Close(), b.Close()
	t.forget(mine)
	to.forget(theirs)
	return nil, fmt.Errorf("dial %s: connection refused", addr)
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// Shutdown detaches the node: its address no longer answers, and every
// stream end it holds is closed.
func (t *memTransport) Shutdown() error {
	t.stop.Do(func() {
		t.net.mu.Lock()
		delete(t.net.nodes, string(t.addr))
		t.net.mu.Unlock()
		close(t.done)
		t.mu.Lock()
		conns := t.conns
		t.conns = nil
		t.mu.Unlock()
		for c := range conns {
			_ = c.Conn.Close()
		}
	})
	return nil
}

// track records a stream end this transport holds; nil once it is shut down.
func (t *memTransport) track(c net.Conn, remote memAddr) *memConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return nil
	}
	mc := &memConn{Conn: c, t: t, remote: remote}
	t.conns[mc] = struct{}{}
	return mc
}

func (t *memTransport) forget(c *memConn) {
	if c == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c) // a no-op on the nil map after Shutdown
}

// memConn is one end of a stream, with memNet addresses for memberlist's logs.
type memConn struct {
	net.Conn
	t      *memTransport
	remote memAddr
}

func (c *memConn) LocalAddr() net.Addr  { return c.t.addr }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) Close() error {
	c.t.forget(c)
	return c.Conn.Close()
}

// The network itself: cuts lose packets and refuse dials until healed, the
// drop rate loses about its share, delay delays, and Shutdown ends streams.
func TestMemNetFaults(t *testing.T) {
	mn := newMemNet(1)
	a, b := mn.newTransport(), mn.newTransport()
	t.Cleanup(func() { _, _ = a.Shutdown(), b.Shutdown() })
	arrived := func() bool { // without delay a packet is queued before WriteTo returns
		_, _ = a.WriteTo([]byte("x"), b.Addr())
		select {
		case <-b.PacketCh():
			return true
		default:
			return false
		}
	}
	if !arrived() {
		t.Fatal("packet lost on a healthy link")
	}
	mn.partition([]string{a.Addr()}, []string{b.Addr()})
	if arrived() {
		t.Fatal("packet crossed a cut link")
	}
	if _, err := b.DialTimeout(a.Addr(), time.Second); err == nil {
		t.Fatal("stream dialled across a cut link")
	}
	mn.heal()
	if !arrived() {
		t.Fatal("packet lost after the heal")
	}

	mn.impair(0.3, 0)
	got := 0
	for i := 0; i < 1000; i++ {
		if arrived() {
			got++
		}
	}
	if got < 600 || got > 800 {
		t.Fatalf("%d of 1000 packets arrived at 30%% loss", got)
	}

	mn.impair(0, 20*time.Millisecond)
	sent := time.Now()
	_, _ = a.WriteTo([]byte("x"), b.Addr())
	select {
	case <-b.PacketCh():
		if d := time.Since(sent); d < 20*time.Millisecond {
			t.Fatalf("a 20 ms link delivered in %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("delayed packet never arrived")
	}

	accepted := make(chan net.Conn, 1)
	go func() { accepted <- <-b.StreamCh() }()
	c, err := a.DialTimeout(b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()
	_ = a.Shutdown()
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream still open after its dialler shut down")
	}
	if _, err := b.DialTimeout(a.Addr(), time.Second); err == nil {
		t.Fatal("dialled a node that is shut down")
	}
}
