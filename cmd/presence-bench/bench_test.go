package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The fleet runs this binary as its workers.
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := runWorker(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSamplesPercentiles(t *testing.T) {
	var s samples
	for i := 1; i <= 1000; i++ {
		s.add(time.Duration(i) * time.Millisecond)
	}
	d := s.dist()
	if d.N != 1000 || d.P50 != 500 || d.P99 != 990 || d.P999 != 999 || d.Max != 1000 {
		t.Fatalf("dist = %+v", d)
	}
	s.reset()
	if s.dist().N != 0 {
		t.Fatal("reset kept samples")
	}
}

func TestStampOf(t *testing.T) {
	ns := time.Now().UnixNano()
	msg := []byte(`{"type":"update","room":"r","version":3,"time":1,"session":"s","member":{"session":"s","data":{"t":` + itoa(ns) + `}}}`)
	got, ok := stampOf(msg)
	if !ok || got.UnixNano() != ns {
		t.Fatalf("stampOf = %v %v, want %d", got, ok, ns)
	}
	for _, bad := range []string{`{"type":"enter","member":{"data":{"t":5}}}`, `{"type":"update"}`, `{"type":"update","data":{"t":x}}`} {
		if _, ok := stampOf([]byte(bad)); ok {
			t.Errorf("stampOf(%s) found a stamp", bad)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestParseGoBench(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.txt")
	out := `goos: linux
BenchmarkMergeDelta10Into100k-2   	  250000	      4612 ns/op	         4.612 µs/op
BenchmarkMetaPut-2                	    5000	    540000 ns/op	         0.5 p50-ms	         1.8 p99-ms	         1850 ops/s
BenchmarkMemoryPerEntry           	       1	 900000000 ns/op	       235.0 B/entry
BenchmarkDeltaSince/limit256-2    	  111360	     10521 ns/op	   27264 B/op	       1 allocs/op
PASS
`
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := parseGoBench(p)
	if err != nil {
		t.Fatal(err)
	}
	if got["MergeDelta10Into100k"]["ns/op"] != 4612 || got["MetaPut"]["p99-ms"] != 1.8 || got["MemoryPerEntry"]["B/entry"] != 235 {
		t.Fatalf("parsed %v", got)
	}
	table := goBenchTable(got)
	for _, want := range []string{"| MergeDelta10Into100k |", "4.6 µs", "| DeltaSince/limit256 |", "10.5 µs", "| MetaPut |", "met", "| HTTPRoomMembers10k | room of 10k: `GET /v1/rooms/{room}/members` over HTTP | ≤ 10 ms | not run"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	got["MetaPut"]["p99-ms"] = 6
	if !strings.Contains(goBenchTable(got), "**missed**: p99 2.00× the bound") {
		t.Errorf("a missed target is not called out:\n%s", goBenchTable(got))
	}
}

func TestReadProcOfSelf(t *testing.T) {
	ps, err := readProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if ps.rss < 1<<20 {
		t.Fatalf("rss %d bytes", ps.rss)
	}
}

// TestSmallRun runs every phase of the load generator against a real
// 2-node cluster, at a tiny scale: it checks the machinery (workers,
// subscribers, kill), not the numbers.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds presenced and runs a cluster")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "presenced")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/presenced/presenced/cmd/presenced")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build presenced: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := config{bin: bin, nodes: 2, sessions: 60, perWorker: 20, rooms: 3, heartbeat: time.Second, phase: time.Second,
		propRate: 100, fanSubs: 6, fanRate: 20, churn: 20, updates: 10, typing: 10, seedBaseline: false, kill: true,
		nodeArgs: "--gossip-profile local", phases: "prop,fanout,churn,kill"}
	res, err := run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions != 60 || res.Failed != 0 {
		t.Fatalf("connected %d, failed %d (%s)", res.Sessions, res.Failed, res.FirstErr)
	}
	if res.Heartbeat.N == 0 {
		t.Error("no heartbeat round trips")
	}
	if res.Propagation == nil || res.Propagation.Received == 0 {
		t.Errorf("propagation: %+v", res.Propagation)
	}
	if res.FanOut == nil || res.FanOut.Deliveries == 0 || res.FanOut.Dropped != 0 {
		t.Errorf("fan-out: %+v", res.FanOut)
	}
	if res.Churn == nil || len(res.Churn.PairsPerNode) == 0 {
		t.Errorf("churn: %+v", res.Churn)
	}
	if res.Kill == nil || res.Kill.Sessions != 30 {
		t.Fatalf("kill: %+v", res.Kill)
	}
	for n, v := range res.Kill.AllStaleMS {
		if v < 0 {
			t.Errorf("%s: not every session of the killed node shown stale", n)
		}
	}
	for _, n := range res.Notes {
		t.Errorf("note: %s", n)
	}
	md := res.markdown(c)
	for _, want := range []string{"| b1: sessions held", "cross-node propagation", "fan-out", "kill -9 of b2 holding 30 sessions"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
