package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// MetaConfig configures OpenMeta. The zero value of each optional field is
// documented; OpenMeta copies the struct and never writes to the caller's.
type MetaConfig struct {
	DataDir   string      // required; raft.db (logs, stable store) and snapshots/ live under DataDir/raft
	NodeID    string      // required; raft server id, unique across the cluster for all time
	RaftAddr  string      // TCP bind and advertise address, e.g. 127.0.0.1:7071; "" uses an in-memory transport (tests)
	Bootstrap bool        // a lone node bootstraps a one-voter cluster if it has no raft state
	Logger    *zap.Logger // nil discards logs
	Timing    string      // "lan" (default) or "local" (fast timings for tests and dev)
}

// MetaStats is a point-in-time view of the raft node, for /metrics and
// debugging. The indexes are raft's: AppliedIndex counts entries handed to
// the FSM (including raft's own no-op and configuration entries).
type MetaStats struct {
	State        string // Follower, Candidate, Leader, Shutdown
	Leader       string // leader's server id, "" when unknown
	LeaderAddr   string // leader's raft address, "" when unknown
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	Rooms        int
}

// Meta is the room-metadata store: writes go through raft, reads come from
// the local FSM. Safe for concurrent use. See DESIGN.md.
type Meta struct {
	logger *zap.Logger
	raft   *raft.Raft
	fsm    *metaFSM
	bolt   *raftboltdb.BoltStore

	// startIndex is the index of the last command in the log when the
	// store opened; Ready needs the FSM to have applied it.
	startIndex uint64

	addr      raft.ServerAddress // this node's raft address (bound port if :0 was asked)
	id        raft.ServerID
	snaps     raft.SnapshotStore
	conf      *raft.Config
	trans     raft.Transport
	forward   atomic.Pointer[Forwarder]
	closed    atomic.Bool
	closeCh   chan struct{}
	closeOnce sync.Once
	closeErr  error
}

const (
	snapshotsRetained = 2
	// logCacheSize keeps the most recent entries in memory, for replicating
	// to followers without reading bolt.
	logCacheSize = 512
	// boltOpenTimeout: see openRaftDB.
	boltOpenTimeout = time.Second
	// tcpMaxPool and tcpTimeout are raft's TCP transport settings
	// (connections kept per peer, I/O deadline), Consul's values.
	tcpMaxPool = 3
	tcpTimeout = 10 * time.Second
	// defaultApplyTimeout bounds a write whose ctx has no deadline.
	defaultApplyTimeout = 10 * time.Second
	// readyPoll is how often WaitReady rechecks.
	readyPoll = 5 * time.Millisecond
)

// OpenMeta opens (or creates) the store under cfg.DataDir and starts raft.
// The store is usable for reads at once; use WaitReady before relying on
// writes or on reads reflecting everything in the local log.
func OpenMeta(cfg MetaConfig) (*Meta, error) {
	if cfg.DataDir == "" || cfg.NodeID == "" {
		return nil, fmt.Errorf("%w: MetaConfig needs DataDir and NodeID", ErrInvalid)
	}
	timing, err := raftTiming(cfg.Timing)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	logger = logger.Named("meta")
	hlog := newZapHCLog(logger).Named("raft")

	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: create raft dir: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, hlog.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	bolt, err := openRaftDB(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft.db: %w", err)
	}
	s := &Meta{logger: logger, fsm: newMetaFSM(logger), bolt: bolt, closeCh: make(chan struct{})}
	if err := s.start(cfg, timing, hlog, snaps); err != nil {
		bolt.Close()
		return nil, err
	}
	return s, nil
}

// openRaftDB opens raft's log and stable store. Every raft write is one
// bbolt transaction (two fsyncs); that is nearly the whole cost of a Put.
// bbolt holds an exclusive file lock: with Timeout, a second process on the
// same DataDir fails after boltOpenTimeout instead of hanging. Other bbolt
// options stay at their defaults (NoFreelistSync would write less per
// commit, but showed no measurable gain here and bbolt v1.3.5 is old).
func openRaftDB(path string) (*raftboltdb.BoltStore, error) {
	return raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
	})
}

