package cluster_test

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/presenced/presenced/session"
)

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkCrossNodePropagation: an update on node 1 → the event at a
// subscriber on node 2, one change at a time (low load), over loopback
// gossip. Reports p50 and p99 (target p50 ≤ 1.5 ms, p99 ≤ 10 ms).
func BenchmarkCrossNodePropagation(b *testing.B) {
	a := startNodeB(b, "p1", nil)
	c := startNodeB(b, "p2", []string{a.c.Addr()})
	got := make(chan time.Time, 1)
	_, cancel, err := c.engine.Subscribe("r", func(ev *session.Event) {
		if ev.Type == session.EventUpdate || ev.Type == session.EventEnter {
			select {
			case got <- time.Now():
			default:
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cancel()
	op, _ := a.engine.Open(session.OpenRequest{User: "writer"})
	_ = a.engine.Enter(op.Session, "r", nil)
	<-got
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := a.engine.Update(op.Session, "r", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(5 * time.Second):
			b.Fatalf("update %d never arrived", i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkKillToStale: a node holding 1,000 sessions is killed; the time
// until both survivors show them stale. Run with -benchtime=20x for the
// distribution over 20 kills (reported as p50 and p99).
func BenchmarkKillToStale(b *testing.B) {
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := startNodeB(b, fmt.Sprintf("k%da", i), nil)
		s := startNodeB(b, fmt.Sprintf("k%db", i), []string{a.c.Addr()})
		v := startNodeB(b, fmt.Sprintf("k%dc", i), []string{a.c.Addr()})
		for j := 0; j < 1000; j++ {
			op, _ := v.engine.Open(session.OpenRequest{User: fmt.Sprintf("u%d", j)})
			_ = v.engine.Enter(op.Session, "r", nil)
		}
		waitB(b, 10*time.Second, func() bool {
			return a.engine.RoomCounts("r").Online.Connections == 1000 && s.engine.RoomCounts("r").Online.Connections == 1000
		})
		b.StartTimer()
		start := time.Now()
		v.kill()
		waitB(b, 10*time.Second, func() bool {
			return a.engine.UserPresence("u999").State == session.Stale && s.engine.UserPresence("u999").State == session.Stale
		})
		took = append(took, time.Since(start))
		b.StopTimer()
		a.kill()
		s.kill()
	}
	b.ReportMetric(float64(percentile(took, 0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(took, 0.99).Milliseconds()), "p99-ms")
}

func waitB(b *testing.B, within time.Duration, cond func() bool) {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkJoin1M: a node joins a cluster holding 1,000,000 sessions; the
// time until it is ready and holds them all, and the heap it uses per
// replicated session (its whole engine: crdt entry, index, record).
// Run: go test -run '^$' -bench Join1M -benchtime 1x -timeout 20m ./cluster/
func BenchmarkJoin1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("JOIN_SESSIONS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := startNodeB(b, fmt.Sprintf("big%d", i), nil)
		for j := 0; j < n; j++ {
			if _, err := a.engine.Open(session.OpenRequest{User: fmt.Sprintf("user-%d", j), Device: session.Device{Kind: "web"}}); err != nil {
				b.Fatal(err)
			}
		}
		before := heapInUse()
		b.StartTimer()
		start := time.Now()
		j := startNodeB(b, fmt.Sprintf("joiner%d", i), []string{a.c.Addr()})
		waitB(b, 10*time.Minute, func() bool { return j.engine.Stats().Sessions == n })
		b.Logf("all %d sessions after %v; digest %v", n, time.Since(start), j.engine.Digest())
		waitB(b, 10*time.Minute, j.c.Ready)
		took := time.Since(start)
		b.StopTimer()
		after := heapInUse()
		b.ReportMetric(took.Seconds(), "join-s")
		b.ReportMetric(float64(after-before)/float64(n), "joiner-B/session")
		a.kill()
		j.kill()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
