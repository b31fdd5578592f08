package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/presenced/presenced/session"
)

// MetaStore is what the gateway needs of the room metadata store (kept by
// the cluster through Raft). Values are JSON documents; the store validates
// them and reports errors wrapping ErrMetaInvalid, ErrMetaNotFound or
// ErrMetaUnavailable.
type MetaStore interface {
	PutJSON(ctx context.Context, room string, body []byte, requestID string) ([]byte, error)
	GetJSON(room string) ([]byte, bool)
	// GetJSONConsistent is a linearizable read (through the raft leader).
	GetJSONConsistent(ctx context.Context, room string) ([]byte, error)
	DeleteRoom(ctx context.Context, room, requestID string) error
	ListJSON() []byte
}

// Errors a MetaStore wraps so the gateway can answer 400, 404 or 503.
var (
	ErrMetaInvalid     = errors.New("invalid room metadata")
	ErrMetaNotFound    = errors.New("room metadata not found")
	ErrMetaUnavailable = errors.New("room metadata unavailable")
)

// Config configures a Server. Zero values take the defaults shown.
type Config struct {
	Node              string
	HeartbeatInterval time.Duration // 25s: clients ping at least this often; silent twice as long → close 4000
	HeartbeatTTL      time.Duration // 60s: told to HTTP clients (the engine enforces it)
	MaxFrameBytes     int           // 65536
	RateLimit         float64       // 50 messages/s per connection
	SendQueue         int           // 512 messages queued per connection before it is dropped as slow
	SendQueueBytes    int           // 8 MiB queued per connection before it is dropped as slow (one larger message is let through alone)
	MaxSubscriptions  int           // 100 room subscriptions per connection
	HelloTimeout      time.Duration // 10s to send hello after connecting
	WriteTimeout      time.Duration // 10s for one frame to be written
	MaxBatchIDs       int           // 100 ids per user batch query
	Ready             func() bool   // readiness beyond the engine (e.g. raft leader known); nil = always
	blockingReads     bool          // tests: every connection keeps a reading goroutine, as without epoll
	bulkFanout        int           // tests; 0: the constant of coalesce.go
	coalesceWindow    time.Duration // tests; 0: the constant of coalesce.go
	DebugEndpoints    bool          // serve GET /internal/v1/debug/sessions/{session} (no auth: for test clusters)
	Meta              MetaStore     // nil: metadata endpoints answer 503
	Logger            *zap.Logger
	Registry          *prometheus.Registry // nil: a new private registry
	// Engine settings told to clients in the welcome message.
	Grace, IdleAfter, AwayAfter, TypingTimeout   time.Duration
	MaxDataBytes, MaxIDBytes, MaxRoomsPerSession int

	// Cluster reports the cluster's nodes and raft state for GET /v1/cluster
	// and the dashboard (cmd/presenced implements it from the cluster
	// package, which the gateway does not import). nil: this node alone.
	Cluster func() ClusterInfo
}

