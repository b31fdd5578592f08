package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// report is the summary printed at the end of a run.
type report struct {
	o              options
	b              bounds
	start          time.Time
	faults         *faultLog
	viol           *violations
	tr             *truth
	drv            *driver
	orc            *oracle
	watchers       []*watcher
	meta           *metaClient
	lin            string
	convergedAfter time.Duration
	netns          bool
	res            *resources
}

func (r report) print(w io.Writer) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f, a...) }
	opened, _ := r.tr.counts()
	var events, checks int64
	for _, wt := range r.watchers {
		events += wt.events.Load()
		checks += wt.checks.Load()
	}
	s := &r.drv.stats
	p("\n## presence-chaos summary (seed %d, %v)\n\n", r.o.seed, time.Since(r.start).Round(time.Second))
	p("| | |\n|---|---|\n")
	p("| nodes | %d (%s) |\n", r.o.nodes, map[bool]string{true: "each in its own network namespace", false: "loopback: no partitions"}[r.netns])
	if r.o.soak {
		p("| mode | soak: the workload churns for %v with no faults; goroutines and memory must stay flat |\n", r.o.duration)
	}
	p("| sessions | %d users × %d tabs = %d at once; %d sessions opened in all |\n", r.o.users, r.o.tabs, r.o.users*r.o.tabs, opened)
	p("| client reconnects | %d (resumed %d, resume refused %d); %d explicit closes, %d crashes, %d data updates |\n",
		s.reconnects.Load(), s.resumes.Load(), s.resumeFailed.Load(), s.closes.Load(), s.crashes.Load(), s.updates.Load())
	p("| samples compared | %d node answers (room listings, counts, user batches) |\n", r.orc.samples.Load())
	p("| events checked | %d events applied by %d subscribers; %d snapshot+events = listing checks |\n", events, len(r.watchers), checks)
	p("| room metadata | %d acked writes, %d unknown outcomes, %d consistent reads; linearizable: %s |\n",
		r.meta.acked.Load(), r.meta.unknown.Load(), r.meta.reads.Load(), r.lin)
	if r.convergedAfter >= 0 {
		p("| first identical sweep of every node after the faults | %v |\n", r.convergedAfter.Round(10*time.Millisecond))
	} else {
		p("| first identical sweep of every node after the faults | none in %v (churn moves some room mid-sweep; per-member divergence is what is checked) |\n", quietPeriod)
	}
	p("| bounds | ghost %v, false offline %v, convergence %v |\n\n", r.b.Ghost, r.b.FalseOffline, r.b.Converge)

	p("| fault | injected |\n|---|---|\n")
	r.faults.mu.Lock()
	kinds := make([]string, 0, len(r.faults.byKind))
	total := 0
	for k, c := range r.faults.byKind {
		kinds = append(kinds, k)
		total += c
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p("| %s | %d |\n", k, r.faults.byKind[k])
	}
	p("| **total** | **%d** |\n", total)
	failed := r.faults.failed
	r.faults.mu.Unlock()
	for _, f := range failed {
		p("\nfault not carried out: %s\n", f)
	}

	p("\n")
	r.res.print(w)

	r.viol.mu.Lock()
	defer r.viol.mu.Unlock()
	p("\n| violation | count | first examples |\n|---|---|---|\n")
	for _, k := range []string{"ghost", "false_offline", "divergence", "counts", "event_gap", "event_duplicate", "event_mismatch", "linearizability", "leak"} {
		ex := ""
		for i, e := range r.viol.examples[k] {
			if i > 0 {
				ex += "<br>"
			}
			ex += e
		}
		p("| %s | %d | %s |\n", k, r.viol.count[k], ex)
	}
	n := 0
	for _, c := range r.viol.count {
		n += c
	}
	if n == 0 {
		p("\nPASS: no violations\n")
	} else {
		p("\nFAIL: %d violations\n", n)
	}
}
