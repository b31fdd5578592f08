package gateway

import (
	"net/http"
	"sort"

	"github.com/presenced/presenced/session"
)

// ClusterNode is one node of the cluster as this node sees it.
type ClusterNode struct {
	Name        string `json:"name"`
	State       string `json:"state"` // alive | suspect | dead
	Self        bool   `json:"self,omitempty"`
	Incarnation uint64 `json:"incarnation,omitempty"` // boot epoch
	HTTP        string `json:"http,omitempty"`        // its HTTP address, as it advertises it
	Gossip      string `json:"gossip,omitempty"`
	Raft        string `json:"raft,omitempty"`
	RaftRole    string `json:"raft_role,omitempty"` // leader | voter | nonvoter; "" if not in the raft configuration
	Since       int64  `json:"since,omitempty"`     // dead: unix ms it was declared failed or left
	// Filled by the gateway from the session engine.
	Sessions      int                   `json:"sessions"`       // sessions this node owns, as replicated here
	SessionStates map[session.State]int `json:"session_states"` // the same, by state
}

// RaftInfo is the raft group of room metadata as this node sees it.
type RaftInfo struct {
	Leader       string `json:"leader"` // node name, "" when unknown
	State        string `json:"state"`  // this node's raft state: Leader, Follower, Candidate, Shutdown
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// ClusterInfo is what the cluster tells the gateway for GET /v1/cluster.
type ClusterInfo struct {
	Nodes []ClusterNode
	Raft  RaftInfo
}

// clusterBody is GET /v1/cluster.
type clusterBody struct {
	Node       string                `json:"node"` // the node answering
	Time       int64                 `json:"time"`
	Nodes      []ClusterNode         `json:"nodes"`
	Raft       RaftInfo              `json:"raft"`
	Sessions   int                   `json:"sessions"` // every session known here, cluster-wide
	Users      int                   `json:"users"`
	Rooms      []session.RoomSummary `json:"rooms"` // busiest first, at most maxClusterRooms
	RoomsTotal int                   `json:"rooms_total"`
}

const maxClusterRooms = 100

// clusterView answers GET /v1/cluster: the nodes (alive, suspect, dead)
// with the sessions each owns, the raft leader, and the rooms with members.
// Read-only, but it shows the cluster's internal addresses and totals and
// walks every session: with tokens on it needs caps.admin, and it lists
// only the rooms the token may read.
func (s *Server) clusterView(w http.ResponseWriter, r *http.Request) {
	id, ok := s.identity(w, r)
	if !ok {
		return
	}
	if !s.auth.Open() && !id.Caps.Admin {
		writeError(w, http.StatusForbidden, CodeForbidden, "the cluster view needs a token with caps.admin")
		return
	}
	var info ClusterInfo
	if s.cfg.Cluster != nil {
		info = s.cfg.Cluster()
	}
	if len(info.Nodes) == 0 {
		info.Nodes = []ClusterNode{{Name: s.engine.Origin().Node, State: "alive", Self: true}}
	}
	byNode := s.engine.SessionsByNode()
	seen := make(map[string]bool, len(info.Nodes))
	for i := range info.Nodes {
		n := &info.Nodes[i]
		seen[n.Name] = true
		n.SessionStates = byNode[n.Name]
		if n.SessionStates == nil {
			n.SessionStates = map[session.State]int{}
		}
		for _, k := range n.SessionStates {
			n.Sessions += k
		}
	}
	// Sessions of a node this one no longer lists (its entries are kept
	// until they leave): shown so that every session is counted somewhere.
	var extra []string
	for name := range byNode {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		n := ClusterNode{Name: name, State: "dead", SessionStates: byNode[name]}
		for _, k := range n.SessionStates {
			n.Sessions += k
		}
		info.Nodes = append(info.Nodes, n)
	}
	rooms, total := s.engine.RoomSummaries(maxClusterRooms, func(room string) bool { return id.Caps.CanSubscribe(room) })
	st := s.engine.Stats()
	writeJSON(w, http.StatusOK, clusterBody{
		Node: s.cfg.Node, Time: nowMS(), Nodes: info.Nodes, Raft: info.Raft,
		Sessions: st.Sessions, Users: st.Users, Rooms: rooms, RoomsTotal: total,
	})
}