func (c *Config) setDefaults() {
	d := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	d(&c.HeartbeatInterval, 25*time.Second)
	d(&c.HeartbeatTTL, 60*time.Second)
	d(&c.HelloTimeout, 10*time.Second)
	d(&c.WriteTimeout, 10*time.Second)
	d(&c.Grace, 15*time.Second)
	d(&c.IdleAfter, 60*time.Second)
	d(&c.AwayAfter, 5*time.Minute)
	d(&c.TypingTimeout, 3*time.Second)
	d(&c.coalesceWindow, coalesceWindow)
	n := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	n(&c.MaxFrameBytes, 64<<10)
	n(&c.SendQueue, 512)
	n(&c.SendQueueBytes, 8<<20)
	n(&c.MaxSubscriptions, 100)
	n(&c.MaxBatchIDs, 100)
	n(&c.MaxDataBytes, 2048)
	n(&c.MaxIDBytes, 128)
	n(&c.MaxRoomsPerSession, 100)
	n(&c.bulkFanout, bulkFanout)
	if c.RateLimit <= 0 {
		c.RateLimit = 50
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Node == "" {
		c.Node = "local"
	}
}

// Server is the edge of a node: WebSocket, HTTP /v1, the seed-compatible
// /api routes, SSE, health and metrics. It knows nothing of the cluster.
type Server struct {
	cfg     Config
	engine  *session.Engine
	auth    *Verifier
	log     *zap.Logger
	metrics *metrics
	mux     *http.ServeMux
	poller  *poller // nil: each connection has a reading goroutine
	readers pool    // with the poller
	writers pool

	lateMu    sync.Mutex // guards late and lateArmed (coalesce.go)
	late      []*conn
	lateArmed bool
	lateTimer *time.Timer

	mu       sync.Mutex
	conns    map[*conn]struct{}
	attached map[string]*conn // session → the connection it is attached to on this node
	draining bool
	drained  chan struct{} // closed by Drain: SSE streams end
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New builds a Server over an engine. cfg is copied.
func New(cfg Config, engine *session.Engine, auth *Verifier) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg: cfg, engine: engine, auth: auth, log: cfg.Logger,
		conns: make(map[*conn]struct{}), attached: make(map[string]*conn), stop: make(chan struct{}), drained: make(chan struct{}),
	}
	s.writers.fn = (*conn).flush
	s.writers.ch = s.startWorkers(poolWorkers(), s.writers.fn)
	if !cfg.blockingReads {
		if p, err := newPoller(s.dispatchRead); err == nil {
			s.poller = p
			s.readers.fn = (*conn).readReady
			s.readers.ch = s.startWorkers(poolWorkers(), s.readers.fn)
		} else {
			s.log.Info("idle WebSocket connections keep a reading goroutine", zap.Error(err))
		}
	}
	s.metrics = newMetrics(cfg.Registry, engine, s)
	s.mux = s.routes()
	s.wg.Add(1)
	go s.janitor()
	return s
}

// Handler is the node's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Ready reports whether the node should receive traffic.
func (s *Server) Ready() bool {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		return false
	}
	return s.cfg.Ready == nil || s.cfg.Ready()
}

// Drain tells every WebSocket client to reconnect elsewhere (close 1012 with
// a jittered retry hint) and marks their sessions stale, so they stay
// present inside grace and resume on another node without leave or enter.
// It returns when every connection is closed or ctx is done.
func (s *Server) Drain(ctx context.Context) {
	s.mu.Lock()
	if !s.draining {
		close(s.drained)
	}
	s.draining = true
	conns := s.connsLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.closeRestart(ctx)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.ws.CloseNow()
		}
	}
}

// Close stops background work. Call after the HTTP server has shut down.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	s.lateMu.Lock()
	if s.lateTimer != nil {
		s.lateTimer.Stop() // one already running flushes its batch itself
	}
	s.lateMu.Unlock()
	// The poller first, so that nothing is handed to a reader after the
	// workers end; then the sockets still open (Close without Drain), so that
	// no reader waits on a partial frame for good.
	if s.poller != nil {
		s.poller.close()
	}
	s.mu.Lock()
	left := s.connsLocked()
	s.mu.Unlock()
	for _, c := range left {
		c.ws.CloseNow()
	}
	s.wg.Wait()
}

// connsLocked is the connections open now, to act on without s.mu (which
// the caller holds).
func (s *Server) connsLocked() []*conn {
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// janitor closes connections that went silent for two heartbeat intervals;
// read deadlines are not used for this because a read timeout closes the
// WebSocket anyway and costs a timer per connection.
func (s *Server) janitor() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.HeartbeatInterval / 5)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			limit := now.Add(-2 * s.cfg.HeartbeatInterval).UnixNano()
			s.mu.Lock()
			for c := range s.conns {
				if c.lastRead.Load() < limit {
					c.fail(CloseHeartbeatTimeout, "heartbeat timeout")
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *Server) addConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.attached[c.sid] == c {
		delete(s.attached, c.sid)
	}
	s.mu.Unlock()
}

// attach records c as the connection of its session. A connection the
// session was attached to before (the client resumed before the server
// noticed the old socket died) is closed with 4103 and can no longer act.
func (s *Server) attach(c *conn) {
	s.mu.Lock()
	old := s.attached[c.sid]
	s.attached[c.sid] = c
	s.mu.Unlock()
	if old != nil && old != c {
		old.superseded.Store(true)
		old.fail(CloseSessionEnded, "session resumed on another connection")
	}
}
