package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/gateway"
	"github.com/presenced/presenced/session"
)

// roomSettings lets the session engine read room overrides from the
// metadata store without importing the cluster.
type roomSettings struct{ meta *cluster.Meta }

func (r roomSettings) RoomConfig(room string) (session.RoomConfig, bool) {
	m, ok := r.meta.Get(room)
	if !ok {
		return session.RoomConfig{}, false
	}
	return session.RoomConfig{
		Grace:         time.Duration(m.GraceMS) * time.Millisecond,
		MaxMembers:    m.MaxMembers,
		TypingTimeout: time.Duration(m.TypingTimeoutMS) * time.Millisecond,
	}, true
}

// metaStore serves the gateway's metadata endpoints from the raft store.
type metaStore struct{ meta *cluster.Meta }

func (s metaStore) PutJSON(ctx context.Context, room string, body []byte, requestID string) ([]byte, error) {
	var m cluster.RoomMeta
	if len(body) > 0 {
		dec := json.NewDecoder(bytesReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%w: %v", gateway.ErrMetaInvalid, err)
		}
	}
	if m.Room != "" && m.Room != room {
		return nil, fmt.Errorf("%w: body names room %q, path %q", gateway.ErrMetaInvalid, m.Room, room)
	}
	m.Room = room
	out, err := s.meta.Put(ctx, m, requestID)
	if err != nil {
		return nil, mapMetaErr(err)
	}
	return json.Marshal(out)
}

func (s metaStore) GetJSON(room string) ([]byte, bool) {
	m, ok := s.meta.Get(room)
	if !ok {
		return nil, false
	}
	b, _ := json.Marshal(m)
	return b, true
}

func (s metaStore) GetJSONConsistent(ctx context.Context, room string) ([]byte, error) {
	m, err := s.meta.GetConsistent(ctx, room)
	if err != nil {
		return nil, mapMetaErr(err)
	}
	return json.Marshal(m)
}

func (s metaStore) DeleteRoom(ctx context.Context, room, requestID string) error {
	return mapMetaErr(s.meta.Delete(ctx, room, requestID))
}

func (s metaStore) ListJSON() []byte {
	b, _ := json.Marshal(map[string]any{"rooms": s.meta.List()})
	return b
}

func mapMetaErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrInvalid):
		return fmt.Errorf("%w: %v", gateway.ErrMetaInvalid, err)
	case errors.Is(err, cluster.ErrNotFound):
		return fmt.Errorf("%w: %v", gateway.ErrMetaNotFound, err)
	}
	return fmt.Errorf("%w: %v", gateway.ErrMetaUnavailable, err)
}

// registerRaftMetrics exports the raft metadata store's state.
func registerRaftMetrics(reg prometheus.Registerer, meta *cluster.Meta) {
	gauge := func(name, help string, v func(cluster.MetaStats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return v(meta.Stats()) }))
	}
	gauge("presenced_raft_leader", "1 if this node is the raft leader.", func(s cluster.MetaStats) float64 {
		if s.State == "Leader" {
			return 1
		}
		return 0
	})
	gauge("presenced_raft_commit_index", "Raft commit index.", func(s cluster.MetaStats) float64 { return float64(s.CommitIndex) })
	gauge("presenced_raft_applied_index", "Raft applied index.", func(s cluster.MetaStats) float64 { return float64(s.AppliedIndex) })
	gauge("presenced_room_metadata", "Rooms with metadata.", func(s cluster.MetaStats) float64 { return float64(s.Rooms) })
}

// clusterInfo reports the cluster for the gateway's GET /v1/cluster and
// the dashboard: memberlist's nodes as this node sees them, and raft.
func clusterInfo(members *cluster.Cluster, meta *cluster.Meta) func() gateway.ClusterInfo {
	return func() gateway.ClusterInfo {
		st := meta.Stats()
		roles := map[string]string{}
		if servers, err := meta.Servers(); err == nil {
			for _, s := range servers {
				roles[s.ID] = "nonvoter"
				if s.Voter {
					roles[s.ID] = "voter"
				}
			}
		}
		if st.Leader != "" {
			roles[st.Leader] = "leader"
		}
		var nodes []gateway.ClusterNode
		for _, n := range members.Nodes() {
			cn := gateway.ClusterNode{
				Name: n.Name, State: n.State, Self: n.Self, Incarnation: n.Incarnation,
				HTTP: n.HTTP, Gossip: n.Gossip, Raft: n.Raft, RaftRole: roles[n.Name],
			}
			if !n.Since.IsZero() {
				cn.Since = n.Since.UnixMilli()
			}
			nodes = append(nodes, cn)
		}
		return gateway.ClusterInfo{Nodes: nodes, Raft: gateway.RaftInfo{
			Leader: st.Leader, State: st.State, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		}}
	}
}
