package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// node is one presenced process started by the benchmark, on loopback.
type node struct {
	name                  string
	http, gossip, raftAdr string
	cmd                   *exec.Cmd
	log                   *os.File
}

func (n *node) base() string { return "http://" + n.http }
func (n *node) ws() string   { return "ws://" + n.http + "/v1/ws" }
func (n *node) pid() int     { return n.cmd.Process.Pid }

func freeAddr(ip string) string {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNodes starts count nodes that form one cluster and waits until every
// one is ready. Node i listens on 127.0.0.(i+1), so each has its own
// 28k-port range per client address. procs > 0 is each node's GOMAXPROCS.
func startNodes(bin, dir string, count int, extra []string, procs int) ([]*node, error) {
	var nodes []*node
	for i := 1; i <= count; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		nodes = append(nodes, &node{name: fmt.Sprintf("b%d", i), http: freeAddr(ip), gossip: freeAddr(ip), raftAdr: freeAddr(ip)})
	}
	for i, n := range nodes {
		args := []string{"--node-name", n.name, "--listen", n.http, "--gossip-addr", n.gossip, "--raft-addr", n.raftAdr,
			"--data-dir", filepath.Join(dir, n.name), "--log-level", "warn"}
		if i > 0 {
			args = append(args, "--join", nodes[0].gossip)
		}
		args = append(args, extra...)
		f, err := os.Create(filepath.Join(dir, n.name+".log"))
		if err != nil {
			return nodes, err
		}
		n.log = f
		n.cmd = exec.Command(bin, args...)
		n.cmd.Stdout, n.cmd.Stderr = f, f
		if procs > 0 {
			n.cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", procs))
		}
		if err := n.cmd.Start(); err != nil {
			return nodes, fmt.Errorf("start %s: %w", bin, err)
		}
		go func() { _ = n.cmd.Wait() }()
		if i == 0 { // the others join it
			if err := waitReady(n, 30*time.Second); err != nil {
				return nodes, err
			}
		}
	}
	for _, n := range nodes {
		if err := waitReady(n, 30*time.Second); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

func waitReady(n *node, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(n.base() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The log goes with the run's directory (without --keep): its end is
	// in the error.
	return fmt.Errorf("node %s not ready after %v; the end of its log:\n%s", n.name, within, logTail(n.log.Name(), 2000))
}

// logTail is the last size bytes of the file at path.
func logTail(path string, size int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b[len(b)-min(len(b), size):])
}

func stopNodes(nodes []*node) {
	for _, n := range nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && syscall.Kill(n.pid(), 0) == nil {
				time.Sleep(20 * time.Millisecond)
			}
			_ = n.cmd.Process.Kill()
		}
		if n.log != nil {
			n.log.Close()
		}
	}
}

// procStat is a process's resident memory and CPU time so far.
type procStat struct {
	rss uint64        // bytes
	cpu time.Duration // user + system
}

// readProc reads /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (utime,
// stime in clock ticks of 1/100 s on Linux).
func readProc(pid int) (procStat, error) {
	var ps procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			ps.rss = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return ps, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	ps.cpu = time.Duration(ut+st) * 10 * time.Millisecond
	return ps, nil
}

// settleCores: the nodes together use less than this (in cores, over one
// second) when nothing but the idle sessions' heartbeats keeps them busy
// (0.15–0.2 cores each with 19.5k sessions).
const settleCores = 1.0

// settle waits until the nodes' CPU use over one second falls below
// settleCores, or max passes; it reports whether they settled and how long
// it took.
func settle(ctx context.Context, nodes []*node, max time.Duration) (bool, time.Duration) {
	start := time.Now()
	for time.Since(start) < max && ctx.Err() == nil {
		before := map[*node]time.Duration{}
		for _, n := range nodes {
			if ps, err := readProc(n.pid()); err == nil {
				before[n] = ps.cpu
			}
		}
		t0 := time.Now()
		sleepCtx(ctx, time.Second)
		var used time.Duration
		for _, n := range nodes {
			b, ok := before[n]
			if ps, err := readProc(n.pid()); err == nil && ok {
				used += ps.cpu - b
			}
		}
		if used.Seconds()/time.Since(t0).Seconds() < settleCores {
			return true, time.Since(start)
		}
	}
	return false, time.Since(start)
}