// start builds the transport and raft; on error the caller closes bolt.
func (s *Meta) start(cfg MetaConfig, timing raftConfigTiming, hlog hclog.Logger, snaps raft.SnapshotStore) error {
	logs, err := raft.NewLogCache(logCacheSize, s.bolt)
	if err != nil {
		return fmt.Errorf("cluster: log cache: %w", err)
	}
	var trans raft.Transport
	if cfg.RaftAddr == "" {
		_, trans = raft.NewInmemTransport("")
	} else {
		nt, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, nil, tcpMaxPool, tcpTimeout, hlog.Named("transport"))
		if err != nil {
			return fmt.Errorf("cluster: raft transport on %s: %w", cfg.RaftAddr, err)
		}
		trans = nt
	}
	closeTrans := func() {
		if c, ok := trans.(raft.WithClose); ok {
			c.Close()
		}
	}

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.NodeID)
	conf.Logger = hlog
	conf.LogLevel = "" // Logger decides; DefaultConfig's "DEBUG" only applies to its own logger
	conf.ShutdownOnRemove = false
	timing.apply(conf)

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(s.bolt, s.bolt, snaps)
		if err != nil {
			closeTrans()
			return fmt.Errorf("cluster: check raft state: %w", err)
		}
		if !has {
			s.logger.Info("bootstrapping single-node raft cluster", zap.String("id", cfg.NodeID), zap.String("addr", string(trans.LocalAddr())))
			err := raft.BootstrapCluster(conf, s.bolt, s.bolt, snaps, trans, raft.Configuration{Servers: []raft.Server{
				{Suffrage: raft.Voter, ID: conf.LocalID, Address: trans.LocalAddr()},
			}})
			if err != nil {
				closeTrans()
				return fmt.Errorf("cluster: bootstrap raft: %w", err)
			}
		}
	}
	if s.startIndex, err = lastCommandIndex(s.bolt); err != nil {
		closeTrans()
		return err
	}

	r, err := raft.NewRaft(conf, s.fsm, logs, s.bolt, snaps, trans)
	if err != nil {
		closeTrans()
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	s.raft = r
	s.addr, s.id, s.snaps, s.conf, s.trans = trans.LocalAddr(), conf.LocalID, snaps, conf, trans
	return nil
}

// lastCommandIndex scans the log backwards for the last command entry (raft
// also logs no-ops and configurations, which never reach the FSM). Zero
// means there is none after the snapshot, which NewRaft restores before
// returning.
func lastCommandIndex(logs raft.LogStore) (uint64, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("cluster: read raft log: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("cluster: read raft log: %w", err)
	}
	for i := last; i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("cluster: read raft log %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	return 0, nil
}

// Put creates or replaces a room's metadata and returns the stored value,
// with Version set to the write's raft index.
//
// requestID makes the write idempotent: if a command with the same id was
// applied within the last 10,000 writes, Put returns that first result and
// changes nothing (a different command under a reused id gets ErrInvalid).
// "" picks a random id (no retry protection).
//
// Without a ctx deadline Put waits at most 10 s.
//
// Errors: ErrInvalid (nothing written), ErrNotLeader (not started),
// ErrClosed, a ctx error (not started), ErrUnknownOutcome (raft lost
// leadership, ctx ended, or the store closed after the command was handed to
// raft: it may or may not have committed; retrying with the same requestID
// is safe and returns the first outcome if there was one).
func (s *Meta) Put(ctx context.Context, m RoomMeta, requestID string) (RoomMeta, error) {
	if err := m.Validate(); err != nil {
		return RoomMeta{}, err
	}
	m.Version = 0
	m.UpdatedAt = time.Now().UTC()
	res, err := s.apply(ctx, command{Op: opPut, RequestID: requestID, Meta: &m})
	if err != nil {
		return RoomMeta{}, err
	}
	return res.Meta, nil
}

// Delete removes a room's metadata: ErrNotFound if there is none. Idempotency
// and the other errors are as for Put; a retried successful delete returns
// nil, not ErrNotFound.
func (s *Meta) Delete(ctx context.Context, room, requestID string) error {
	if len(room) == 0 || len(room) > MaxRoomIDBytes {
		return fmt.Errorf("%w: room id must be 1..%d bytes, got %d", ErrInvalid, MaxRoomIDBytes, len(room))
	}
	_, err := s.apply(ctx, command{Op: opDelete, RequestID: requestID, Room: room})
	return err
}

// GetConsistent is a linearizable read of a room's metadata: the read goes
// through the raft log (forwarded to the leader like a write), so it sees
// every write acknowledged before it began. Get answers from the local FSM
// and may lag the leader by a few milliseconds. ErrNotFound if there is none.
func (s *Meta) GetConsistent(ctx context.Context, room string) (RoomMeta, error) {
	if len(room) == 0 || len(room) > MaxRoomIDBytes {
		return RoomMeta{}, fmt.Errorf("%w: room id must be 1..%d bytes, got %d", ErrInvalid, MaxRoomIDBytes, len(room))
	}
	res, err := s.apply(ctx, command{Op: opRead, Room: room})
	if err != nil {
		return RoomMeta{}, err
	}
	return res.Meta, nil
}

// apply proposes cmd to raft on this node and waits for the FSM's result.
// It is the one write path: the forwarding layer (next issue) will call it
// on the leader with a command received from a follower.
func (s *Meta) apply(ctx context.Context, cmd command) (result, error) {
	return s.applyVia(ctx, cmd, true)
}

// applyVia is apply; forward false never ships the command to the leader
// (it came from a follower already).
func (s *Meta) applyVia(ctx context.Context, cmd command, forward bool) (result, error) {
	if s.closed.Load() {
		return result{}, ErrClosed
	}
	if len(cmd.RequestID) > maxRequestIDBytes {
		return result{}, fmt.Errorf("%w: request id longer than %d bytes", ErrInvalid, maxRequestIDBytes)
	}
	if cmd.RequestID == "" {
		cmd.RequestID = newRequestID()
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if s.raft.State() != raft.Leader {
		if f := s.forward.Load(); f != nil && forward {
			// Writes are accepted on any node: a follower ships the command,
			// which is self-contained and idempotent, to the leader.
			return (*f)(ctx, cmd)
		}
		return result{}, ErrNotLeader
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return result{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultApplyTimeout)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	enqueue := time.Until(dl) // raft's timeout bounds only the wait to enqueue
	if enqueue <= 0 {
		return result{}, context.DeadlineExceeded
	}
	f := s.raft.Apply(data, enqueue)
	if err := s.waitFuture(ctx, f); err != nil {
		return result{}, s.applyError(ctx, err)
	}
	res, ok := f.Response().(result)
	if !ok {
		return result{}, fmt.Errorf("cluster: unexpected FSM response %T", f.Response())
	}
	if err := res.err(); err != nil {
		return result{}, err
	}
	return res, nil
}

// Reasons waitFuture stopped waiting before raft answered.
var (
	errCtxDone  = errors.New("context done")
	errShutdown = errors.New("store closed")
)

// waitFuture waits for f, ctx or Close. raft futures have no channel, so
// this costs one goroutine per write. raft answers every future it accepts
// except in two cases (hashicorp/raft#498, still open): a committed batch
// queued for the FSM when raft shuts down, and some quorum-loss paths. So
// the caller stops waiting on ctx or Close, and in those cases the goroutine
// stays parked on f until the process exits.
func (s *Meta) waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errCtxDone
	case <-s.closeCh:
		select {
		case err := <-done:
			return err
		default:
			return errShutdown
		}
	}
}

// applyError maps raft's errors onto the package's sentinels.
func (s *Meta) applyError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, errCtxDone):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Both are answered before the entry is appended: nothing happened.
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		// The entry may be in the log and commit under the next leader.
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, errShutdown):
		// Closed with the command in flight: it may have committed (and
		// would then be applied when the store reopens).
		return fmt.Errorf("%w: %w", ErrClosed, ErrUnknownOutcome)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("cluster: raft busy, write not started: %w", context.DeadlineExceeded)
	default:
		return fmt.Errorf("cluster: raft apply: %w", err)
	}
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// Get returns a room's metadata from the local FSM (possibly behind the
// leader by the replication lag; never blocks on raft).
func (s *Meta) Get(room string) (RoomMeta, bool) { return s.fsm.get(room) }

