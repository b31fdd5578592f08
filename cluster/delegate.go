package cluster

import "github.com/hashicorp/memberlist"

// delegate adapts memberlist's Delegate to the Cluster: each method forwards
// to a named handler. memberlist calls these from its own goroutines; none of
// them may block.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte                  { return d.c.nodeMeta(limit) }
func (d delegate) NotifyMsg(b []byte)                         { d.c.receive(b) }
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return d.c.localState() }
func (d delegate) MergeRemoteState(b []byte, join bool)       { d.c.mergeRemoteState(b) }

// events adapts memberlist's EventDelegate.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.peerJoined(n) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.peerLeft(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.peerJoined(n) }
