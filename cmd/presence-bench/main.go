// Command presence-bench is presenced's load generator. It starts a local
// cluster (or uses --bin's binary on loopback), holds N idle WebSocket
// sessions across K rooms from several worker processes and source
// addresses (the machine allows 20,000 open files per process), and
// measures, phase by phase: connect rate; server RSS and CPU per session
// (from /proc of the node processes); heartbeat round trips; cross-node
// propagation at a given change rate; fan-out deliveries to one room's
// subscribers on every node; enter+leave churn with typing and data
// updates; kill -9 of a node until its sessions show stale on every
// survivor; and, beside presenced, seed 001's Redis-TTL design on the same
// workload. It prints progress and a table, and writes JSON and markdown.
//
//	presence-bench --bin bin/presenced --sessions 58500 --md report.md --json report.json
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bin          string
	nodes        int
	sessions     int
	perWorker    int
	rooms        int
	heartbeat    time.Duration
	phase        time.Duration
	propRate     float64
	fanSubs      int
	fanRate      float64
	churn        float64
	updates      float64
	typing       float64
	seedBaseline bool
	keep         bool
	workerProcs  int
	nodeProcs    int
	workerNice   int
	kill         bool
	jsonOut      string
	mdOut        string
	nodeArgs     string
	goBench      string
	phases       string
}

