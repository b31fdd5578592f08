package cluster

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/presenced/presenced/crdt"
)

// Config configures a Cluster.
type Config struct {
	Replica    Replica
	GossipAddr string   // host:port to bind gossip (UDP and TCP); port 0 picks one
	Advertise  string   // host:port peers should use; "" = GossipAddr (or the bound port)
	Join       []string // peers to join (host:port; a DNS name may resolve to several)
	Profile    string   // lan (default), wan, local
	Key        string   // base64 AES keys (16, 24 or 32 bytes), comma-separated: the first encrypts, all decrypt; "" = none
	Label      string   // cluster label: peers with another label are refused
	RaftAddr   string   // advertised in node meta (raft bootstrap); Meta.Addr() if Meta is set
	HTTPAddr   string   // advertised in node meta
	Logger     *zap.Logger

	// Meta, if set, is the room-metadata raft store this cluster manages:
	// bootstrap once BootstrapExpect servers are visible, new nodes added as
	// non-voters and promoted, dead ones removed, writes forwarded to the
	// leader (raftmgr.go, forward.go).
	Meta *Meta
	// BootstrapExpect: servers to wait for before bootstrapping raft. 0 means
	// 1 without Join (a lone node bootstraps itself) and never with Join
	// (the node is added to the existing group by its leader).
	BootstrapExpect int
	// Transport replaces memberlist's UDP/TCP transport (tests inject faults
	// with it); GossipAddr is then ignored.
	Transport memberlist.Transport

	// DeadServerTimeout: how long a failed node stays in the raft group
	// before the leader removes it (default 30 s; 5 s in the local profile).
	DeadServerTimeout time.Duration
}

// meta is what a node advertises to peers (memberlist node meta, ≤ 512 bytes).
type meta struct {
	Node        string `json:"n"` // stable node name
	Incarnation uint64 `json:"i"` // boot epoch
	Raft        string `json:"r,omitempty"`
	HTTP        string `json:"h,omitempty"`
	RaftState   bool   `json:"s,omitempty"` // this node is in a raft group already
}

// Cluster is this node's membership and session replication.
type Cluster struct {
	cfg  Config
	log  *zap.Logger
	self crdt.Origin
	name string // memberlist name: stable name + boot epoch, unique per boot
	addr string // gossip address peers use
	ml   *memberlist.Memberlist
	meta []byte

	mu         sync.Mutex
	peers      map[string]*peer         // by memberlist name
	origins    map[string]crdt.Origin   // newest incarnation seen per stable name
	failed     map[crdt.Origin]struct{} // origins reported failed to the replica
	lag        map[crdt.Origin]uint64   // our watermark when a head showed us behind
	want       crdt.Digest              // what peers announced when we joined (readiness)
	synced     time.Time                // when the first remote state arrived
	metaMu     sync.Mutex               // guards meta (the advertised bytes)
	lost       map[string]time.Time     // stable node name → when it failed (raft removal)
	redial     map[string]string        // memberlist name of a dead (not departed) peer → its address
	added      map[string]time.Time     // stable node name → when it was added as a non-voter
	pending    map[uint64]chan forwardReply
	digests    map[string]peerDigest     // latest digest of each peer (tombstone GC)
	pulling    map[crdt.Origin]time.Time // origins with a pull in flight (last progress)
	resyncs    map[crdt.Origin]*resyncState
	censusMiss map[crdt.Origin]int // rounds an owner's census differed from ours
	corr       atomic.Uint64

	inbox chan []byte
	// senders is every peer's sender, for Notify (which runs under the
	// engine's lock and so may not take mu); replaced under mu.
	senders  atomic.Pointer[[]*peer]
	tasks    []func()      // engine calls queued by memberlist callbacks (guarded by mu)
	tasksCh  chan struct{} // signals tasks
	stop     chan struct{}
	wg       sync.WaitGroup
	bg       sync.WaitGroup // forwarded writes being applied
	ready    atomic.Bool
	closed   atomic.Bool // set before memberlist shuts down: its late timer callbacks are ignored
	shutdown sync.Once
	stats    Stats
}

// Stats are replication counters for metrics.
type Stats struct {
	DeltasSent, DeltasSentReliable, DeltasReceived, GapsSeen, GapsRepaired, Pulls, DigestMismatches, Dropped, TombstonesCollected, EOFHints, Resyncs, ResyncPruned, CensusRepairs, GossipDeathsOverruled atomic.Uint64
}

