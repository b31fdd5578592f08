package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// netTransport is memberlist's UDP and TCP transport, as memberlist's own
// NetTransport does it but for one thing: NetTransport reads every UDP
// packet into a fresh 64 KiB buffer, which memberlist keeps until it has
// handled the packet. Replication sends its deltas as packets, so that was
// 71 % of all the bytes a bench node allocated while idle (a heap profile
// of a node with 19.5k sessions), and the GC ran for it. Here one buffer is
// read into and each packet is copied out at its own size.
//
// And one more: user messages (what SendBestEffort sends: replication's
// deltas, heads and pulls) can be taken straight from the socket, in the
// order they arrive (direct). memberlist puts them on a queue for its
// handler goroutine and takes them from it last in, first out
// (getNextMessage), so a burst that waited there was merged in reverse:
// on a saturated bench node nearly every delta arrived past a gap (5,431
// of 5,961 in 10 s), and the first of a burst waited for all the others.
type netTransport struct {
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	log      *zap.Logger
	shutdown atomic.Bool
	done     chan struct{} // closed by Shutdown
	wg       sync.WaitGroup
	// direct, if set, is handed the payload of every packet that is one
	// user message under label, unencrypted (its buffer is reused after
	// the call). Any other packet goes to memberlist as before.
	direct func([]byte)
	label  string
}

var _ memberlist.NodeAwareTransport = (*netTransport)(nil)

// maxPacket is the largest UDP payload.
const maxPacket = 65536

// newNetTransport listens for TCP and UDP on host:port (port 0: one the
// kernel picks, the same for both).
// direct and label: see netTransport (direct nil: every packet goes to
// memberlist; it must be nil when gossip is encrypted).
func newNetTransport(host string, port int, log *zap.Logger, label string, direct func([]byte)) (*netTransport, error) {
	// An empty host, or a name (not resolved, as memberlist's NetTransport
	// does not), binds every interface.
	ip := net.ParseIP(host)
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on TCP %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), err)
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("gossip: listen on UDP %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), err)
	}
	// A large receive buffer rides out bursts (memberlist asks for 2 MB
	// and takes what the kernel allows).
	for size := 2 << 20; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &netTransport{tcp: tcp, udp: udp, packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn), log: log, done: make(chan struct{}), direct: direct, label: label}
	t.wg.Add(2)
	go t.acceptTCP()
	go t.readUDP()
	return t, nil
}

// FinalAdvertiseAddr is the given address, or the bound one (a private IP
// when bound to all interfaces).
func (t *netTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	bound := t.tcp.Addr().(*net.TCPAddr)
	a := bound.IP
	if a.IsUnspecified() {
		priv, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("failed to get interface addresses: %v", err)
		}
		if a = net.ParseIP(priv); a == nil {
			return nil, 0, fmt.Errorf("no private IP address found, and explicit IP not provided")
		}
	}
	if a4 := a.To4(); a4 != nil {
		a = a4
	}
	return a, bound.Port, nil
}

func (t *netTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *netTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, udpAddr)
	return time.Now(), err
}

func (t *netTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *netTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (t *netTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes the listeners and waits for their goroutines.
func (t *netTransport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	close(t.done)
	_ = t.tcp.Close()
	_ = t.udp.Close()
	t.wg.Wait()
	return nil
}

// acceptTCP hands every accepted connection to memberlist, backing off
// after an accept error (out of files) instead of spinning.
func (t *netTransport) acceptTCP() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("gossip: accept TCP", zap.Error(err), zap.Duration("retry_in", delay))
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streamCh <- c:
		case <-t.done:
			_ = c.Close()
			return
		}
	}
}

// readUDP reads packets into one buffer and hands each to memberlist in a
// copy of its own size.
func (t *netTransport) readUDP() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, addr, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			t.log.Warn("gossip: read UDP packet", zap.Error(err))
			continue
		}
		if n < 1 {
			continue // memberlist's message type is the first byte
		}
		if t.direct != nil {
			if msg, ok := userMessage(buf[:n], t.label); ok {
				t.direct(msg)
				continue
			}
		}
		own := make([]byte, n)
		copy(own, buf)
		p := &memberlist.Packet{Buf: own, From: addr, Timestamp: ts}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

// memberlist's wire bytes (net.go, label.go of memberlist v0.6): a packet
// is [hasLabelMsg, size, label] when a label is set, then [hasCrcMsg,
// crc32] when the receiver speaks protocol 5, then the message type. These
// are its protocol, fixed across versions; TestUserMessagesOfMemberlistAreTakenInOrder
// checks them against memberlist itself.
const (
	mlUserMsg     = 8
	mlHasCrcMsg   = 12
	mlHasLabelMsg = 244
)

// userMessage returns the payload of a packet that is exactly one
// unencrypted memberlist user message carrying label, with a valid
// checksum if it has one; ok is false for anything else (memberlist then
// handles it, and logs what is wrong with it).
func userMessage(pkt []byte, label string) (msg []byte, ok bool) {
	if len(pkt) > 0 && pkt[0] == mlHasLabelMsg {
		if len(pkt) < 2 || len(pkt) < 2+int(pkt[1]) || string(pkt[2:2+int(pkt[1])]) != label || label == "" {
			return nil, false
		}
		pkt = pkt[2+int(pkt[1]):]
	} else if label != "" {
		return nil, false
	}
	if len(pkt) >= 5 && pkt[0] == mlHasCrcMsg {
		if crc32.ChecksumIEEE(pkt[5:]) != binary.BigEndian.Uint32(pkt[1:5]) {
			return nil, false
		}
		pkt = pkt[5:]
	}
	if len(pkt) < 1 || pkt[0] != mlUserMsg {
		return nil, false
	}
	return pkt[1:], true
}
