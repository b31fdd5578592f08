// Command presence-chaos runs a local presenced cluster under a seeded
// schedule of faults (kill -9, freeze, network partition, rolling restart,
// raft leader kill) while simulated users with several tabs each come and
// go through the public WebSocket protocol, and an oracle compares every
// node's answers with the ground truth. It prints a summary and exits 1 on
// any violation. See README.md, "Chaos testing".
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type options struct {
	bin         string
	nodes       int
	users       int
	tabs        int
	rooms       int
	duration    time.Duration
	faultEvery  time.Duration
	seed        uint64
	grace       time.Duration
	heartbeat   time.Duration
	netns       bool
	keep        bool
	profile     string
	logLevel    string
	soak        bool
	sampleEvery time.Duration
}

// quietPeriod is how long the oracle keeps checking after the last fault:
// past the partition exemption (false offline + convergence bounds, 8 s),
// then the convergence bound, with room to spare.
const quietPeriod = 20 * time.Second

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/presenced", "presenced binary to run")
	flag.IntVar(&o.nodes, "nodes", 5, "cluster size")
	flag.IntVar(&o.users, "users", 700, "simulated users")
	flag.IntVar(&o.tabs, "tabs", 3, "tabs (sessions) per user")
	flag.IntVar(&o.rooms, "rooms", 10, "rooms (each user's tabs are in one)")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long faults are injected")
	flag.DurationVar(&o.faultEvery, "fault-every", 8*time.Second, "mean pause between faults")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule and workload (0: from the clock; printed, so a run can be replayed)")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "--session-grace of the nodes")
	flag.DurationVar(&o.heartbeat, "heartbeat", 2*time.Second, "--heartbeat-interval of the nodes (clients ping at about this rate)")
	flag.BoolVar(&o.netns, "netns", true, "run each node in its own network namespace (needs root) so partitions are real cuts")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (node logs) after a passing run")
	flag.StringVar(&o.profile, "gossip-profile", "local", "gossip profile of the nodes")
	flag.StringVar(&o.logLevel, "node-log-level", "info", "--log-level of the nodes (debug logs each session's takeovers and removals)")
	flag.BoolVar(&o.soak, "soak", false, "soak mode: the workload churns for --duration without faults; fails if a node's goroutines or memory grow")
	flag.DurationVar(&o.sampleEvery, "sample-every", 5*time.Second, "how often each node's goroutines and memory are sampled")
	flag.Parse()
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano()%1_000_000 + 1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o)
	if err != nil {
		log.Printf("chaos: %v", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (bool, error) {
	logf := log.New(os.Stderr, "chaos ", log.Lmsgprefix|log.Ltime).Printf
	dir, err := os.MkdirTemp("", "presence-chaos-")
	if err != nil {
		return false, err
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(bin); err != nil {
		return false, fmt.Errorf("no presenced binary at %s (make build)", bin)
	}
	b := bounds{
		Ghost:        o.grace + 2*o.heartbeat + 2*time.Second + 3*time.Second, // grace + server's silence close + detection + slack
		FalseOffline: 5 * time.Second,                                         // detection + reconnect + resume
		Converge:     3 * time.Second,
		Unknown:      3 * time.Second,
	}
	logf("seed %d: %d nodes, %d users × %d tabs in %d rooms, faults for %v; work dir %s", o.seed, o.nodes, o.users, o.tabs, o.rooms, o.duration, dir)
	extra := []string{"--debug-endpoints", "--log-level", o.logLevel, "--gossip-profile", o.profile, "--session-grace", o.grace.String(), "--heartbeat-interval", o.heartbeat.String()}
	ns, err := newNodeSet(bin, dir, o.nodes, o.netns, extra, logf)
	if err != nil {
		return false, err
	}
	if ns.netns {
		ns.args = append(ns.args, "--allow-open") // open dev mode on a non-loopback (namespace) address
	}
	defer ns.teardownNetns(o.nodes)
	defer func() {
		for _, n := range ns.nodes {
			n.signal(syscall.SIGCONT, false)
			n.signal(syscall.SIGKILL, true)
		}
	}()
	// Node 1 starts alone and bootstraps raft; the others join it.
	for i, n := range ns.nodes {
		var join []string
		if i > 0 {
			join = []string{ns.nodes[0].gossip}
		}
		if err := ns.start(n, join); err != nil {
			return false, err
		}
		if err := n.waitReady(30 * time.Second); err != nil {
			return false, err
		}
	}
	start := time.Now()
	viol := newViolations(start)
	flog := &faultLog{byKind: map[string]int{}, start: start, logf: logf, partitions: ns.netns}
	lb := &balancer{}
	lb.set(ns.nodes)
	tr := newTruth(start)
	var rooms, users, metaRooms []string
	for i := 0; i < o.rooms; i++ {
		rooms = append(rooms, fmt.Sprintf("room%02d", i))
	}
	for u := 0; u < o.users; u++ {
		users = append(users, fmt.Sprintf("user%04d", u))
	}
	for i := 0; i < 3; i++ {
		metaRooms = append(metaRooms, fmt.Sprintf("meta%d", i))
	}
	orc := &oracle{nodes: ns.nodes, lb: lb, tr: tr, rooms: rooms, users: users, b: b, v: viol, faults: flog}
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	go orc.readiness(bg)

	drvCtx, stopDriver := context.WithCancel(ctx)
	defer stopDriver()
	drv := &driver{lb: lb, tr: tr, rooms: rooms, churn: true, ping: o.heartbeat / 2}
	drv.start(drvCtx, o.users, o.tabs, o.seed)
	var watchers []*watcher
	for _, n := range ns.nodes {
		w := &watcher{n: n, rooms: rooms, v: viol}
		watchers = append(watchers, w)
		go w.run(bg)
	}
	mc := &metaClient{lb: lb, rooms: metaRooms, start: start}
	metaCtx, stopMeta := context.WithCancel(ctx)
	defer stopMeta()
	for i := 0; i < 2; i++ {
		mc.wg.Add(1)
		go mc.worker(metaCtx, i, o.seed)
	}

	// Warm up: every tab connected, then the oracle starts.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, conn := tr.counts()
		if conn >= o.users*o.tabs*9/10 || time.Now().After(deadline) {
			logf("%d sessions connected", conn)
			break
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return false, ctx.Err()
		}
	}
	orcCtx, stopOracle := context.WithCancel(bg)
	defer stopOracle()
	orcDone := make(chan struct{})
	go func() { orc.run(orcCtx, 500*time.Millisecond); close(orcDone) }()

	res := &resources{start: start, byNode: map[string][]resSample{}}
	go res.run(bg, ns.nodes, o.sampleEvery)

	inj := &injector{ns: ns, log: flog, rng: rand.New(rand.NewPCG(o.seed, 1)), every: o.faultEvery}
	fctx, stopFaults := context.WithTimeout(ctx, o.duration)
	defer stopFaults()
	progress := time.NewTicker(15 * time.Second)
	injDone := make(chan struct{})
	go func() {
		if o.soak {
			<-fctx.Done() // soak: the workload alone
		} else {
			inj.run(fctx)
		}
		close(injDone)
	}()
	for waiting := true; waiting; {
		select {
		case <-injDone:
			waiting = false
		case <-progress.C:
			opened, conn := tr.counts()
			logf("t=%.0fs: %d faults, %d sessions opened, %d connected, %d samples, %d violations%s",
				time.Since(start).Seconds(), flog.total(), opened, conn, orc.samples.Load(), viol.total(), viol.brief())
		}
	}
	progress.Stop()
	stopFaults()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}

	// Quiet: the workload goes on without faults for 15 s while the oracle
	// keeps comparing (any member the nodes disagree on for longer than the
	// convergence bound is a divergence, now that no partition exempts it).
	// Whole sweeps are compared too, for the report: under churn a sweep of
	// every room on every node is identical only when no change lands
	// mid-sweep, so the time to the first identical one is information.
	logf("faults stopped; %v of quiet", quietPeriod)
	settled := time.Now()
	convergedAfter, lastWhy := time.Duration(-1), ""
	for time.Since(settled) < quietPeriod {
		if convergedAfter < 0 {
			if okc, why := orc.converged(); okc {
				convergedAfter = time.Since(settled)
			} else {
				lastWhy = why
			}
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
	if convergedAfter < 0 {
		logf("no sweep of every node identical in the quiet period (churn); last difference: %s", lastWhy)
	}
	stopOracle()
	<-orcDone
	orc.finalDivergence(time.Now())
	if o.soak {
		for _, g := range res.flat() {
			viol.add("leak", g)
		}
	}
	stopMeta()
	mc.wg.Wait()
	mc.finalReads(ns, viol)

	// Every tab closes; every node must show every room empty.
	stopDriver()
	drv.wg.Wait()
	emptyDeadline := time.Now().Add(b.Ghost)
	for {
		left := 0
		for _, n := range lb.snapshot() {
			for _, r := range rooms {
				var mb membersBody
				if getJSON(n.base()+"/v1/rooms/"+r+"/members", &mb) == nil {
					left += len(mb.Members)
				}
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(emptyDeadline) {
			viol.add("ghost", fmt.Sprintf("every client closed, %d memberships still listed after %v", left, b.Ghost))
			break
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
	stopBG()

	linHTML := filepath.Join(dir, "metadata-history.html")
	lin := mc.check(60*time.Second, linHTML)
	if lin != "Ok" {
		viol.add("linearizability", fmt.Sprintf("room metadata history: porcupine says %s (see %s)", lin, linHTML))
	}
	rep := report{o: o, b: b, start: start, faults: flog, viol: viol, tr: tr, drv: drv, orc: orc, watchers: watchers, meta: mc,
		lin: string(lin), convergedAfter: convergedAfter, netns: ns.netns, res: res}
	rep.print(os.Stdout)
	ok := viol.total() == 0
	if ok && !o.keep {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Printf("node logs kept in %s\n", dir)
	}
	return ok, nil
}
