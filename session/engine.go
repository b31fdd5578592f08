package session

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/crdt"
)

// RoomConfig is a room's settings that change how the engine treats it.
// Zero fields mean "use the engine default".
type RoomConfig struct {
	Grace         time.Duration
	MaxMembers    int
	TypingTimeout time.Duration
}

// RoomSettings looks up per-room settings (kept by the cluster's metadata
// store). It is called with the engine's mutex held and must not block.
type RoomSettings interface {
	RoomConfig(room string) (RoomConfig, bool)
}

// Config configures an Engine. New fills zero fields with the defaults shown.
type Config struct {
	Node        string // node name; the writer of this node's entries
	Incarnation uint64 // boot epoch of this node; 0 means the clock's unix ms at New
	Clock       Clock  // RealClock{} if nil

	IdleAfter     time.Duration // 60s: no activity for this long → idle
	AwayAfter     time.Duration // 5m: no activity for this long → away
	Grace         time.Duration // 15s: a lost connection stays stale this long before it leaves
	HeartbeatTTL  time.Duration // 60s: an HTTP-heartbeat session goes stale this long after its last beat
	TypingTimeout time.Duration // 3s: typing expires unless refreshed
	LastSeenTTL   time.Duration // 168h: how long a user's last-seen time is kept

	MaxRoomsPerSession int // 100
	MaxSessionsPerUser int // 100 sessions of one user on this node (tabs, devices, agents, heartbeat clients)
	MaxDataBytes       int // 2048 bytes of per-room JSON data (and session metadata)
	MaxIDBytes         int // 128 bytes for session, user, room and location ids

	Rooms  RoomSettings // optional per-room overrides
	Logger *zap.Logger  // zap.NewNop() if nil

	// OnLocalWrite, if set, is called (with the engine's mutex held; it must
	// not block) after every write this node makes, so the cluster can ship
	// the change to peers.
	OnLocalWrite func(crdt.Entry)
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Node == "" {
		c.Node = "local"
	}
	if c.Incarnation == 0 {
		c.Incarnation = uint64(c.Clock.Now().UnixMilli())
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.IdleAfter, 60*time.Second)
	def(&c.AwayAfter, 5*time.Minute)
	def(&c.Grace, 15*time.Second)
	def(&c.HeartbeatTTL, 60*time.Second)
	def(&c.TypingTimeout, 3*time.Second)
	def(&c.LastSeenTTL, 7*24*time.Hour)
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	defInt(&c.MaxRoomsPerSession, 100)
	defInt(&c.MaxSessionsPerUser, 100)
	defInt(&c.MaxDataBytes, 2048)
	defInt(&c.MaxIDBytes, 128)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Engine holds this node's view of every session in the cluster and runs the
// lifecycle of the sessions it owns.
type Engine struct {
	cfg    Config
	clock  Clock
	log    *zap.Logger
	origin crdt.Origin

	mu       sync.Mutex
	closed   bool
	hlc      *crdt.Clock
	data     *crdt.Map
	mergeBuf []crdt.Change     // Merge's changes, reused (under mu)
	owned    map[string]*owned // sessions this node owns (writes)
	sessions map[string]*sess  // index: every session seen in data
	rooms    map[string]*room
	users    map[string]*user
	lastSeen map[string]lastSeenRecord
	failed   map[crdt.Origin]Timer    // owners declared dead: their sessions are stale until the timer drops them
	retired  map[crdt.Origin]struct{} // owners that restarted: their entries never come back
	sweeper  Timer
	stats    counters
}

// New returns an Engine. cfg is copied.
func New(cfg Config) *Engine {
	cfg.setDefaults()
	e := &Engine{
		cfg:      cfg,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		origin:   crdt.Origin{Node: cfg.Node, Incarnation: cfg.Incarnation},
		hlc:      crdt.NewClock(cfg.Clock.Now, 0),
		data:     crdt.NewMap(),
		owned:    make(map[string]*owned),
		sessions: make(map[string]*sess),
		rooms:    make(map[string]*room),
		users:    make(map[string]*user),
		lastSeen: make(map[string]lastSeenRecord),
		failed:   make(map[crdt.Origin]Timer),
		retired:  make(map[crdt.Origin]struct{}),
	}
	e.mu.Lock()
	e.scheduleSweepLocked()
	e.mu.Unlock()
	return e
}

// Origin is the writer identity of this node's entries.
func (e *Engine) Origin() crdt.Origin { return e.origin }

// Stop stops every timer. Sessions are left as they are (a graceful
// shutdown disconnects them first so they go stale inside grace).
func (e *Engine) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	for _, o := range e.owned {
		o.stopTimers()
	}
	if e.sweeper != nil {
		e.sweeper.Stop()
	}
	for _, t := range e.failed {
		t.Stop()
	}
	for _, r := range e.rooms {
		for s := range r.subs {
			s.closed = true
		}
		r.subs = nil
	}
}

// set writes key=value as this node and indexes the change.
func (e *Engine) setLocked(key string, value []byte) bool {
	c, ok := e.data.Set(e.origin, e.hlc.Now(), key, value)
	if !ok {
		return false
	}
	e.afterWriteLocked(c)
	return true
}

// deleteLocked writes a tombstone carrying why the entry went away.
func (e *Engine) deleteLocked(key string, gone goneRecord) bool {
	c, ok := e.data.Delete(e.origin, e.hlc.Now(), key, mustJSON(gone))
	if !ok {
		return false
	}
	e.afterWriteLocked(c)
	return true
}

func (e *Engine) afterWriteLocked(c crdt.Change) {
	e.applyLocked(c)
	if e.cfg.OnLocalWrite != nil {
		e.cfg.OnLocalWrite(c.Cur)
	}
}

func (e *Engine) nowMS() int64 { return e.clock.Now().UnixMilli() }

func (e *Engine) roomConfigLocked(room string) RoomConfig {
	rc := RoomConfig{Grace: e.cfg.Grace, TypingTimeout: e.cfg.TypingTimeout}
	if e.cfg.Rooms == nil {
		return rc
	}
	o, ok := e.cfg.Rooms.RoomConfig(room)
	if !ok {
		return rc
	}
	if o.Grace > 0 {
		rc.Grace = o.Grace
	}
	if o.TypingTimeout > 0 {
		rc.TypingTimeout = o.TypingTimeout
	}
	rc.MaxMembers = o.MaxMembers
	return rc
}
