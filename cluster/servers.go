package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// The methods in this file manage the raft group of a multi-node cluster:
// bootstrap, membership changes and write forwarding. The Cluster's raft
// manager drives them from gossip membership (raftmgr.go).

// Forwarder ships a command that a follower received to the leader and
// returns the leader's result.
type Forwarder func(ctx context.Context, cmd command) (result, error)

// SetForwarder makes writes on a follower go to the leader through f.
func (s *Meta) SetForwarder(f Forwarder) { s.forward.Store(&f) }

// Addr is this node's raft address.
func (s *Meta) Addr() string { return string(s.addr) }

// ID is this node's raft server id.
func (s *Meta) ID() string { return string(s.id) }

// HasState reports whether this node has raft state (it was bootstrapped or
// joined a group before).
func (s *Meta) HasState() bool {
	if s.raft.LastIndex() > 0 {
		return true
	}
	has, err := raft.HasExistingState(s.bolt, s.bolt, s.snaps)
	return err == nil && has
}

// BootstrapServers bootstraps the group with exactly these servers, all
// voters. Every server of a new cluster must call it with the identical list.
func (s *Meta) BootstrapServers(servers map[string]string) error {
	cfg := raft.Configuration{}
	for id, addr := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil && err != raft.ErrCantBootstrap {
		return fmt.Errorf("cluster: bootstrap raft: %w", err)
	}
	return nil
}

// IsLeader reports whether this node is the raft leader.
func (s *Meta) IsLeader() bool { return s.raft.State() == raft.Leader }

// LeaderID is the current leader's server id, "" if unknown.
func (s *Meta) LeaderID() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// ServerInfo is one member of the raft configuration.
type ServerInfo struct {
	ID, Addr string
	Voter    bool
}

// Servers lists the raft configuration.
func (s *Meta) Servers() ([]ServerInfo, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []ServerInfo
	for _, sv := range f.Configuration().Servers {
		out = append(out, ServerInfo{ID: string(sv.ID), Addr: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
	}
	return out, nil
}

const membershipTimeout = 5 * time.Second

// AddNonvoter adds a server that receives the log but does not vote (a new
// node catches up this way before it can affect quorum).
func (s *Meta) AddNonvoter(id, addr string) error {
	return s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout).Error()
}

// Promote makes a server a voter.
func (s *Meta) Promote(id, addr string) error {
	return s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout).Error()
}

// RemoveServer removes a server from the group.
func (s *Meta) RemoveServer(id string) error {
	return s.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout).Error()
}

// TransferLeadership hands leadership to another voter (graceful shutdown).
func (s *Meta) TransferLeadership() error {
	if !s.IsLeader() {
		return nil
	}
	if servers, err := s.Servers(); err == nil {
		voters := 0
		for _, sv := range servers {
			if sv.Voter {
				voters++
			}
		}
		if voters < 2 {
			return nil // nobody to hand it to
		}
	}
	return s.raft.LeadershipTransfer().Error()
}

// applyForwarded runs a command that a follower forwarded to this leader.
func (s *Meta) applyForwarded(ctx context.Context, cmd command) (result, error) {
	return s.applyVia(ctx, cmd, false) // never forward twice
}
