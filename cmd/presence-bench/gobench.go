package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// goBench is one benchmark's result line: unit → value ("ns/op", "p99-ms", …).
type goBench map[string]float64

var benchLine = regexp.MustCompile(`^Benchmark([^\s]+?)(-\d+)?\s+\d+\s+(.*)$`)

// parseGoBench reads `go test -bench` output. A benchmark that ran several
// times (-count) keeps its last line.
func parseGoBench(path string) (map[string]goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]goBench{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		gb := goBench{}
		fields := strings.Fields(m[3])
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				gb[fields[i+1]] = v
			}
		}
		out[m[1]] = gb
	}
	return out, sc.Err()
}

// goRow is one row of the Go benchmark table.
type goRow struct {
	bench, what, target, anchor string
	show                        func(goBench) (measured string, ok bool, vs string)
}

func nsTarget(limitNS float64) func(goBench) (string, bool, string) {
	return func(g goBench) (string, bool, string) {
		ns := g["ns/op"]
		return human(ns), ns <= limitNS, fmt.Sprintf("%.3f× the target", ns/limitNS)
	}
}

func nsOnly(g goBench) (string, bool, string) { return human(g["ns/op"]), true, "" }

func human(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.2f ms", ns/1e6)
}

var goRows = []goRow{
	{"MergeDelta10Into100k", "merge a 10-change delta into a 100k-entry replica", "≤ 100 µs", "Phoenix.Tracker 137 ms", nsTarget(100e3)},
	{"MergeDelta10Into100kWire", "same, with the wire decode", "≤ 100 µs", "", nsTarget(100e3)},
	{"DeltaSince/tail10", "delta extraction: the last 10 entries of one origin after a sequence number", "", "", nsOnly},
	{"DeltaSince/limit256", "delta extraction: 256 entries of one origin (a pull answer's page)", "", "", nsOnly},
	{"DeltaCodec10/marshal", "delta of 10 changes: encode", "", "", nsOnly},
	{"DeltaCodec10/unmarshal", "delta of 10 changes: decode", "", "", nsOnly},
	{"MemoryPerEntry", "memory per replicated entry (1M entries)", "≤ 300 B", "", func(g goBench) (string, bool, string) {
		v := g["B/entry"]
		return fmt.Sprintf("%.0f B", v), v <= 300, fmt.Sprintf("%.2f× the target", v/300)
	}},
	{"RoomMembers10k", "room of 10k: derived member listing, in-process", "", "", nsOnly},
	{"HTTPRoomMembers10k", "room of 10k: `GET /v1/rooms/{room}/members` over HTTP", "≤ 10 ms", "Centrifugo 28–32 ms", nsTarget(10e6)},
	{"RoomUsers10k", "room of 10k: derived user listing (5k users), in-process", "", "", nsOnly},
	{"RoomCounts10k", "room of 10k: counts, in-process", "≤ 10 µs", "", nsTarget(10e3)},
	{"HTTPRoomCounts10k", "room of 10k: counts over HTTP", "≤ 1 ms", "Centrifugo presence_stats 4–6 ms", nsTarget(1e6)},
	{"UsersPresence100", "user batch of 100, in-process", "", "", nsOnly},
	{"HTTPUsersBatch100", "user batch of 100 over HTTP (`GET /v1/users?ids=`)", "≤ 1 ms", "", nsTarget(1e6)},
	{"EnterLeave", "enter + leave in a 10k-member room with a subscriber, in-process", "≥ 2k pairs/s per node", "Centrifugo ~167 joins/s per pod", func(g goBench) (string, bool, string) {
		rate := 1e9 / g["ns/op"]
		return fmt.Sprintf("%s per pair (%.0f pairs/s)", human(g["ns/op"]), rate), rate >= 2000, fmt.Sprintf("%.2f× the target", rate/2000)
	}},
	{"EncodeUpdateEvent", "encode one update event (once, for every subscriber)", "", "", nsOnly},
	{"OriginFailed20k", "a failed owner's 19,500 sessions marked stale, with a subscriber in each of their 100 rooms (in-process: the engine's part of a kill, under its lock)", "", "", nsOnly},
	{"FanOut1k", "fan-out of one event to 1k subscribers, in-process hand-off", "", "", func(g goBench) (string, bool, string) {
		return fmt.Sprintf("%.1f M deliveries/s", g["deliveries/s"]/1e6), true, ""
	}},
	{"CrossNodePropagation", "cross-node propagation, one change at a time (in-process nodes, loopback UDP)", "p50 ≤ 1.5 ms, p99 ≤ 10 ms", "Centrifugo + Redis median 1.9–2.3 ms", func(g goBench) (string, bool, string) {
		p50, p99 := g["p50-ms"], g["p99-ms"]
		return fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", p50, p99), p50 <= 1.5 && p99 <= 10, fmt.Sprintf("p50 %.2f×, p99 %.2f× the target", p50/1.5, p99/10)
	}},
	{"MetaPut", "raft room-metadata write, serial, fsync", "p99 ≤ 3 ms, ≥ 1k/s", "etcd on 2 CPUs: 60 QPS at 1 client", func(g goBench) (string, bool, string) {
		p99, rate := g["p99-ms"], g["ops/s"]
		return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %.0f/s", g["p50-ms"], p99, rate), p99 <= 3 && rate >= 1000, fmt.Sprintf("p99 %.2f× the bound, %.2f× the rate", p99/3, rate/1000)
	}},
	{"Kill9ToStale", "kill -9 of a node process holding 1k sessions → all stale on both survivors (20 kills)", "p99 ≤ 1.5 s", "Centrifugo: listed 40–53 s", func(g goBench) (string, bool, string) {
		p99 := g["p99-ms"]
		return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", g["p50-ms"], p99), p99 <= 1500, fmt.Sprintf("p99 %.2f× the bound", p99/1500)
	}},
}

// goBenchTable renders the rows found in the parsed output.
func goBenchTable(got map[string]goBench) string {
	var b strings.Builder
	b.WriteString("| Go benchmark | what | target | measured | vs target | anchor |\n|---|---|---|---|---|---|\n")
	for _, r := range goRows {
		g, ok := got[r.bench]
		if !ok {
			fmt.Fprintf(&b, "| %s | %s | %s | not run | | %s |\n", r.bench, r.what, r.target, r.anchor)
			continue
		}
		m, met, vs := r.show(g)
		v := ""
		if r.target != "" {
			v = verdict(met, vs)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.bench, r.what, r.target, m, v, r.anchor)
	}
	return b.String()
}
