package cluster_test

import (
	"errors"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/session"
)

// faultNet cuts links between gossip addresses. Each node drops what it
// would send over a cut link (UDP packets and new TCP streams; memberlist
// opens a stream per exchange), so a cut is symmetric.
type faultNet struct {
	mu    sync.Mutex
	cut   map[[2]string]bool
	delay time.Duration // added to every UDP packet
	drop  float64       // share of UDP packets lost
	rng   *rand.Rand
}

// impair returns whether to drop a packet and how long to delay it.
func (f *faultNet) impair() (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng == nil {
		f.rng = rand.New(rand.NewPCG(1, 2))
	}
	return f.drop > 0 && f.rng.Float64() < f.drop, f.delay
}

func (f *faultNet) partition(a, b []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			f.cut[[2]string{x, y}], f.cut[[2]string{y, x}] = true, true
		}
	}
}

func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}

func (f *faultNet) blocked(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[[2]string{from, to}]
}

type faultTransport struct {
	*memberlist.NetTransport
	net  *faultNet
	self string
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.blocked(t.self, addr) {
		return time.Now(), nil // lost on the wire
	}
	drop, delay := t.net.impair()
	if drop {
		return time.Now(), nil
	}
	if delay > 0 {
		msg := append([]byte(nil), b...)
		time.AfterFunc(delay, func() { _, _ = t.NetTransport.WriteTo(msg, addr) })
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.net.blocked(t.self, addr) {
		return nil, errors.New("partitioned")
	}
	if _, delay := t.net.impair(); delay > 0 {
		time.Sleep(delay) // a slow link: connection set-up takes the delay too
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func startFaultNode(t *testing.T, fn *faultNet, name string, grace time.Duration, join ...string) *testNode {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	tr := &faultTransport{NetTransport: nt, net: fn, self: "127.0.0.1:" + strconv.Itoa(nt.GetAutoBindPort())}
	return buildNode(t, cluster.Config{Transport: tr, GossipAddr: tr.self, Join: join, Logger: zaptest.NewLogger(t).Named(name)}, name, 1, grace)
}

// members lists a node's view of room r as "user=state " sorted by user.
func members(n *testNode) string {
	ms, _ := n.engine.RoomMembers("r")
	sort.Slice(ms, func(i, j int) bool { return ms[i].User < ms[j].User })
	out := ""
	for _, m := range ms {
		out += m.User + "=" + string(m.State) + " "
	}
	return out
}

// Partition {1,2} | {3}: each side sees the other side's sessions stale,
// then gone after grace; after the heal every node has the same view again.
func TestPartitionHealsToIdenticalViews(t *testing.T) {
	fn := &faultNet{cut: map[[2]string]bool{}}
	n1 := startFaultNode(t, fn, "n1", 3*time.Second)
	n2 := startFaultNode(t, fn, "n2", 3*time.Second, n1.c.Addr())
	n3 := startFaultNode(t, fn, "n3", 3*time.Second, n1.c.Addr())
	nodes := []*testNode{n1, n2, n3}
	for i, n := range nodes {
		op, _ := n.engine.Open(session.OpenRequest{User: "u" + strconv.Itoa(i+1)})
		_ = n.engine.Enter(op.Session, "r", nil)
	}
	all := "u1=active u2=active u3=active "
	took := eventually(t, 10*time.Second, "replicated", func() bool {
		return members(n1) == all && members(n2) == all && members(n3) == all
	})
	t.Logf("replicated after %v", took)

	fn.partition([]string{n1.c.Addr(), n2.c.Addr()}, []string{n3.c.Addr()})
	eventually(t, 5*time.Second, "each side sees the other side stale", func() bool {
		return members(n1) == "u1=active u2=active u3=stale " && members(n3) == "u1=stale u2=stale u3=active "
	})
	eventually(t, 8*time.Second, "then gone after grace", func() bool {
		return members(n1) == "u1=active u2=active " && members(n2) == "u1=active u2=active " && members(n3) == "u3=active "
	})

	fn.heal()
	healed := time.Now()
	took = eventually(t, 10*time.Second, "identical views after heal", func() bool {
		return members(n1) == all && members(n2) == all && members(n3) == all
	})
	t.Logf("views identical %v after the heal", took)
	_ = healed
	for _, n := range nodes {
		checkCounts(t, n)
	}
}

func checkCounts(t *testing.T, n *testNode) {
	t.Helper()
	if c := n.engine.RoomCounts("r"); c.Online.Connections != 3 || c.Online.Users != 3 {
		t.Fatalf("%s counts %+v", n.name, c)
	}
}

// NetTransport is node-aware: memberlist calls these, not WriteTo/DialTimeout.
func (t *faultTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, addr.Addr)
}

func (t *faultTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(addr.Addr, timeout)
}

// With 20 ms of delay and 20% of UDP packets lost, every change still
// reaches every node (gaps and heads trigger pulls over TCP) and the views
// converge.
func TestReplicationConvergesOnALossyNetwork(t *testing.T) {
	fn := &faultNet{cut: map[[2]string]bool{}}
	n1 := startFaultNode(t, fn, "l1", 10*time.Second)
	n2 := startFaultNode(t, fn, "l2", 10*time.Second, n1.c.Addr())
	eventually(t, 5*time.Second, "joined", func() bool { return n1.c.NumMembers() == 2 && n2.c.NumMembers() == 2 })
	fn.mu.Lock()
	fn.delay, fn.drop = 20*time.Millisecond, 0.2
	fn.mu.Unlock()
	var sids []string
	for i := 0; i < 200; i++ {
		op, err := n1.engine.Open(session.OpenRequest{User: "u" + strconv.Itoa(i%50)})
		if err != nil {
			t.Fatal(err)
		}
		_ = n1.engine.Enter(op.Session, "r", []byte(`{"i":`+strconv.Itoa(i)+`}`))
		sids = append(sids, op.Session)
	}
	for _, sid := range sids[:100] {
		_ = n1.engine.Close(sid, session.ReasonClosed, nil)
	}
	took := eventually(t, 10*time.Second, "converged", func() bool {
		a, b := n1.engine.RoomCounts("r"), n2.engine.RoomCounts("r")
		return a.Online == b.Online && b.Online.Connections == 100 && sameUsers(n1, n2)
	})
	t.Logf("converged %v after the last change (20 ms delay, 20%% loss)", took)
}

// sameUsers compares two nodes' derived presence of every test user.
func sameUsers(a, b *testNode) bool {
	for i := 0; i < 50; i++ {
		u := "u" + strconv.Itoa(i)
		pa, pb := a.engine.UserPresence(u), b.engine.UserPresence(u)
		if pa.State != pb.State || pa.Sessions != pb.Sessions {
			return false
		}
	}
	return true
}
