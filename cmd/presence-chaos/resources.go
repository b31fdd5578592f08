package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// resources samples every node's goroutines, heap in use and resident
// memory from its /metrics, for the report and for soak mode, where they
// must stay flat while the workload churns.
type resources struct {
	mu     sync.Mutex
	start  time.Time
	byNode map[string][]resSample
}

type resSample struct {
	at                    time.Duration
	started               float64 // process_start_time_seconds: a restart starts a new series
	goroutines, heap, rss float64
}

var resMetrics = []string{"process_start_time_seconds", "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"}

func (r *resources) run(ctx context.Context, nodes []*node, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, n := range nodes {
			if v, ok := n.metrics(resMetrics...); ok {
				r.mu.Lock()
				r.byNode[n.name] = append(r.byNode[n.name], resSample{at: time.Since(r.start), started: v[0], goroutines: v[1], heap: v[2], rss: v[3]})
				r.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// series is a node's samples since its last (re)start.
func (r *resources) series(name string) []resSample {
	all := r.byNode[name]
	i := len(all)
	for i > 0 && all[i-1].started == all[len(all)-1].started {
		i--
	}
	return all[i:]
}

// flat compares each node's medians over the first and the last third of
// its run (since its last start): goroutines may grow by 5% + 20, heap in
// use and RSS by 25% + 16 MiB. It returns what grew beyond that.
func (r *resources) flat() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var grew []string
	for _, name := range sortedKeys(r.byNode) {
		s := r.series(name)
		if len(s) < 6 {
			grew = append(grew, fmt.Sprintf("%s: only %d samples since its last start", name, len(s)))
			continue
		}
		third := len(s) / 3
		check := func(what string, get func(resSample) float64, ratio, slack float64, unit string) {
			a, b := median(s[:third], get), median(s[len(s)-third:], get)
			if b > a*ratio+slack {
				grew = append(grew, fmt.Sprintf("%s: %s grew from %s to %s", name, what, fmtUnit(a, unit), fmtUnit(b, unit)))
			}
		}
		check("goroutines", func(x resSample) float64 { return x.goroutines }, 1.05, 20, "")
		check("heap in use", func(x resSample) float64 { return x.heap }, 1.25, 16<<20, "MiB")
		check("RSS", func(x resSample) float64 { return x.rss }, 1.25, 16<<20, "MiB")
	}
	return grew
}

func (r *resources) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "| node (since its last start) | samples | goroutines first → last (max) | heap in use first → last (max) | RSS first → last (max) |\n|---|---|---|---|---|\n")
	for _, name := range sortedKeys(r.byNode) {
		s := r.series(name)
		if len(s) == 0 {
			continue
		}
		col := func(get func(resSample) float64, unit string) string {
			mx := 0.0
			for _, x := range s {
				mx = max(mx, get(x))
			}
			return fmt.Sprintf("%s → %s (%s)", fmtUnit(get(s[0]), unit), fmtUnit(get(s[len(s)-1]), unit), fmtUnit(mx, unit))
		}
		fmt.Fprintf(w, "| %s | %d over %v | %s | %s | %s |\n", name, len(s), (s[len(s)-1].at - s[0].at).Round(time.Second),
			col(func(x resSample) float64 { return x.goroutines }, ""),
			col(func(x resSample) float64 { return x.heap }, "MiB"),
			col(func(x resSample) float64 { return x.rss }, "MiB"))
	}
	fmt.Fprintln(w)
}

func median(s []resSample, get func(resSample) float64) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = get(x)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func fmtUnit(v float64, unit string) string {
	if unit == "MiB" {
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// metrics reads unlabelled samples from the node's /metrics, in order.
func (n *node) metrics(names ...string) ([]float64, bool) {
	resp, err := probe.Get(n.base() + "/metrics")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false
	}
	found := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			found[name] = f
		}
	}
	out := make([]float64, len(names))
	for i, name := range names {
		v, ok := found[name]
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}