// List returns all rooms' metadata from the local FSM, sorted by room id.
func (s *Meta) List() []RoomMeta { return s.fsm.list() }

// OnChange registers fn to run after each applied change: a put (deleted
// false, m is the stored value) or a delete (deleted true; only m.Room and
// m.Version, the delete's index, are set). A snapshot restore (a follower
// far behind, next issue) announces its difference the same way.
//
// fn runs on raft's FSM goroutine, in log order, after the change is
// visible to Get. It must not block and must not write to the store (the
// write would wait for the goroutine fn is holding), but it may read.
// Earlier changes are not replayed: register, then WaitReady, then List,
// and drop events whose Version is not above the one already seen.
func (s *Meta) OnChange(fn func(m RoomMeta, deleted bool)) { s.fsm.addListener(fn) }

// Ready reports whether a leader is known and the FSM has applied every
// command that was in the local log when the store opened.
func (s *Meta) Ready() bool {
	if s.closed.Load() {
		return false
	}
	if _, id := s.raft.LeaderWithID(); id == "" {
		return false
	}
	return s.fsm.appliedIndex() >= s.startIndex
}

// WaitReady blocks until Ready, ctx ends (its error is returned) or the store
// is closed (ErrClosed).
func (s *Meta) WaitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for !s.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closeCh:
			return ErrClosed
		case <-t.C:
		}
	}
	return nil
}

// Stats returns raft's view of this node.
func (s *Meta) Stats() MetaStats {
	addr, id := s.raft.LeaderWithID()
	return MetaStats{
		State:        s.raft.State().String(),
		Leader:       string(id),
		LeaderAddr:   string(addr),
		CommitIndex:  s.raft.CommitIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
		LastIndex:    s.raft.LastIndex(),
		Rooms:        s.fsm.count(),
	}
}

// Close shuts raft down (waiting for its goroutines and closing the
// transport), then closes raft.db. Idempotent; later calls return the
// first call's error. Writes in flight fail with ErrClosed (wrapped with
// ErrUnknownOutcome when raft already had them); Get and List keep
// answering from the last applied state.
func (s *Meta) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closeCh)
		// raft first: it writes to bolt until its goroutines stop.
		errRaft := s.raft.Shutdown().Error()
		// raft does not close its transport: drop our pooled connections (so
		// peers' handlers see EOF) and stop listening.
		if nt, ok := s.trans.(*raft.NetworkTransport); ok {
			nt.CloseStreams()
		}
		if c, ok := s.trans.(raft.WithClose); ok {
			_ = c.Close()
		}
		errBolt := s.bolt.Close()
		s.closeErr = errors.Join(errRaft, errBolt)
	})
	return s.closeErr
}
