package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics adds the cluster's series to reg: members by state,
// replication counters, and per-peer replication lag (own entries not yet
// sent to that peer), all read at scrape time.
func (c *Cluster) RegisterMetrics(reg prometheus.Registerer) {
	counter := func(name, help string, v func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v()) }))
	}
	counter("presenced_cluster_deltas_sent_total", "Deltas of this node's sessions sent to peers.", c.stats.DeltasSent.Load)
	counter("presenced_cluster_deltas_sent_reliable_total", "Deltas of this node's sessions sent over TCP (too big for a burst of UDP packets).", c.stats.DeltasSentReliable.Load)
	counter("presenced_cluster_deltas_received_total", "Deltas received from peers.", c.stats.DeltasReceived.Load)
	counter("presenced_cluster_resyncs_total", "Origins re-read from their owner after it came back from being declared dead.", c.stats.Resyncs.Load)
	counter("presenced_cluster_census_repairs_total", "Origins re-read from their owner because the live entries held here stayed different from the owner's count.", c.stats.CensusRepairs.Load)
	counter("presenced_cluster_resync_pruned_total", "Entries removed by a resync because their owner no longer held them.", c.stats.ResyncPruned.Load)
	counter("presenced_cluster_gaps_seen_total", "Deltas received ahead of what this node held of their origin (merged, and the gap looked at again after 100 ms).", c.stats.GapsSeen.Load)
	counter("presenced_cluster_gaps_repaired_total", "Gaps (from sequence numbers or heads) repaired by a pull.", c.stats.GapsRepaired.Load)
	counter("presenced_cluster_pulls_total", "Pull requests sent.", c.stats.Pulls.Load)
	counter("presenced_cluster_digest_mismatches_total", "Origins found behind a peer's digest in anti-entropy.", c.stats.DigestMismatches.Load)
	counter("presenced_cluster_eof_hints_total", "Peers treated as failed because their held connection dropped, before gossip declared them dead.", c.stats.EOFHints.Load)
	counter("presenced_cluster_gossip_deaths_overruled_total", "Peers gossip declared dead that were kept because their held connection was still ticking (failed only if it falls silent or gossip does not take the death back within 10 s).", c.stats.GossipDeathsOverruled.Load)
	counter("presenced_cluster_tombstones_collected_total", "Tombstones dropped once every live member held them.", c.stats.TombstonesCollected.Load)
	counter("presenced_cluster_inbox_dropped_total", "Messages dropped because the inbox was full (repaired later).", c.stats.Dropped.Load)
	reg.MustRegister(clusterCollector{c})
}

var (
	membersDesc = prometheus.NewDesc("presenced_cluster_members", "Cluster members as this node sees them: alive (suspects included) and failed (declared dead or gone, sessions stale or dropped).", []string{"state"}, nil)
	lagDesc     = prometheus.NewDesc("presenced_cluster_replication_lag_entries",
		"This node's changes not yet sent to a peer (sequence numbers behind).", []string{"peer"}, nil)
)

type clusterCollector struct{ c *Cluster }

func (cc clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- membersDesc
	ch <- lagDesc
}

func (cc clusterCollector) Collect(ch chan<- prometheus.Metric) {
	c := cc.c
	// memberlist's Members() hands out nodes it mutates in place, so the
	// counts come from our own view: alive members (suspects included, as
	// memberlist counts them) and members declared dead or gone.
	states := map[string]int{"alive": c.ml.NumMembers(), "failed": 0}
	c.mu.Lock()
	states["failed"] = len(c.failed)
	type lag struct {
		peer string
		sent uint64
	}
	lags := make([]lag, 0, len(c.peers))
	for name, p := range c.peers {
		lags = append(lags, lag{name, p.sentSeq.Load()})
	}
	c.mu.Unlock()
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), st)
	}
	own := c.cfg.Replica.Digest()[c.self]
	for _, l := range lags {
		behind := float64(0)
		if own > l.sent {
			behind = float64(own - l.sent)
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, behind, l.peer)
	}
}
