package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/crdt"
	"github.com/presenced/presenced/gateway"
	"github.com/presenced/presenced/session"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// Run starts a node and serves until ctx is cancelled, then shuts down in
// order. If ready is not nil it receives the HTTP address once serving.
func Run(ctx context.Context, cfg Config, log *zap.Logger, ready chan<- string) error {
	auth, err := gateway.NewVerifier(gateway.AuthConfig{
		HS256Secret: cfg.AuthHS256Secret, PublicKeyFile: cfg.AuthPublicKeyFile, Leeway: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	if auth.Open() {
		if !isLoopback(cfg.Listen) && !cfg.AllowOpen {
			return fmt.Errorf("no auth key configured (open dev mode) and --listen %s is not loopback: "+
				"set --auth-hs256-secret or --auth-public-key-file, or pass --allow-open", cfg.Listen)
		}
		log.Warn("open dev mode: no auth key configured, clients name themselves; do not expose this node")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	dataDir, _ := filepath.Abs(cfg.DataDir)

	// 1. Room metadata (raft): a lone node bootstraps itself.
	// A node bootstraps raft alone at open when it is meant to be a
	// single-node cluster; with --bootstrap-expect N > 1 the cluster's raft
	// manager bootstraps once N servers are visible; a --join node without
	// it is added to the existing group by the leader.
	join := cfg.Join.Items()
	timing := cluster.TimingLAN
	if cfg.GossipProfile == cluster.ProfileLocal {
		timing = cluster.TimingLocal
	}
	meta, err := cluster.OpenMeta(cluster.MetaConfig{
		DataDir: cfg.DataDir, NodeID: cfg.NodeName, RaftAddr: cfg.RaftAddr,
		Bootstrap: cfg.BootstrapExpect == 1 || (cfg.BootstrapExpect == 0 && len(join) == 0),
		Logger:    log.Named("raft"), Timing: timing,
	})
	if err != nil {
		return fmt.Errorf("room metadata store: %w", err)
	}
	// 2. The session engine; its writes wake the cluster's senders.
	incarnation, err := nextIncarnation(cfg.DataDir)
	if err != nil {
		_ = meta.Close()
		return err
	}
	var clusterRef atomic.Pointer[cluster.Cluster]
	engine := session.New(session.Config{
		Incarnation: incarnation,
		OnLocalWrite: func(crdt.Entry) {
			if c := clusterRef.Load(); c != nil {
				c.Notify()
			}
		},
		Node: cfg.NodeName, IdleAfter: cfg.IdleAfter, AwayAfter: cfg.AwayAfter, Grace: cfg.SessionGrace,
		HeartbeatTTL: cfg.HeartbeatTTL, TypingTimeout: cfg.TypingTimeout, LastSeenTTL: cfg.LastSeenTTL,
		MaxRoomsPerSession: cfg.MaxRoomsPerSession, MaxDataBytes: cfg.MaxDataBytes, MaxIDBytes: cfg.MaxIDBytes,
		MaxSessionsPerUser: cfg.MaxSessionsPerUser, Rooms: roomSettings{meta}, Logger: log.Named("session"),
	})
	// The HTTP listener opens before gossip so that node meta carries its
	// real address (peers hold a connection to it: its EOF is a failure hint).
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		engine.Stop()
		_ = meta.Close()
		return fmt.Errorf("listen: %w", err)
	}
	// 3. Membership and replication of sessions (memberlist).
	members, err := cluster.New(cluster.Config{
		Replica: engine, GossipAddr: cfg.GossipAddr, Advertise: cfg.GossipAdvertise, Profile: cfg.GossipProfile,
		Key: cfg.GossipKey, Label: cfg.ClusterLabel, HTTPAddr: ln.Addr().String(), Meta: meta, BootstrapExpect: cfg.BootstrapExpect,
		Join: join, Logger: log.Named("cluster"),
	})
	if err != nil {
		ln.Close()
		engine.Stop()
		_ = meta.Close()
		return err
	}
	clusterRef.Store(members)
	if err := members.Join(join); err != nil {
		// Not fatal: the peers may start later; memberlist keeps the node up
		// and /readyz stays 503 until it has joined and caught up.
		log.Warn("join failed; retry by restarting with --join, or let peers join this node", zap.Error(err))
	}
	// 4. The gateway, with the cluster's and raft's series on its registry.
	reg := prometheus.NewRegistry()
	members.RegisterMetrics(reg)
	registerRaftMetrics(reg, meta)
	gw := gateway.New(gateway.Config{
		Registry: reg,
		Node:     cfg.NodeName, HeartbeatInterval: cfg.HeartbeatInterval, HeartbeatTTL: cfg.HeartbeatTTL,
		MaxFrameBytes: cfg.MaxFrameBytes, RateLimit: cfg.RateLimit, SendQueue: cfg.SendQueue,
		SendQueueBytes: cfg.SendQueueBytes, MaxSubscriptions: cfg.MaxSubscriptions,
		Ready: func() bool { return meta.Ready() && members.Ready() }, Meta: metaStore{meta}, Logger: log.Named("gateway"),
		DebugEndpoints: cfg.DebugEndpoints,
		Grace:          cfg.SessionGrace, IdleAfter: cfg.IdleAfter, AwayAfter: cfg.AwayAfter, TypingTimeout: cfg.TypingTimeout,
		MaxDataBytes: cfg.MaxDataBytes, MaxIDBytes: cfg.MaxIDBytes, MaxRoomsPerSession: cfg.MaxRoomsPerSession,
		Cluster: clusterInfo(members, meta),
	}, engine, auth)

	srv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("presenced serving", zap.String("version", version), zap.String("node", cfg.NodeName),
		zap.String("listen", ln.Addr().String()), zap.String("raft", cfg.RaftAddr), zap.String("gossip", members.Addr()), zap.String("data_dir", dataDir),
		zap.Bool("open_mode", auth.Open()))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = err
		}
	}

	// Shutdown, in order:
	// 1. Drain: WebSocket clients are told to reconnect (1012 + retry hint)
	//    and their sessions go stale, so they stay present inside grace.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gw.Drain(shutdownCtx)
	// 2. Stop HTTP: in-flight requests finish, SSE streams end.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	// 3. Hand raft leadership to another voter, then leave the cluster: peers mark this node's sessions stale at once
	//    (their clients are reconnecting elsewhere inside grace), then stop
	//    gossip, the gateway's janitor and the engine's timers.
	if err := meta.TransferLeadership(); err != nil {
		log.Warn("transferring raft leadership", zap.Error(err))
	}
	if err := members.Leave(2 * time.Second); err != nil {
		log.Warn("leaving the cluster", zap.Error(err))
	}
	_ = members.Shutdown()
	gw.Close()
	engine.Stop()
	// 4. Close raft last: metadata reads were needed until now.
	if err := meta.Close(); err != nil {
		log.Warn("closing raft", zap.Error(err))
	}
	log.Info("presenced stopped")
	return runErr
}

// nextIncarnation returns this boot's incarnation: the wall clock in ms, but
// always above the previous boot's (kept in the data dir), so a clock stepped
// back between restarts never makes a new boot look older than the last.
func nextIncarnation(dataDir string) (uint64, error) {
	path := filepath.Join(dataDir, "incarnation")
	next := uint64(time.Now().UnixMilli())
	if b, err := os.ReadFile(path); err == nil {
		if prev, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && prev >= next {
			next = prev + 1
		}
	}
	if err := os.WriteFile(path, []byte(strconv.FormatUint(next, 10)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("data dir: record incarnation: %w", err)
	}
	return next, nil
}

// isLoopback reports whether a listen address binds only loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
