//go:build !chaos_broken

package cluster

// See broken_on.go.
const brokenBuild = false

func wrapReplica(r Replica) Replica { return r }
