package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// fleet is the worker processes holding the idle sessions.
type fleet struct {
	mu        sync.Mutex
	procs     []*workerProc
	connected []workerReport
	pings     samples
	ops       opCounts         // since the last take
	live      map[string]int64 // worker → sessions still connected
	lost      map[string]int64
	lostWhy   map[string]map[string]int64 // worker → close code and reason → connections
}

type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	node  string
	name  string // its user prefix, which names it in reports
}

// startFleet starts one worker per maxPerWorker sessions of each node, each
// from its own source address.
func startFleet(nodes []*node, perNode, maxPerWorker, rooms int, ping time.Duration, nice, procs int, progress func(string, ...any)) (*fleet, error) {
	f := &fleet{ops: newOpCounts(), live: map[string]int64{}, lost: map[string]int64{}, lostWhy: map[string]map[string]int64{}}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	w := 0
	for _, n := range nodes {
		for left := perNode; left > 0; left -= maxPerWorker {
			count := min(left, maxPerWorker)
			w++
			args := []string{"worker", "--url", n.ws(), "--node", n.name, "--src", fmt.Sprintf("127.0.%d.%d", 1+w/250, 1+w%250),
				"--sessions", fmt.Sprint(count), "--prefix", fmt.Sprintf("%s-w%d", n.name, w), "--rooms", fmt.Sprint(rooms), "--ping", ping.String()}
			cmd := exec.Command(self, args...)
			if nice != 0 {
				// Through nice(1): every thread of the worker's runtime inherits it.
				cmd = exec.Command("nice", append([]string{"-n", fmt.Sprint(nice), self}, args...)...)
			}
			if procs > 0 {
				cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", procs))
			}
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				return f, err
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				return f, err
			}
			if err := cmd.Start(); err != nil {
				return f, err
			}
			f.procs = append(f.procs, &workerProc{cmd: cmd, stdin: stdin, node: n.name, name: fmt.Sprintf("%s-w%d", n.name, w)})
			go f.read(stdout)
		}
	}
	// Wait for every worker's "connected" report.
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastNote := start
	for range tick.C {
		f.mu.Lock()
		done := len(f.connected)
		f.mu.Unlock()
		if done == len(f.procs) {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return f, fmt.Errorf("workers still connecting after 5 minutes (%d of %d done)", done, len(f.procs))
		}
		if time.Since(lastNote) >= 5*time.Second {
			lastNote = time.Now()
			progress("connecting: %d of %d workers done, %.0fs", done, len(f.procs), time.Since(start).Seconds())
		}
	}
	return f, nil
}

func (f *fleet) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var rep workerReport
		if json.Unmarshal(sc.Bytes(), &rep) != nil {
			continue
		}
		f.mu.Lock()
		switch rep.Kind {
		case "connected":
			f.connected = append(f.connected, rep)
		case "stats":
			for _, us := range rep.PingsUS {
				f.pings.add(time.Duration(us) * time.Microsecond)
			}
			f.ops.add(rep)
			f.live[rep.Worker] = rep.Connected
			f.lost[rep.Worker] = rep.Lost
			f.lostWhy[rep.Worker] = rep.LostWhy
		}
		f.mu.Unlock()
	}
}

// send gives every worker of node (all when "") a command.
func (f *fleet) send(node string, cmd workerCmd) {
	b, _ := json.Marshal(cmd)
	for _, p := range f.procs {
		if node == "" || p.node == node {
			_, _ = p.stdin.Write(append(b, '\n'))
		}
	}
}

func (f *fleet) workersOf(node string) int {
	n := 0
	for _, p := range f.procs {
		if p.node == node {
			n++
		}
	}
	return n
}

// opCounts are the workers' ops (enter+leave pairs, updates, typing) over
// some time.
type opCounts struct {
	pairs           map[string]int64 // node → enter+leave pairs acknowledged
	updates, typing int64
	errors          int64            // answered with an error, or not in time
	dropped         int64            // not sent: a worker's queue was full
	why             map[string]int64 // op and error code (or timeout) → ops
}

func newOpCounts() opCounts {
	return opCounts{pairs: map[string]int64{}, why: map[string]int64{}}
}

func (o *opCounts) add(rep workerReport) {
	o.merge(opCounts{pairs: map[string]int64{rep.Node: rep.Pairs}, updates: rep.Updates, typing: rep.Typing,
		errors: rep.OpErrors, dropped: rep.OpDropped, why: rep.OpErrWhy})
}

func (o *opCounts) merge(x opCounts) {
	for k, v := range x.pairs {
		o.pairs[k] += v
	}
	o.updates += x.updates
	o.typing += x.typing
	o.errors += x.errors
	o.dropped += x.dropped
	for k, v := range x.why {
		o.why[k] += v
	}
}

// take returns and resets the op counters.
func (f *fleet) take() opCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.ops
	f.ops = newOpCounts()
	return o
}

// stop ends every worker and returns how those that failed ended.
func (f *fleet) stop() []string {
	f.send("", workerCmd{Cmd: "stop"})
	var failed []string
	for i, p := range f.procs {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				failed = append(failed, fmt.Sprintf("worker %d (node %s) exited: %v", i+1, p.node, err))
			}
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			failed = append(failed, fmt.Sprintf("worker %d (node %s) did not stop", i+1, p.node))
		}
	}
	return failed
}

// totalLost is how many of the workers' connections have ended, and why.
func (f *fleet) totalLost() (int64, map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, v := range f.lost {
		n += v
	}
	why := map[string]int64{}
	for _, m := range f.lostWhy {
		for k, v := range m {
			why[k] += v
		}
	}
	return n, why
}

// liveOn is how many sessions the workers of node still hold connected.
func (f *fleet) liveOn(node string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(0)
	for _, p := range f.procs {
		if p.node == node {
			n += f.live[p.name]
		}
	}
	return int(n)
}
