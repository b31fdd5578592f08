package cluster

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestMain fails the package if any test leaves a goroutine behind: raft
// shuts down cleanly, so no raft goroutine is ignored. One memberlist
// goroutine is: Shutdown does not wait for a probe in flight, which sits in
// probeNode until its ack times out (up to the probe interval) and then
// ends by itself (seen once in CI, at the end of the package's run).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).sendPingAndWaitForAck"))
}

// scaled stretches a test deadline under the race detector, which slows
// raft's goroutines several times over.
func scaled(d time.Duration) time.Duration {
	if raceEnabled {
		return 5 * d
	}
	return d
}

// waitFor polls cond until it holds or the (scaled) deadline passes.
func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(scaled(within))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", scaled(within), what)
		}
		<-tick.C
	}
}

// testConfig is a single bootstrapping node with fast timings on an
// in-memory transport, logging to t.
func testConfig(t testing.TB, dir string) MetaConfig {
	return MetaConfig{
		DataDir:   dir,
		NodeID:    "node-1",
		Bootstrap: true,
		Logger:    zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
		Timing:    TimingLocal,
	}
}

// openReady opens cfg, waits until it is ready and closes it when t ends.
func openReady(t testing.TB, cfg MetaConfig) *Meta {
	t.Helper()
	s, err := OpenMeta(cfg)
	if err != nil {
		t.Fatalf("OpenMeta: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return s
}
