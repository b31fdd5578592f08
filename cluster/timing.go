package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Timing presets for MetaConfig.Timing.
const (
	TimingLAN   = "lan"
	TimingLocal = "local"
)

// raftConfigTiming is the part of raft.Config a timing preset decides.
type raftConfigTiming struct {
	heartbeat, election, leaderLease, commit time.Duration
	snapshotInterval                         time.Duration
	snapshotThreshold, trailingLogs          uint64
}

// Snapshot settings are shared by both presets. Metadata writes are rare and
// small (at most ~4.5 KiB each), so:
//   - snapshotThreshold: snapshot after 4,096 new entries, which caps the log
//     replayed at start to a few MiB (raft's default is 8,192);
//   - snapshotInterval: how often raft checks the threshold (it staggers
//     between 1x and 2x); a check is cheap, 60 s keeps the log short;
//   - trailingLogs: entries kept after a snapshot, so a follower up to 4,096
//     writes behind catches up from the log instead of a snapshot transfer.
const (
	snapshotThreshold = 4096
	snapshotInterval  = 60 * time.Second
	trailingLogs      = 4096
)

var timings = map[string]raftConfigTiming{
	// lan: raft's defaults, which are tuned for a LAN (Consul runs them
	// times a multiplier). A lone node elects itself 1-2 s after start.
	TimingLAN: {
		heartbeat:   time.Second,
		election:    time.Second,
		leaderLease: 500 * time.Millisecond,
		commit:      50 * time.Millisecond,
	},
	// local: loopback only (tests, dev). Elections in ~100-200 ms, followers
	// hear of new commits within ~5 ms.
	TimingLocal: {
		heartbeat:   100 * time.Millisecond,
		election:    100 * time.Millisecond,
		leaderLease: 50 * time.Millisecond,
		commit:      5 * time.Millisecond,
	},
}

func raftTiming(name string) (raftConfigTiming, error) {
	if name == "" {
		name = TimingLAN
	}
	t, ok := timings[name]
	if !ok {
		return raftConfigTiming{}, fmt.Errorf("%w: timing %q (want %q or %q)", ErrInvalid, name, TimingLAN, TimingLocal)
	}
	t.snapshotInterval, t.snapshotThreshold, t.trailingLogs = snapshotInterval, snapshotThreshold, trailingLogs
	return t, nil
}

func (t raftConfigTiming) apply(c *raft.Config) {
	c.HeartbeatTimeout = t.heartbeat
	c.ElectionTimeout = t.election
	c.LeaderLeaseTimeout = t.leaderLease
	c.CommitTimeout = t.commit
	c.SnapshotInterval = t.snapshotInterval
	c.SnapshotThreshold = t.snapshotThreshold
	c.TrailingLogs = t.trailingLogs
}
