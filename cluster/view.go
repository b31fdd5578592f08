package cluster

import (
	"sort"
	"time"
)

// Node states in NodeView.
const (
	NodeAlive   = "alive"   // a gossip member, nothing amiss
	NodeSuspect = "suspect" // still a gossip member, but its held connection dropped: its sessions are stale until gossip confirms it dead or the hint is withdrawn
	NodeDead    = "dead"    // declared dead by gossip, or it left
)

// NodeView is one node as this node sees it, for dashboards.
type NodeView struct {
	Name        string    // stable node name
	State       string    // NodeAlive, NodeSuspect or NodeDead
	Self        bool      // this node
	Incarnation uint64    // boot epoch (0 when dead: not kept)
	HTTP        string    // advertised HTTP address ("" when dead)
	Gossip      string    // gossip address ("" when dead)
	Raft        string    // advertised raft address ("" when dead)
	Since       time.Time // dead: when it failed or left
}

// Nodes lists this node, its peers and the nodes that failed or left (until
// they come back), sorted by name. It reads only this node's own view: no
// message is sent.
func (c *Cluster) Nodes() []NodeView {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []NodeView{{
		Name: c.self.Node, State: NodeAlive, Self: true, Incarnation: c.self.Incarnation,
		HTTP: c.cfg.HTTPAddr, Gossip: c.addr, Raft: c.cfg.RaftAddr,
	}}
	listed := map[string]bool{c.self.Node: true}
	for _, p := range c.peers {
		if c.supersededLocked(p.origin) || listed[p.origin.Node] {
			continue
		}
		state := NodeAlive
		if _, failed := c.failed[p.origin]; failed {
			state = NodeSuspect
		}
		v := NodeView{Name: p.origin.Node, State: state, Incarnation: p.origin.Incarnation, HTTP: p.meta.HTTP, Raft: p.meta.Raft}
		if n := p.node.Load(); n != nil { // a copy: memberlist mutates its own
			v.Gossip = n.Address()
		}
		out = append(out, v)
		listed[p.origin.Node] = true
	}
	for name, at := range c.lost {
		if !listed[name] {
			out = append(out, NodeView{Name: name, State: NodeDead, Since: at})
			listed[name] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