func (c config) on(phase string) bool {
	for _, p := range strings.Split(c.phases, ",") {
		if strings.TrimSpace(p) == phase {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := runWorker(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.StringVar(&c.bin, "bin", "bin/presenced", "presenced binary to start")
	flag.IntVar(&c.nodes, "nodes", 3, "nodes in the cluster")
	flag.IntVar(&c.sessions, "sessions", 58500, "idle WebSocket sessions in all (spread evenly over the nodes)")
	flag.IntVar(&c.perWorker, "per-worker", 19500, "sessions per worker process (≤ ~19.9k: 20,000 open files per process)")
	flag.IntVar(&c.rooms, "rooms", 100, "rooms the idle sessions are spread over (≤ 100)")
	flag.DurationVar(&c.heartbeat, "heartbeat", 25*time.Second, "heartbeat (ping) interval of each idle session")
	flag.DurationVar(&c.phase, "phase", 15*time.Second, "how long each measured phase runs")
	flag.Float64Var(&c.propRate, "prop-rate", 2000, "changes per second at one node during the propagation phase")
	// 400 subscribers per node fit beside 19.5k sessions under a node's
	// 20,000 open files.
	flag.IntVar(&c.fanSubs, "fanout-subs", 1200, "subscribers of the fan-out room (spread over the nodes)")
	flag.Float64Var(&c.fanRate, "fanout-rate", 140, "updates per second asked in the fan-out room (140 × 1,200 subscribers offers 168k deliveries/s: the writers, waiting for each answer, fall a little short of what they ask)")
	flag.Float64Var(&c.churn, "churn", 2500, "enter+leave pairs per second asked of each node during the churn phase (above the 2k target, so that the rate reached is what the nodes sustain, not the ask)")
	flag.Float64Var(&c.updates, "updates", 200, "data updates per second per node during the churn phase")
	flag.Float64Var(&c.typing, "typing", 100, "typing indicators per second per node during the churn phase")
	flag.BoolVar(&c.seedBaseline, "seed-baseline", true, "also run seed 001's Redis-TTL design (needs redis-server) and compare")
	flag.BoolVar(&c.kill, "kill", true, "end with kill -9 of the last node, timed until its sessions are stale everywhere")
	flag.StringVar(&c.jsonOut, "json", "", "write the results as JSON here")
	flag.StringVar(&c.mdOut, "md", "", "write the report as markdown here")
	flag.StringVar(&c.nodeArgs, "node-args", "", "extra flags for every node (space-separated)")
	flag.StringVar(&c.goBench, "go-bench", "", "output of `go test -bench` to put in the report as a table")
	flag.BoolVar(&c.keep, "keep", false, "keep the nodes' data directories and logs (the path is printed)")
	flag.IntVar(&c.workerNice, "worker-nice", 0, "nice value of the worker processes (e.g. 10: the nodes get the shared cores first, as if the clients ran elsewhere); 0 in make bench")
	flag.IntVar(&c.nodeProcs, "node-procs", 0, "GOMAXPROCS of each node (0: Go's default, one per core)")
	flag.IntVar(&c.workerProcs, "worker-procs", 1, "GOMAXPROCS of the worker processes (0: Go's default, one per core): with one each, the idle sessions' clients do not spin up threads that contend with the nodes for the shared cores")
	flag.StringVar(&c.phases, "phases", "seed,prop,fanout,churn,kill", "phases to run after connecting and the idle measurement")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := run(ctx, c)
	if res != nil {
		out := res.markdown(c)
		fmt.Println()
		fmt.Print(out)
		if c.mdOut != "" {
			_ = os.WriteFile(c.mdOut, []byte(out), 0o644)
		}
		if c.jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			_ = os.WriteFile(c.jsonOut, b, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "presence-bench:", err)
		os.Exit(1)
	}
}

// results is everything measured.
type results struct {
	Started     time.Time            `json:"started"`
	Seconds     float64              `json:"seconds"`
	Nodes       int                  `json:"nodes"`
	Sessions    int                  `json:"sessions_connected"`
	Failed      int                  `json:"sessions_failed"`
	FirstErr    string               `json:"first_error,omitempty"`
	ConnectRate float64              `json:"connect_per_s"`
	Lost        int64                `json:"sessions_lost_by_idle_end"` // connections that ended before the phases
	LostWhy     map[string]int64     `json:"lost_why,omitempty"`        // their close codes and reasons
	LostAll     int64                `json:"sessions_lost_before_kill"` // connections that ended before the kill phase, the idle phase's included
	LostAllWhy  map[string]int64     `json:"lost_before_kill_why,omitempty"`
	PerNode     map[string]nodeUsage `json:"per_node"`
	Heartbeat   dist                 `json:"heartbeat_rtt"`
	Propagation *propResult          `json:"propagation,omitempty"`
	FanOut      *fanResult           `json:"fanout,omitempty"`
	Churn       *churnResult         `json:"churn,omitempty"`
	Kill        *killResult          `json:"kill,omitempty"`
	Seed        *seedResult          `json:"seed_baseline,omitempty"`
	Notes       []string             `json:"notes,omitempty"`
	GoBench     string               `json:"-"`
	GoBenchRaw  map[string]goBench   `json:"go_benchmarks,omitempty"`
}

type nodeUsage struct {
	Sessions       int     `json:"sessions"`
	BaseRSSMiB     float64 `json:"base_rss_mib"`
	RSSMiB         float64 `json:"rss_mib"`
	RSSPerSessKB   float64 `json:"rss_per_session_kb"`
	DeltaPerSessKB float64 `json:"rss_added_per_session_kb"`
	IdleCPU        float64 `json:"idle_cpu_cores"`
}

type churnResult struct {
	Asked        float64            `json:"asked_pairs_per_s_per_node"`
	PairsPerNode map[string]float64 `json:"enter_leave_pairs_per_s"`
	Updates      float64            `json:"updates_per_s"`
	Typing       float64            `json:"typing_per_s"`
	Errors       int64              `json:"errors"`               // answered with an error, or not in time
	ErrorsWhy    map[string]int64   `json:"errors_why,omitempty"` // op and error code (or timeout) → ops
	Dropped      int64              `json:"not_sent"`             // ops not sent: a worker's queue was full
	// The ops of pairs in flight when the phase ended that failed (a
	// failed enter leaves its session in no room).
	LateErrors    int64            `json:"late_pair_errors"`
	LateErrorsWhy map[string]int64 `json:"late_pair_errors_why,omitempty"`
}

func run(ctx context.Context, c config) (*results, error) {
	start := time.Now()
	progress := func(format string, args ...any) {
		fmt.Printf("%s bench %5.0fs  %s\n", time.Now().Format("15:04:05"), time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	res := &results{Started: start, Nodes: c.nodes, PerNode: map[string]nodeUsage{}}
	if c.goBench != "" {
		got, err := parseGoBench(c.goBench)
		if err != nil {
			return nil, err
		}
		res.GoBenchRaw, res.GoBench = got, goBenchTable(got)
	}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	dir, err := os.MkdirTemp("", "presence-bench-")
	if err != nil {
		return nil, err
	}
	if c.keep {
		progress("node data and logs kept in %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	progress("starting %d nodes (%s)", c.nodes, c.bin)
	nodes, err := startNodes(c.bin, dir, c.nodes, strings.Fields(c.nodeArgs), c.nodeProcs)
	defer stopNodes(nodes)
	if err != nil {
		return nil, err
	}

	// The seed comparison first, on the quiet cluster: both systems get the
	// machine to themselves, and its 600 tabs would not fit beside 19.5k
	// sessions under one node's 20,000 open files.
	if c.seedBaseline && c.on("seed") && ctx.Err() == nil {
		s := compareWithSeed(ctx, dir, nodes[0], progress)
		res.Seed = &s
	}

	sleepCtx(ctx, 2*time.Second)
	base := map[string]procStat{}
	for _, n := range nodes {
		base[n.name], _ = readProc(n.pid())
	}
	perNode := c.sessions / c.nodes
	progress("connecting %d sessions (%d per node, ≤ %d per worker process, %d rooms)", perNode*c.nodes, perNode, c.perWorker, c.rooms)
	t0 := time.Now()
	fl, err := startFleet(nodes, perNode, c.perWorker, c.rooms, c.heartbeat, c.workerNice, c.workerProcs, progress)
	defer func() {
		if fl != nil {
			res.Notes = append(res.Notes, fl.stop()...)
		}
	}()
	if err != nil {
		return res, err
	}
	connectSecs := time.Since(t0).Seconds()
	counts := map[string]int{}
	for _, r := range fl.connected {
		res.Sessions += r.N
		res.Failed += r.Failed
		counts[r.Node] += r.N
		if r.FirstErr != "" && res.FirstErr == "" {
			res.FirstErr = r.FirstErr
		}
	}
	res.ConnectRate = float64(res.Sessions) / connectSecs
	progress("connected %d sessions (%d failed) in %.1fs: %.0f/s", res.Sessions, res.Failed, connectSecs, res.ConnectRate)

	// Idle: memory and CPU per session, heartbeat round trips.
	sleepCtx(ctx, 3*time.Second)
	fl.pings.reset()
	before := map[string]procStat{}
	for _, n := range nodes {
		before[n.name], _ = readProc(n.pid())
	}
	progress("idle: measuring RSS, CPU and heartbeat round trips for %v", c.phase)
	sleepCtx(ctx, c.phase)
	for _, n := range nodes {
		after, _ := readProc(n.pid())
		u := nodeUsage{Sessions: counts[n.name], BaseRSSMiB: mib(base[n.name].rss), RSSMiB: mib(after.rss),
			IdleCPU: (after.cpu - before[n.name].cpu).Seconds() / c.phase.Seconds()}
		if u.Sessions > 0 {
			u.RSSPerSessKB = float64(after.rss) / 1024 / float64(u.Sessions)
			u.DeltaPerSessKB = float64(after.rss-base[n.name].rss) / 1024 / float64(u.Sessions)
		}
		res.PerNode[n.name] = u
		progress("%s: %d sessions, RSS %.0f MiB (%.1f KB per session; %.1f KB added per session), idle CPU %.2f cores",
			n.name, u.Sessions, u.RSSMiB, u.RSSPerSessKB, u.DeltaPerSessKB, u.IdleCPU)
	}
	res.Heartbeat = fl.pings.dist()
	res.Lost, res.LostWhy = fl.totalLost()
	progress("heartbeat round trip: %v; %d sessions lost so far %v", res.Heartbeat, res.Lost, res.LostWhy)

	if c.nodes > 1 && c.on("prop") && ctx.Err() == nil {
		p, err := measurePropagation(ctx, nodes, c.propRate, c.phase, progress)
		if err != nil {
			return res, err
		}
		res.Propagation = &p
		progress("propagation: %.0f changes/s, %d events at %d subscribers: %v", p.Rate, p.Received, c.nodes-1, p.Latency)
	}
	if c.on("fanout") && ctx.Err() == nil {
		f, err := measureFanOut(ctx, nodes, c.fanSubs, c.fanRate, c.phase, progress)
		if err != nil {
			return res, err
		}
		res.FanOut = &f
		progress("fan-out: %.0f deliveries/s (%.0f updates/s × %d subscribers), latency %v, %d subscribers dropped", f.PerSec, f.UpdatesPerSec, f.Subscribers, f.Latency, f.Dropped)
	}
	if c.on("churn") && ctx.Err() == nil {
		progress("churn: %.0f enter+leave pairs/s, %.0f updates/s, %.0f typing/s per node, for %v", c.churn, c.updates, c.typing, c.phase)
		for _, n := range nodes {
			w := float64(fl.workersOf(n.name))
			if w > 0 {
				fl.send(n.name, workerCmd{Cmd: "ops", EnterLeave: c.churn / w, Updates: c.updates / w, Typing: c.typing / w})
			}
		}
		sleepCtx(ctx, 2*time.Second)
		fl.take()
		// Taken every second: a run's rate varies, and the trace says
		// whether it was steady or stalled.
		all := newOpCounts()
		for end := time.Now().Add(c.phase); ctx.Err() == nil && time.Until(end) > 0; {
			sleepCtx(ctx, min(time.Second, time.Until(end)))
			o := fl.take()
			all.merge(o)
			progress("churn: pairs this second %v, %d errors, %d not sent (queue full)", o.pairs, o.errors, o.dropped)
		}
		fl.send("", workerCmd{Cmd: "ops"}) // all rates 0: stop
		secs := c.phase.Seconds()
		cr := churnResult{Asked: c.churn, PairsPerNode: map[string]float64{}, Updates: float64(all.updates) / secs, Typing: float64(all.typing) / secs,
			Errors: all.errors, ErrorsWhy: all.why, Dropped: all.dropped}
		for k, v := range all.pairs {
			cr.PairsPerNode[k] = float64(v) / secs
		}
		res.Churn = &cr
		progress("churn: pairs/s per node %v, updates %.0f/s, typing %.0f/s, %d errors %v, %d ops not sent (queue full)", fmtRates(cr.PairsPerNode), cr.Updates, cr.Typing, cr.Errors, cr.ErrorsWhy, cr.Dropped)
		// The pairs in flight at the end finish (a leave and an enter, the
		// workers give each up to 5 s).
		sleepCtx(ctx, 11*time.Second)
		// (The take also holds the phase's last reports, which came after
		// its window closed: left out, as its pairs are.)
		cr.LateErrorsWhy = map[string]int64{}
		for k, v := range fl.take().why {
			if strings.Contains(k, " after the phase") {
				cr.LateErrors += v
				cr.LateErrorsWhy[k] += v
			}
		}
		progress("churn: %d ops of pairs in flight at the end failed %v", cr.LateErrors, cr.LateErrorsWhy)
	}
	res.LostAll, res.LostAllWhy = fl.totalLost()
	progress("%d sessions lost before the kill phase %v", res.LostAll, res.LostAllWhy)
	if c.kill && c.on("kill") && c.nodes > 1 && ctx.Err() == nil {
		victim := nodes[len(nodes)-1]
		var rooms []string
		for i := 0; i < c.rooms; i++ {
			rooms = append(rooms, fmt.Sprintf("r%03d", i))
		}
		// The kill is timed from a settled cluster, not amid the previous
		// phase's leftovers (a churn pair's enter outlives the phase, and
		// replication catches up after it).
		settled, took := settle(ctx, nodes, 15*time.Second)
		progress("kill: nodes settled (%v) after %v", settled, took.Round(100*time.Millisecond))
		// Only the victim's sessions still connected can go stale (a lost
		// one has left already).
		k, err := measureKill(ctx, nodes, victim, victim.name+"-w", fl.liveOn(victim.name), rooms, progress)
		if err != nil {
			return res, err
		}
		res.Kill = &k
		progress("kill -9 %s: all %d sessions stale on %v; per session %v", k.Node, k.Sessions, fmtRates(k.AllStaleMS), k.PerSession)
	}
	return res, ctx.Err()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func fmtRates(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// fmtCounts is "code=n, …", most first.
func fmtCounts(m map[string]int64) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
