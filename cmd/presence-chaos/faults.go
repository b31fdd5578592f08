package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// Fault kinds.
const (
	faultKill       = "kill -9"
	faultFreeze     = "freeze (SIGSTOP)"
	faultPartition  = "partition"
	faultRolling    = "rolling restart"
	faultLeaderKill = "raft leader kill"
)

// faultLog records the faults injected and the partition windows, during
// which (and for a while after) false offlines and divergence are expected.
type faultLog struct {
	mu         sync.Mutex
	byKind     map[string]int
	partStart  time.Time // zero when no partition is on
	partEnded  time.Time
	thawed     time.Time // the last freeze's end
	faultOn    bool      // a fault is being injected (until its node is back, healed or thawed)
	lines      []string
	start      time.Time
	failed     []string // faults that could not be carried out
	logf       func(string, ...any)
	partitions bool
}

func (f *faultLog) record(kind, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byKind[kind]++
	line := fmt.Sprintf("t=%5.1fs %-17s %s", time.Since(f.start).Seconds(), kind, detail)
	f.lines = append(f.lines, line)
	f.logf("fault %s", line)
}

func (f *faultLog) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.byKind {
		n += c
	}
	return n
}

// exempt: a partition is on, or healed less than detection + convergence
// ago. Presence across a partition is each side's own truth (DESIGN.md).
// A frozen node was cut off as a partitioned one is: the changes made while
// it was stopped reach it after it thaws (its peers took it for dead and
// stopped sending), so a thaw is exempt for as long as a heal. (Without,
// a session entered on another node during a freeze, sampled on the
// thawed node a moment after SIGCONT, was reported as a false offline.)
func (f *faultLog) exempt(now time.Time, b bounds) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.partStart.IsZero() {
		return true
	}
	since := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) < b.FalseOffline+b.Converge }
	return since(f.partEnded) || since(f.thawed)
}

func (f *faultLog) setOn(on bool) {
	f.mu.Lock()
	f.faultOn = on
	f.mu.Unlock()
}

// divergenceExempt: as exempt, or a fault is on. Divergence is nodes
// disagreeing longer than the convergence bound after the faults stop: while
// a node is frozen, dead or restarting, its peers see it fail one by one and
// its clients resume elsewhere when their pings time out, so the others may
// disagree until then; the bound runs from the fault's end.
func (f *faultLog) divergenceExempt(now time.Time, b bounds) bool {
	f.mu.Lock()
	on := f.faultOn
	f.mu.Unlock()
	return on || f.exempt(now, b)
}

// injector draws faults from a seeded schedule and applies them to the
// node processes, one at a time, so a raft majority always survives.
type injector struct {
	ns    *nodeSet
	log   *faultLog
	rng   *rand.Rand
	every time.Duration // mean time between the end of one fault and the next
}

func (in *injector) run(ctx context.Context) {
	kinds := []string{faultKill, faultFreeze, faultRolling, faultLeaderKill}
	if in.ns.netns {
		kinds = append(kinds, faultPartition, faultPartition)
	}
	for i := 0; ; i++ {
		if !sleepCtx(ctx, in.every/2+time.Duration(in.rng.Int64N(int64(in.every)))) {
			return
		}
		kind := kinds[in.rng.IntN(len(kinds))]
		if kind == faultRolling && i%4 != 3 { // rolling restarts are long: fewer of them
			kind = faultKill
		}
		in.log.setOn(true)
		err := in.inject(ctx, kind)
		in.log.setOn(false)
		if err != nil {
			in.log.mu.Lock()
			in.log.failed = append(in.log.failed, fmt.Sprintf("%s: %v", kind, err))
			in.log.mu.Unlock()
			in.log.logf("fault %s failed: %v", kind, err)
		}
	}
}

func (in *injector) pick() *node { return in.ns.nodes[in.rng.IntN(len(in.ns.nodes))] }

func (in *injector) hold(ctx context.Context, lo, hi time.Duration) {
	sleepCtx(ctx, lo+time.Duration(in.rng.Int64N(int64(hi-lo))))
}

func (in *injector) inject(ctx context.Context, kind string) error {
	switch kind {
	case faultKill:
		return in.killRestart(ctx, in.pick(), kind)
	case faultLeaderKill:
		for _, n := range in.ns.nodes {
			if n.isLeader() {
				return in.killRestart(ctx, n, kind)
			}
		}
		return fmt.Errorf("no raft leader found")
	case faultFreeze:
		n := in.pick()
		in.log.record(kind, n.name)
		n.signal(syscall.SIGSTOP, false)
		in.hold(ctx, 3*time.Second, 6*time.Second) // longer than failure detection
		n.signal(syscall.SIGCONT, false)
		in.log.mu.Lock()
		in.log.thawed = time.Now()
		in.log.mu.Unlock()
		return nil
	case faultPartition:
		perm := in.rng.Perm(len(in.ns.nodes))
		k := 1 + in.rng.IntN((len(in.ns.nodes)-1)/2) // a minority of 1 or 2
		var a, b []*node
		for i, p := range perm {
			if i < k {
				a = append(a, in.ns.nodes[p])
			} else {
				b = append(b, in.ns.nodes[p])
			}
		}
		in.log.record(kind, fmt.Sprintf("%s | %s", names(a), names(b)))
		in.log.mu.Lock()
		in.log.partStart = time.Now()
		in.log.mu.Unlock()
		err := in.ns.partition(a, b)
		in.hold(ctx, 4*time.Second, 8*time.Second)
		in.ns.heal()
		in.log.mu.Lock()
		in.log.partStart, in.log.partEnded = time.Time{}, time.Now()
		in.log.mu.Unlock()
		return err
	case faultRolling:
		in.log.record(kind, "every node in turn (SIGTERM, restart, ready)")
		for _, n := range in.ns.nodes {
			n.signal(syscall.SIGTERM, true)
			if err := in.ns.start(n, in.ns.peersOf(n)); err != nil {
				return err
			}
			if err := n.waitReady(30 * time.Second); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown fault %q", kind)
}

func (in *injector) killRestart(ctx context.Context, n *node, kind string) error {
	in.log.record(kind, n.name)
	n.signal(syscall.SIGKILL, true)
	in.hold(ctx, 2*time.Second, 6*time.Second)
	if err := in.ns.start(n, in.ns.peersOf(n)); err != nil {
		return err
	}
	return n.waitReady(30 * time.Second)
}

func names(ns []*node) string {
	s := "{"
	for i, n := range ns {
		if i > 0 {
			s += ","
		}
		s += n.name
	}
	return s + "}"
}
