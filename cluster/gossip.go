package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip profiles: memberlist settings for a kind of network. Each value
// says why it differs from memberlist's own preset.
const (
	ProfileLAN   = "lan"   // one data centre (default)
	ProfileWAN   = "wan"   // regions joined over the internet
	ProfileLocal = "local" // one machine: development and tests
)

// gossipConfig returns the memberlist config of a profile.
//
// Failure detection: a dead node is declared after about
// ProbeInterval (to be probed) + ProbeTimeout + the suspicion timeout
// SuspicionMult × max(1, log10 N) × ProbeInterval, which memberlist shortens
// as other members confirm the suspicion.
func gossipConfig(profile string) (*memberlist.Config, error) {
	c, err := profileConfig(profile)
	if err != nil {
		return nil, err
	}
	// memberlist LZW-compresses every stream by default: measured here, it
	// took more CPU than everything else in a 200k-session join (compress
	// 6.5 s + decompress 4.7 s of ~10 s). Deltas are small binary records;
	// send them as they are.
	c.EnableCompression = false
	return c, nil
}

func profileConfig(profile string) (*memberlist.Config, error) {
	switch profile {
	case "", ProfileLAN:
		c := memberlist.DefaultLANConfig()
		// memberlist's LAN preset (1 s probes, ×4 suspicion) declares a killed
		// node dead after ~5.6 s; presence wants stale sessions within ~2 s.
		c.ProbeInterval = 400 * time.Millisecond
		c.ProbeTimeout = 200 * time.Millisecond
		c.SuspicionMult = 3
		// A missed confirmation must not stretch detection to tens of seconds.
		c.SuspicionMaxTimeoutMult = 2
		// Push/pull carries only small per-origin digests (not state), so it
		// can run often: it is what repairs a lost delta that no later delta
		// or head reveals.
		c.PushPullInterval = 10 * time.Second
		return c, nil
	case ProfileWAN:
		c := memberlist.DefaultWANConfig()
		// WAN keeps memberlist's long timeouts (3 s probes, ×6 suspicion):
		// false deaths across regions cost more than slow detection.
		c.PushPullInterval = 30 * time.Second
		return c, nil
	case ProfileLocal:
		c := memberlist.DefaultLocalConfig()
		// Loopback: RTT is ~30 µs, so probe fast and suspect briefly; a
		// killed node is dead in well under 1.5 s.
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 50 * time.Millisecond
		c.SuspicionMult = 3
		c.SuspicionMaxTimeoutMult = 2
		c.GossipInterval = 50 * time.Millisecond
		c.PushPullInterval = 2 * time.Second
		c.TCPTimeout = 2 * time.Second
		return c, nil
	}
	return nil, fmt.Errorf("cluster: unknown gossip profile %q (want lan, wan or local)", profile)
}