// New starts gossip (it does not join: call Join).
func New(cfg Config) (*Cluster, error) {
	if cfg.Replica == nil {
		return nil, errors.New("cluster: Config.Replica is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Replica = wrapReplica(cfg.Replica)
	if brokenBuild {
		cfg.Logger.Error("DELIBERATELY BROKEN BUILD (-tags chaos_broken): failure handling is off, dead nodes' sessions stay listed")
	}
	mc, err := gossipConfig(cfg.Profile)
	if err != nil {
		return nil, err
	}
	self := cfg.Replica.Origin()
	c := &Cluster{
		cfg: cfg, log: cfg.Logger, self: self,
		name:       memberName(self),
		peers:      make(map[string]*peer),
		origins:    make(map[string]crdt.Origin),
		failed:     make(map[crdt.Origin]struct{}),
		lag:        make(map[crdt.Origin]uint64),
		want:       make(crdt.Digest),
		lost:       make(map[string]time.Time),
		redial:     make(map[string]string),
		added:      make(map[string]time.Time),
		pending:    make(map[uint64]chan forwardReply),
		digests:    make(map[string]peerDigest),
		pulling:    make(map[crdt.Origin]time.Time),
		resyncs:    make(map[crdt.Origin]*resyncState),
		censusMiss: make(map[crdt.Origin]int),
		inbox:      make(chan []byte, 4096),
		tasksCh:    make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	if cfg.Meta != nil {
		cfg.RaftAddr = cfg.Meta.Addr()
		c.cfg.RaftAddr = cfg.RaftAddr
	}
	if cfg.DeadServerTimeout <= 0 {
		cfg.DeadServerTimeout = 30 * time.Second
		if cfg.Profile == ProfileLocal {
			cfg.DeadServerTimeout = 5 * time.Second
		}
		c.cfg.DeadServerTimeout = cfg.DeadServerTimeout
	}
	c.meta, _ = json.Marshal(meta{Node: self.Node, Incarnation: self.Incarnation, Raft: cfg.RaftAddr, HTTP: cfg.HTTPAddr,
		RaftState: cfg.Meta != nil && cfg.Meta.HasState()})
	if len(c.meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: node meta of %d bytes (max %d): shorten the node name or addresses", len(c.meta), memberlist.MetaMaxSize)
	}
	mc.Name = c.name
	host, port, err := splitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: --gossip-addr: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	if cfg.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("cluster: advertise address: %w", err)
		}
	}
	if cfg.Key != "" {
		var keys [][]byte
		for _, k := range strings.Split(cfg.Key, ",") {
			key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
			if err != nil {
				return nil, fmt.Errorf("cluster: --gossip-key is not base64: %w", err)
			}
			keys = append(keys, key)
		}
		if mc.Keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
			return nil, fmt.Errorf("cluster: --gossip-key: %w", err)
		}
	}
	mc.Label = cfg.Label
	mc.Delegate = delegate{c}
	mc.Events = events{c}
	mc.Logger = memberlistLogger(cfg.Logger.Named("memberlist"), &c.closed)
	// Several boots of one node name never collide: the memberlist name
	// carries the boot epoch. Reclaim dead names quickly anyway.
	mc.DeadNodeReclaimTime = 30 * time.Second
	var own *netTransport
	if mc.Transport == nil {
		// Unencrypted, user messages skip memberlist's last-in-first-out
		// queue (transport.go); encrypted ones take memberlist's path.
		var direct func([]byte)
		if mc.Keyring == nil {
			direct = c.receive
		}
		if own, err = newNetTransport(host, port, cfg.Logger.Named("memberlist"), cfg.Label, direct); err != nil {
			return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.GossipAddr, err)
		}
		mc.Transport = own
		mc.BindPort = own.tcp.Addr().(*net.TCPAddr).Port // port 0: the one picked
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if own != nil {
			_ = own.Shutdown()
		}
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.GossipAddr, err)
	}
	c.ml = ml
	local := ml.LocalNode() // read once: memberlist mutates it later (UpdateNode)
	c.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	c.wg.Add(1)
	go c.worker()
	c.wg.Add(3)
	go c.pauseWatch()
	go c.reconnector(reconnectInterval(cfg.Profile))
	go c.collector(gcInterval(cfg.Profile))
	if cfg.Meta != nil {
		cfg.Meta.SetForwarder(c.forwardToLeader)
		c.wg.Add(1)
		go c.raftManager()
	}
	if len(cfg.Join) == 0 {
		c.ready.Store(true) // the first node of a cluster has nothing to catch up on
	}
	return c, nil
}

// memberName is an origin's memberlist name: unique per boot.
func memberName(o crdt.Origin) string { return o.Node + "-" + strconv.FormatUint(o.Incarnation, 36) }

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// Addr is the gossip address peers use to reach this node.
func (c *Cluster) Addr() string { return c.addr }

// Join contacts the given peers (DNS names resolving to several addresses
// are tried in turn). The node becomes ready once it has merged the state
// the peers announced to it.
func (c *Cluster) Join(peers []string) error {
	if len(peers) == 0 {
		return nil
	}
	n, err := c.ml.Join(peers)
	if n == 0 {
		return fmt.Errorf("cluster: join %v: %w", peers, err)
	}
	c.log.Info("joined cluster", zap.Int("contacted", n), zap.Int("members", c.ml.NumMembers()))
	return nil
}

// Ready reports whether this node has joined and caught up with what its
// peers announced when it joined, so it answers queries from a full replica
// (a load balancer should not send it traffic before).
func (c *Cluster) Ready() bool {
	if c.ready.Load() {
		return true
	}
	c.mu.Lock()
	synced, want := c.synced, make(crdt.Digest, len(c.want))
	for o, s := range c.want {
		if !c.supersededLocked(o) {
			want[o] = s
		}
	}
	c.mu.Unlock()
	if synced.IsZero() {
		return false
	}
	have := c.cfg.Replica.Digest()
	for o, s := range want {
		if have[o] < s && time.Since(synced) < readyTimeout {
			return false
		}
	}
	c.ready.Store(true)
	return true
}

// NumMembers counts the alive members, this node included.
func (c *Cluster) NumMembers() int { return c.ml.NumMembers() }

// Leave announces a graceful departure: peers mark this node's sessions
// stale (the clients reconnect elsewhere inside grace).
func (c *Cluster) Leave(timeout time.Duration) error { return c.ml.Leave(timeout) }

// Shutdown stops gossip and every goroutine. It is idempotent.
func (c *Cluster) Shutdown() error {
	var err error
	c.shutdown.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		c.mu.Unlock()
		close(c.stop)
		err = c.ml.Shutdown()
		c.wg.Wait()
		c.bg.Wait()
	})
	return err
}

func (c *Cluster) nodeMeta(limit int) []byte {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	if len(c.meta) > limit {
		return nil
	}
	return c.meta
}

func parseMeta(n *memberlist.Node) (meta, bool) {
	var m meta
	if err := json.Unmarshal(n.Meta, &m); err != nil || m.Node == "" {
		return m, false
	}
	return m, true
}
