package main

import (
	"fmt"
	"sort"
	"strings"
)

// markdown renders the results: one table of targets, then the details.
func (r *results) markdown(c config) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## presence-bench report (%s, %.0f s)\n\n", r.Started.Format("2006-01-02 15:04"), r.Seconds)
	p("%d nodes on loopback, %d idle sessions connected (%d failed) over %d rooms, heartbeat every %v, phases of %v; the load generator runs on the same 2 cores.\n\n",
		r.Nodes, r.Sessions, r.Failed, c.rooms, c.heartbeat, c.phase)
	if r.Lost > 0 {
		p("**%d idle sessions were lost** (their connections ended) before the measured phases: %v.\n\n", r.Lost, r.LostWhy)
	}
	if r.LostAll > r.Lost {
		p("**%d sessions were lost** (their connections ended) by the end of the churn phase: %v.\n\n", r.LostAll, r.LostAllWhy)
	}
	if r.FirstErr != "" {
		p("First connection error: `%s`\n\n", r.FirstErr)
	}
	if r.GoBench != "" {
		p("### Go benchmarks of the hot paths\n\n%s\n### Load generator\n\n", r.GoBench)
	}
	p("| what | target | measured | vs target | anchor (vs anchor) |\n|---|---|---|---|---|\n")
	names := make([]string, 0, len(r.PerNode))
	for k := range r.PerNode {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		u := r.PerNode[n]
		p("| %s: sessions held, server RSS per session | 19.5k at ≤ 12 KB | %d sessions, %.1f KB per session (RSS %.0f MiB; %.1f KB added per session) | %s | Centrifugo 45–57 KB per connection (%.2f×) |\n",
			n, u.Sessions, u.RSSPerSessKB, u.RSSMiB, u.DeltaPerSessKB, verdict(u.Sessions >= 19500 && u.RSSPerSessKB <= 12, fmt.Sprintf("%.2f× the RSS target", u.RSSPerSessKB/12)), u.RSSPerSessKB/45)
	}
	for _, n := range names {
		u := r.PerNode[n]
		p("| %s: idle CPU | | %.2f cores for %d sessions (%.1f ms/s per 1k) | | |\n", n, u.IdleCPU, u.Sessions, u.IdleCPU*1000/float64(max(1, u.Sessions))*1000)
	}
	p("| connect rate (WebSocket + hello + enter) | | %.0f sessions/s | | |\n", r.ConnectRate)
	p("| heartbeat round trip (idle sessions' pings) | | %s | | |\n", r.Heartbeat)
	if x := r.Propagation; x != nil {
		p("| cross-node propagation at %.0f changes/s (update at %s → event at subscribers on the other nodes) | p50 ≤ 1.5 ms, p99 ≤ 10 ms | %s | %s | Centrifugo + Redis median 1.9–2.3 ms (p50 %.2f×) |\n",
			x.Rate, "node 1", x.Latency, verdict(x.Latency.P50 <= 1.5 && x.Latency.P99 <= 10 && x.Rate >= 0.95*c.propRate, fmt.Sprintf("p50 %.2f×, p99 %.2f× the target", x.Latency.P50/1.5, x.Latency.P99/10)), x.Latency.P50/1.9)
	}
	if x := r.FanOut; x != nil {
		p("| fan-out: %.0f updates/s to %d subscribers of one room on %d nodes | ≥ 150k deliveries/s, p99 ≤ 100 ms | %.0f deliveries/s, latency %s, %d subscribers dropped | %s | Centrifugo ~12.5k/s per CPU, 25k/s on 2 (%.1f×) |\n",
			x.UpdatesPerSec, x.Subscribers, r.Nodes, x.PerSec, x.Latency, x.Dropped, verdict(x.PerSec >= 150000 && x.Latency.P99 <= 100, fmt.Sprintf("%.2f× the rate target, p99 %.2f× the bound", x.PerSec/150000, x.Latency.P99/100)), x.PerSec/25000)
	}
	if x := r.Churn; x != nil {
		ok := len(x.PairsPerNode) > 0
		worst := 1e18
		for _, v := range x.PairsPerNode {
			ok = ok && v >= 2000
			worst = min(worst, v)
		}
		why := ""
		if len(x.ErrorsWhy) > 0 {
			why = " " + fmtCounts(x.ErrorsWhy)
		}
		late := ""
		if x.LateErrors > 0 {
			late = fmt.Sprintf("; %d ops of pairs in flight at the end failed: %s", x.LateErrors, fmtCounts(x.LateErrorsWhy))
		}
		p("| enter+leave churn per node (%.0f pairs/s asked of each, with %.0f updates/s and %.0f typing/s in all) | ≥ 2k pairs/s per node | %s pairs/s (%d errors%s; %d ops not sent, the worker's queue full%s) | %s | Centrifugo ~167/s per pod (%.1f×) |\n",
			x.Asked, x.Updates, x.Typing, fmtRates(x.PairsPerNode), x.Errors, why, x.Dropped, late, verdict(ok, fmt.Sprintf("%.2f× the target on the slowest node", worst/2000)), worst/167)
	}
	if x := r.Kill; x != nil {
		worst := 0.0
		ok := true
		for _, v := range x.AllStaleMS {
			worst = max(worst, v)
			ok = ok && v >= 0
		}
		p("| kill -9 of %s holding %d sessions (%d of them in a room) → every one shown stale on every survivor | p99 ≤ 1.5 s | all stale after %s ms; per session %s | %s | Centrifugo: listed 40–53 s, no leave (%.3f×) |\n",
			x.Node, x.Sessions, x.Listed, fmtRates(x.AllStaleMS), x.PerSession, verdict(ok && x.PerSession.P99 <= 1500, fmt.Sprintf("p99 %.2f× the bound", x.PerSession.P99/1500)), worst/40000)
	}
	if s := r.Seed; s != nil {
		p("\n### Beside seed 001's design (Redis TTL keys + room sets + pipelined GET)\n\n")
		if s.Skipped != "" {
			p("Skipped: %s\n", s.Skipped)
		} else {
			p("| | seed 001 on redis-server (Redis side only) | presenced |\n|---|---|---|\n")
			p("| heartbeats/s, 64 clients | %.0f (SETEX) | %.0f (WebSocket ping) · %.0f (HTTP `POST /api/presence`, keep-alive) |\n", s.SeedHeartbeats, s.WSHeartbeats, s.HTTPHeartbeats)
			p("| batch of 100 users | %s (pipelined GET) | %s (`GET /v1/users?ids=` over HTTP) |\n", s.SeedBatch, s.PresencedBatch)
			p("\nAccuracy: 300 users with 2 tabs each in one room; then 100 users close one tab (the seed: leave beacon + offline beacon), 100 users' tabs both crash, 100 are untouched. Truth: 200 users here.\n\n")
			p("| after | seed: ghosts shown online | seed: gone users left in the room set | seed: present users not shown online | presenced: ghosts shown online | presenced: gone users listed as stale (inside grace) | presenced: present users not shown online |\n|---|---|---|---|---|---|---|\n")
			for _, a := range s.Accuracy {
				p("| %s | %d | %d | %d | %d | %d | %d |\n", a.After, a.SeedGhosts, a.SeedSetGhosts, a.SeedLost, a.PresGhosts, a.PresStaleListed, a.PresLost)
			}
		}
	}
	for _, n := range r.Notes {
		p("\n- %s", n)
	}
	p("\n")
	return b.String()
}

func verdict(ok bool, detail string) string {
	if ok {
		return "met"
	}
	return "**missed**: " + detail
}
