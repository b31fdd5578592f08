package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one presenced process of the cluster under test.
type node struct {
	idx               int
	name              string
	ip                string // its address; in a network namespace, its own
	ns                string // network namespace, "" when run on loopback
	http, gossip, raf string
	dataDir, logPath  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	frozen  bool
	running bool
}

func (n *node) base() string { return "http://" + n.http }

// nodeSet runs the nodes. With netns, each node lives in its own network
// namespace linked to the root namespace by a veth pair, and the root
// namespace routes between them; a partition adds blackhole policy rules
// for the traffic between two groups, a real cut that leaves the clients
// (in the root namespace) connected to every node.
type nodeSet struct {
	bin     string
	dir     string
	nodes   []*node
	netns   bool
	netID   int
	args    []string // extra flags for every node
	rulesMu sync.Mutex
	rules   [][2]string // from, to
	logf    func(format string, args ...any)
}

func newNodeSet(bin, dir string, count int, wantNetns bool, extra []string, logf func(string, ...any)) (*nodeSet, error) {
	s := &nodeSet{bin: bin, dir: dir, args: extra, logf: logf, netID: 100 + os.Getpid()%100}
	if wantNetns {
		if err := s.setupNetns(count); err != nil {
			s.teardownNetns(count)
			logf("network namespaces unavailable (%v): nodes run on loopback and partitions are skipped", err)
		} else {
			s.netns = true
		}
	}
	for i := 1; i <= count; i++ {
		n := &node{idx: i, name: fmt.Sprintf("c%d", i), dataDir: filepath.Join(dir, fmt.Sprintf("c%d", i)),
			logPath: filepath.Join(dir, fmt.Sprintf("c%d.log", i))}
		if s.netns {
			n.ip, n.ns = s.nodeIP(i), s.nsName(i)
			n.http, n.gossip, n.raf = n.ip+":7070", n.ip+":7946", n.ip+":7071"
		} else {
			n.ip = "127.0.0.1"
			n.http, n.gossip, n.raf = freeAddr(), freeAddr(), freeAddr()
		}
		s.nodes = append(s.nodes, n)
	}
	return s, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *nodeSet) nsName(i int) string    { return fmt.Sprintf("pc%dn%d", s.netID, i) }
func (s *nodeSet) vethName(i int) string  { return fmt.Sprintf("pc%dv%d", s.netID, i) }
func (s *nodeSet) nodeIP(i int) string    { return fmt.Sprintf("10.%d.%d.2", s.netID, i) }
func (s *nodeSet) gatewayIP(i int) string { return fmt.Sprintf("10.%d.%d.1", s.netID, i) }
func runQuiet(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %v: %s", args, err, out)
	}
	return nil
}

func (s *nodeSet) setupNetns(count int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if err := runQuiet("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	for i := 1; i <= count; i++ {
		ns, veth := s.nsName(i), s.vethName(i)
		_ = runQuiet("ip", "netns", "del", ns) // a leftover of a crashed run
		for _, cmd := range [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "addr", "add", s.gatewayIP(i) + "/24", "dev", veth},
			{"ip", "link", "set", veth, "up"},
			{"ip", "-n", ns, "addr", "add", s.nodeIP(i) + "/24", "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "route", "add", "default", "via", s.gatewayIP(i)},
		} {
			if err := runQuiet(cmd...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *nodeSet) teardownNetns(count int) {
	s.heal()
	for i := 1; i <= count; i++ {
		_ = runQuiet("ip", "netns", "del", s.nsName(i))
		_ = runQuiet("ip", "link", "del", s.vethName(i))
	}
}

// partition cuts every link between group a and group b, both ways.
func (s *nodeSet) partition(a, b []*node) error {
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	for _, x := range a {
		for _, y := range b {
			for _, r := range [][2]string{{x.ip, y.ip}, {y.ip, x.ip}} {
				if err := runQuiet("ip", "rule", "add", "from", r[0], "to", r[1], "blackhole"); err != nil {
					return err
				}
				s.rules = append(s.rules, r)
			}
		}
	}
	return nil
}

func (s *nodeSet) heal() {
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	for _, r := range s.rules {
		if err := runQuiet("ip", "rule", "del", "from", r[0], "to", r[1], "blackhole"); err != nil {
			s.logf("heal: %v", err)
		}
	}
	s.rules = nil
}

// start runs node n, joining the given peers.
func (s *nodeSet) start(n *node, join []string) error {
	args := []string{"--node-name", n.name, "--listen", n.http, "--raft-addr", n.raf, "--gossip-addr", n.gossip,
		"--data-dir", n.dataDir}
	for _, j := range join {
		args = append(args, "--join", j)
	}
	args = append(args, s.args...)
	var cmd *exec.Cmd
	if n.ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.ns, s.bin}, args...)...)
	} else {
		cmd = exec.Command(s.bin, args...)
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		n.mu.Lock()
		if n.cmd == cmd {
			n.running = false
		}
		n.mu.Unlock()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited, n.running, n.frozen = cmd, exited, true, false
	n.mu.Unlock()
	return nil
}

func (s *nodeSet) peersOf(n *node) []string {
	var out []string
	for _, m := range s.nodes {
		if m != n {
			out = append(out, m.gossip)
		}
	}
	return out
}

// signal sends sig to n's process and, for a kill or stop, waits for it to exit.
func (n *node) signal(sig syscall.Signal, wait bool) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	switch sig {
	case syscall.SIGSTOP:
		n.frozen = true
	case syscall.SIGCONT:
		n.frozen = false
	}
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if wait {
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		n.mu.Lock()
		n.running = false
		n.mu.Unlock()
	}
}

func (n *node) isFrozen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frozen
}

func (n *node) isRunning() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

var probe = &http.Client{Timeout: 500 * time.Millisecond}

// ready reports whether n answers /readyz with 200.
func (n *node) ready() bool {
	if n.isFrozen() || !n.isRunning() {
		return false
	}
	resp, err := probe.Get(n.base() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (n *node) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for !n.ready() {
		if !n.isRunning() {
			return fmt.Errorf("%s exited (log %s)", n.name, n.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v (log %s)", n.name, within, n.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// isLeader reads the node's raft leader gauge.
func (n *node) isLeader() bool {
	resp, err := probe.Get(n.base() + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains("\n"+string(b), "\npresenced_raft_leader 1\n")
}
