package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkKill9ToStale: three node processes; the victim holds 1,000
// sessions; kill -9 of the victim, then the time until both survivors show
// all 1,000 stale. The victim is restarted (same name, ports and data dir:
// a new incarnation) for the next round. Run with -benchtime 20x for the
// distribution over 20 kills:
//
//	go test -run '^$' -bench Kill9ToStale -benchtime 20x ./cmd/presenced/
//
// KILL_BENCH_PROFILE picks the gossip profile (default lan, the product's
// default).
func BenchmarkKill9ToStale(b *testing.B) {
	profile := "lan"
	if p := os.Getenv("KILL_BENCH_PROFILE"); p != "" {
		profile = p
	}
	const sessions = 1000
	const grace = 30 * time.Second // longer than a round: stale, not yet gone
	dir := b.TempDir()
	opts := func(name, join string) procOpts {
		return procOpts{name: name, join: join, profile: profile, grace: grace, dataDir: filepath.Join(dir, name)}
	}
	n1 := startProcWith(b, opts("s1", ""))
	n1.waitUp(b)
	n2 := startProcWith(b, opts("s2", n1.gossip))
	n2.waitUp(b)
	vo := opts("victim", n1.gossip)
	vo.http, vo.gossip, vo.raft = freePort(b), freePort(b), freePort(b)
	survivors := []*proc{n1, n2}

	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		v := startProcWith(b, vo)
		v.waitUp(b)
		room := fmt.Sprintf("kill%d", i)
		for j := 0; j < sessions; j++ {
			body, _ := json.Marshal(map[string]any{"user": fmt.Sprintf("a%d-%d", i, j), "rooms": []map[string]string{{"room": room}}})
			if code, err := httpPost(v.base()+"/v1/agents", string(body)); err != nil || code != 201 {
				b.Fatalf("agent %d: %v %d", j, err, code)
			}
		}
		for _, p := range survivors {
			waitFor(b, 10*time.Second, p.name+" has the sessions", func() bool { return roomStates(b, p, room)["active"] == sessions })
		}
		b.StartTimer()
		killed := time.Now()
		_ = v.cmd.Process.Signal(syscall.SIGKILL)
		_ = v.cmd.Wait()
		for _, p := range survivors {
			waitFor(b, 10*time.Second, p.name+" shows all stale", func() bool { return roomStates(b, p, room)["stale"] == sessions })
		}
		took = append(took, time.Since(killed))
		b.StopTimer()
	}
	slices.Sort(took)
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99+99)/100-1]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// roomStates counts a room's members on node p by state.
func roomStates(t testing.TB, p *proc, room string) map[string]int {
	resp, err := httpClient.Get(p.base() + "/v1/rooms/" + room + "/members")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Members []struct {
			State string `json:"state"`
		} `json:"members"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("members of %s on %s: %v: %s", room, p.name, err, strings.TrimSpace(string(b)))
	}
	n := map[string]int{}
	for _, m := range body.Members {
		n[m.State]++
	}
	return n
}
