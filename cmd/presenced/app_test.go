package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/gateway"
	"github.com/presenced/presenced/gateway/client"
)

func TestMain(m *testing.M) {
	// The multi-process tests run this test binary as presenced nodes.
	if os.Getenv("PRESENCED_AS_NODE") == "1" {
		main()
		os.Exit(0)
	}
	// memberlist's Shutdown does not wait for a probe in flight (see
	// cluster/main_test.go): it ends by itself once its ack times out.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).sendPingAndWaitForAck"))
}

func testConfig(t *testing.T, dir string) Config {
	cfg, err := LoadConfig([]string{"--listen", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--gossip-profile", "local", "--data-dir", dir, "--node-name", "t1"},
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startNode runs a whole node (raft, engine, gateway) and returns its HTTP
// address and a stop function that waits for Run to return.
func startNode(t *testing.T, cfg Config) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t), ready) }()
	select {
	case addr := <-ready:
		var once sync.Once
		var err error
		stop := func() error { once.Do(func() { cancel(); err = <-done }); return err }
		t.Cleanup(func() { _ = stop() })
		return addr, stop
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("node did not start")
	}
	return "", nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func put(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(t, base+"/readyz"); code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeEndToEnd: a whole node serves health, takes room metadata through
// raft, applies it to sessions, drains clients with 1012 on shutdown, and
// keeps the metadata across a restart.
func TestNodeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	addr, stop := startNode(t, cfg)
	base := "http://" + addr
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	waitReady(t, base)
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `presenced_cluster_members{state="alive"} 1`) ||
		!strings.Contains(body, "presenced_raft_leader 1") || !strings.Contains(body, "presenced_cluster_deltas_sent_total") {
		t.Fatalf("metrics lack cluster or raft series")
	}
	if code, body := put(t, base+"/v1/rooms/small/meta", `{"max_members":1,"metadata":{"title":"Small"}}`); code != 200 || !strings.Contains(body, `"max_members":1`) {
		t.Fatalf("put meta %d %s", code, body)
	}
	if code, body := put(t, base+"/v1/rooms/small/meta", `{"max_members":-1}`); code != 400 {
		t.Fatalf("invalid meta accepted: %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/rooms/small/meta?consistent=true"); code != 200 || !strings.Contains(body, `"title":"Small"`) {
		t.Fatalf("consistent read %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/rooms/nothing/meta?consistent=true"); code != 404 {
		t.Fatalf("consistent read of a missing room %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := "ws://" + addr + "/v1/ws"
	a, err := client.Dial(ctx, ws, client.Options{User: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Dial(ctx, ws, client.Options{User: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enter(ctx, "small", nil); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if err := b.Enter(ctx, "small", nil); !errors.As(err, &ce) || ce.Code != string(gateway.CodeRoomFull) {
		t.Fatalf("max_members not applied: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if a.CloseStatus() != gateway.CloseServiceRestart {
		t.Fatalf("client closed with %d, want 1012", a.CloseStatus())
	}
	b.Drop()

	// Restart on the same data dir: the metadata is still there.
	addr, _ = startNode(t, cfg)
	base = "http://" + addr
	waitReady(t, base)
	if code, body := get(t, base+"/v1/rooms/small/meta"); code != 200 || !strings.Contains(body, `"title":"Small"`) {
		t.Fatalf("meta after restart %d %s", code, body)
	}
}

func TestOpenModeRefusesNonLoopback(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Listen = "0.0.0.0:0"
	err := Run(context.Background(), cfg, zaptest.NewLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), "--allow-open") {
		t.Fatalf("open mode on 0.0.0.0: %v", err)
	}
}

func TestIncarnationAlwaysGrows(t *testing.T) {
	dir := t.TempDir()
	future := uint64(time.Now().Add(time.Hour).UnixMilli()) // the last boot ran with a clock an hour ahead
	if err := os.WriteFile(filepath.Join(dir, "incarnation"), []byte(strconv.FormatUint(future, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	inc, err := nextIncarnation(dir)
	if err != nil || inc != future+1 {
		t.Fatalf("incarnation %d, %v; want %d", inc, err, future+1)
	}
	again, _ := nextIncarnation(dir)
	if again <= inc {
		t.Fatalf("second boot %d not above %d", again, inc)
	}
}
