//go:build chaos_broken

package cluster

import "github.com/presenced/presenced/crdt"

// A deliberately broken build (go build -tags chaos_broken), for showing that
// presence-chaos can fail (make chaos-broken): failure handling is disabled —
// a node declared dead, or replaced by a restart, keeps its sessions listed
// as they were on every survivor. Never ship it.
const brokenBuild = true

func wrapReplica(r Replica) Replica { return noFailureHandling{r} }

type noFailureHandling struct{ Replica }

func (noFailureHandling) OriginFailed(crdt.Origin)  {}
func (noFailureHandling) OriginRetired(crdt.Origin) {}
