package cluster

import (
	"encoding/json"
	"sort"
	"time"

	"go.uber.org/zap"
)

// raftManagerInterval: how often the raft group is reconciled with gossip
// membership.
const raftManagerInterval = 300 * time.Millisecond

// promoteAfter: a non-voter is promoted once it has been in the group this
// long and is alive (it has had time to receive the log).
const promoteAfter = 2 * time.Second

// raftManager keeps the raft group in line with gossip membership, in the
// manner of Consul's autopilot: bootstrap once BootstrapExpect servers are
// visible; on the leader, add new nodes as non-voters, promote them to keep
// 3 or 5 voters, and remove nodes dead for DeadServerTimeout.
func (c *Cluster) raftManager() { c.every(raftManagerInterval, c.reconcileRaft) }

type raftPeer struct {
	id, addr string
	hasState bool
}

// alivePeers lists the alive peers that advertise a raft address.
func (c *Cluster) alivePeers() []raftPeer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []raftPeer
	for _, p := range c.peers {
		if p.meta.Raft == "" || c.supersededLocked(p.origin) {
			continue
		}
		out = append(out, raftPeer{id: p.meta.Node, addr: p.meta.Raft, hasState: p.meta.RaftState})
	}
	return out
}

func (c *Cluster) reconcileRaft() {
	m := c.cfg.Meta
	if !m.HasState() {
		c.maybeBootstrap()
		return
	}
	c.advertiseRaftState()
	if !m.IsLeader() {
		return
	}
	servers, err := m.Servers()
	if err != nil {
		return
	}
	alive := map[string]raftPeer{m.ID(): {id: m.ID(), addr: m.Addr()}}
	for _, p := range c.alivePeers() {
		alive[p.id] = p
	}
	inGroup := map[string]ServerInfo{}
	voters := 0
	for _, s := range servers {
		inGroup[s.ID] = s
		if s.Voter {
			voters++
		}
	}
	now := time.Now()
	// Remove servers dead for longer than the timeout (never ourselves).
	c.mu.Lock()
	lost := make(map[string]time.Time, len(c.lost))
	for k, v := range c.lost {
		lost[k] = v
	}
	c.mu.Unlock()
	for _, s := range servers {
		if _, ok := alive[s.ID]; ok || s.ID == m.ID() {
			continue
		}
		if since, ok := lost[s.ID]; ok && now.Sub(since) > c.cfg.DeadServerTimeout {
			c.log.Info("removing dead server from raft", zap.String("server", s.ID))
			if err := m.RemoveServer(s.ID); err == nil && s.Voter {
				voters--
			}
		}
	}
	// Add new nodes as non-voters.
	for id, p := range alive {
		if _, ok := inGroup[id]; ok {
			continue
		}
		c.log.Info("adding server to raft as non-voter", zap.String("server", id), zap.String("addr", p.addr))
		if err := m.AddNonvoter(id, p.addr); err == nil {
			c.mu.Lock()
			c.added[id] = now
			c.mu.Unlock()
		}
	}
	// Promote alive non-voters up to 3 voters (5 from 5 servers): odd sizes
	// tolerate the most failures per voter.
	target := 1
	switch {
	case len(alive) >= 5:
		target = 5
	case len(alive) >= 3:
		target = 3
	}
	var candidates []ServerInfo
	for _, s := range servers {
		if _, ok := alive[s.ID]; ok && !s.Voter {
			candidates = append(candidates, s)
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].ID < candidates[j].ID })
	for _, s := range candidates {
		if voters >= target {
			break
		}
		c.mu.Lock()
		added, known := c.added[s.ID]
		c.mu.Unlock()
		if known && now.Sub(added) < promoteAfter {
			continue
		}
		c.log.Info("promoting server to voter", zap.String("server", s.ID))
		if err := m.Promote(s.ID, s.Addr); err == nil {
			voters++
		}
	}
}

// maybeBootstrap bootstraps a new group once BootstrapExpect servers (this
// one included) are visible and none of them is in a group already. Every
// server of the new cluster computes the same list, so they all bootstrap
// with the identical configuration.
func (c *Cluster) maybeBootstrap() {
	expect := c.cfg.BootstrapExpect
	if expect <= 1 {
		return // a lone node bootstraps at open; a joiner waits to be added
	}
	servers := map[string]string{c.cfg.Meta.ID(): c.cfg.Meta.Addr()}
	for _, p := range c.alivePeers() {
		if p.hasState {
			return // a group exists: its leader will add us
		}
		servers[p.id] = p.addr
	}
	if len(servers) != expect {
		if len(servers) > expect {
			c.log.Error("more servers visible than --bootstrap-expect: not bootstrapping (start the extra nodes with --join instead)",
				zap.Int("visible", len(servers)), zap.Int("expect", expect))
		}
		return
	}
	c.log.Info("bootstrapping raft", zap.Int("servers", len(servers)))
	if err := c.cfg.Meta.BootstrapServers(servers); err != nil {
		c.log.Warn("raft bootstrap", zap.Error(err))
	}
}

// advertiseRaftState sets "in a raft group" in our node meta once, so that
// joining servers never bootstrap a second group.
func (c *Cluster) advertiseRaftState() {
	c.metaMu.Lock()
	var m meta
	_ = json.Unmarshal(c.meta, &m)
	if m.RaftState {
		c.metaMu.Unlock()
		return
	}
	m.RaftState = true
	c.meta, _ = json.Marshal(m)
	c.metaMu.Unlock()
	_ = c.ml.UpdateNode(time.Second)
}
