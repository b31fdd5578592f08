package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// proc is a presenced node running as a separate process (this test binary
// re-executed as main).
type proc struct {
	name, http, gossip string
	cmd                *exec.Cmd
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProc(t testing.TB, name string, grace time.Duration, join string) *proc {
	t.Helper()
	return startProcWith(t, procOpts{name: name, grace: grace, join: join, profile: "local", dataDir: filepath.Join(t.TempDir(), name)})
}

// procOpts says how to run a node process; a restart reuses name, ports and
// data dir, as an operator's restart would.
type procOpts struct {
	name, join, profile, dataDir string
	http, gossip, raft           string // "" picks free ports
	grace                        time.Duration
	args                         []string // more flags
}

func startProcWith(t testing.TB, o procOpts) *proc {
	t.Helper()
	for _, a := range []*string{&o.http, &o.gossip, &o.raft} {
		if *a == "" {
			*a = freePort(t)
		}
	}
	p := &proc{name: o.name, http: o.http, gossip: o.gossip}
	args := []string{"--node-name", o.name, "--listen", o.http, "--raft-addr", o.raft, "--gossip-addr", o.gossip,
		"--gossip-profile", o.profile, "--data-dir", o.dataDir, "--session-grace", o.grace.String(),
		"--log-level", "warn"}
	if o.join != "" {
		args = append(args, "--join", o.join)
	}
	args = append(args, o.args...)
	name := o.name
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), "PRESENCED_AS_NODE=1")
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		logf.Close()
		b, _ := os.ReadFile(logf.Name())
		if strings.Contains(string(b), "DATA RACE") || strings.Contains(string(b), "panic:") {
			t.Errorf("%s: race or panic in the node process", name)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return p
}

func (p *proc) base() string { return "http://" + p.http }

// waitUp polls /readyz (the process may not be listening yet).
func (p *proc) waitUp(t testing.TB) {
	t.Helper()
	waitFor(t, 20*time.Second, p.name+" ready", func() bool {
		resp, err := httpClient.Get(p.base() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// Three nodes as separate processes: a user connected to node 1 is seen by
// subscribers on nodes 2 and 3 within 100 ms, every node answers the same,
// and after kill -9 of the node holding 200 sessions every survivor shows
// them stale within 2 s and gone after grace.
func TestThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const grace = 2 * time.Second
	n1 := startProc(t, "p1", grace, "")
	n1.waitUp(t)
	n2 := startProc(t, "p2", grace, n1.gossip)
	n3 := startProc(t, "p3", grace, n1.gossip)
	procs := []*proc{n1, n2, n3}
	for _, p := range procs[1:] {
		p.waitUp(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var subs []*client.Client
	for _, p := range []*proc{n2, n3} {
		c, err := client.Dial(ctx, "ws://"+p.http+"/v1/ws", client.Options{User: "watcher-" + p.name})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Drop()
		if _, err := c.Subscribe(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, c)
	}
	alice, err := client.Dial(ctx, "ws://"+n1.http+"/v1/ws", client.Options{User: "alice", Location: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Drop()
	start := time.Now()
	if err := alice.Enter(ctx, "lobby", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	for i, c := range subs {
		select {
		case ev := <-c.Events():
			if ev.Type != session.EventEnter || ev.User != "alice" {
				t.Fatalf("first event on %s: %+v", procs[i+1].name, ev)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Fatalf("enter reached %s after %v (> 100 ms)", procs[i+1].name, d)
			} else {
				t.Logf("enter on p1 seen by a subscriber on %s after %v", procs[i+1].name, d)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no enter on %s", procs[i+1].name)
		}
	}
	// Every node answers the same.
	for _, path := range []string{"/v1/rooms/lobby/users", "/v1/rooms/lobby/counts", "/v1/users/alice/rooms", "/api/presence?userIds=alice,bob"} {
		var first string
		for _, p := range procs {
			code, body := get(t, p.base()+path)
			body = stripVolatile(body)
			if code != 200 {
				t.Fatalf("%s %s: %d", p.name, path, code)
			}
			if first == "" {
				first = body
			} else if body != first {
				t.Fatalf("%s differs on %s:\n%s\nvs\n%s", path, p.name, body, first)
			}
		}
	}
	// 200 agent sessions on p3, then kill -9 p3.
	for i := 0; i < 200; i++ {
		req, _ := json.Marshal(map[string]any{"user": fmt.Sprintf("agent%d", i), "rooms": []map[string]string{{"room": "lobby"}}})
		resp, err := httpPost(n3.base()+"/v1/agents", string(req))
		if err != nil || resp != 201 {
			t.Fatalf("agent %d: %v %d", i, err, resp)
		}
	}
	for _, p := range []*proc{n1, n2} {
		waitFor(t, 5*time.Second, p.name+" has the 200 agents", func() bool {
			_, body := get(t, p.base()+"/v1/rooms/lobby/counts")
			return strings.Contains(body, `"online":{"connections":201,`)
		})
	}
	killed := time.Now()
	_ = n3.cmd.Process.Signal(syscall.SIGKILL)
	for _, p := range []*proc{n1, n2} {
		waitFor(t, 2*time.Second, p.name+" shows p3's sessions stale", func() bool {
			_, body := get(t, p.base()+"/v1/users/agent199")
			return strings.Contains(body, `"state":"stale"`)
		})
	}
	t.Logf("kill -9 → stale on both survivors after %v", time.Since(killed))
	for _, p := range []*proc{n1, n2} {
		waitFor(t, grace+3*time.Second, p.name+" drops them after grace", func() bool {
			_, body := get(t, p.base()+"/v1/rooms/lobby/counts")
			return strings.Contains(body, `"online":{"connections":1,`)
		})
	}
	t.Logf("kill -9 → gone on both survivors after %v (grace %v)", time.Since(killed), grace)
}

// stripVolatile removes fields that legitimately differ between nodes (per-node
// event versions, read times).
func stripVolatile(body string) string {
	var v any
	if json.Unmarshal([]byte(body), &v) != nil {
		return body
	}
	var walk func(any)
	walk = func(x any) {
		switch m := x.(type) {
		case map[string]any:
			delete(m, "version")
			delete(m, "lastSeen")
			delete(m, "last_seen")
			for _, y := range m {
				walk(y)
			}
		case []any:
			for _, y := range m {
				walk(y)
			}
		}
	}
	walk(v)
	b, _ := json.Marshal(v)
	return string(b)
}

func httpPost(url, body string) (int, error) {
	resp, err := httpClient.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
