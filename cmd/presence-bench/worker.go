package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/gateway/client"
)

// A worker is a child process holding up to ~19.5k sessions (the machine
// allows 20,000 open files per process) from its own 127.0.x.y address (a
// source/destination address pair has ~28k ephemeral ports). The parent
// drives it with JSON commands on stdin and reads JSON reports on stdout.

type workerCmd struct {
	Cmd        string  `json:"cmd"` // "ops", "stop"
	EnterLeave float64 `json:"enter_leave"`
	Updates    float64 `json:"updates"`
	Typing     float64 `json:"typing"`
}

type workerReport struct {
	Kind      string           `json:"kind"` // "connected", "stats"
	Worker    string           `json:"worker"`
	Node      string           `json:"node"`
	N         int              `json:"n,omitempty"`
	Failed    int              `json:"failed,omitempty"`
	Secs      float64          `json:"secs,omitempty"`
	FirstErr  string           `json:"first_err,omitempty"`
	PingsUS   []int64          `json:"pings_us,omitempty"`
	Pairs     int64            `json:"pairs,omitempty"` // enter+leave pairs acknowledged
	Updates   int64            `json:"updates,omitempty"`
	Typing    int64            `json:"typing,omitempty"`
	OpErrors  int64            `json:"op_errors,omitempty"`  // answered with an error or timed out
	OpDropped int64            `json:"op_dropped,omitempty"` // not sent: the worker's queue was full (the node behind)
	OpErrWhy  map[string]int64 `json:"op_err_why,omitempty"` // op and error code (or timeout) → ops
	Lost      int64            `json:"lost,omitempty"`       // connections that ended
	Connected int64            `json:"connected,omitempty"`
	LostWhy   map[string]int64 `json:"lost_why,omitempty"`
}

type worker struct {
	name, node string
	sessions   []atomic.Pointer[client.Client] // nil until connected
	rooms      []string
	out        *json.Encoder
	outMu      sync.Mutex

	pingMu  sync.Mutex
	pings   []int64
	pairs   atomic.Int64
	updates atomic.Int64
	typing  atomic.Int64
	opErrs  atomic.Int64
	opDrops atomic.Int64
	errMu   sync.Mutex
	errWhy  map[string]int64 // since the last report
	lost    atomic.Int64
	lostMu  sync.Mutex
	lostWhy map[string]int64 // close code and reason → connections
}

func (w *worker) report(r workerReport) {
	r.Worker, r.Node = w.name, w.node
	w.outMu.Lock()
	_ = w.out.Encode(r)
	w.outMu.Unlock()
}

func runWorker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	url := fs.String("url", "", "node WebSocket URL")
	node := fs.String("node", "", "node name (for reports)")
	src := fs.String("src", "127.0.0.1", "local address to connect from")
	n := fs.Int("sessions", 1000, "sessions to hold")
	prefix := fs.String("prefix", "w", "user ID prefix")
	tabs := fs.Int("tabs", 2, "sessions per user")
	rooms := fs.Int("rooms", 100, "rooms (session i enters room i % rooms)")
	ping := fs.Duration("ping", 25*time.Second, "heartbeat interval of each session")
	conc := fs.Int("concurrency", 48, "connections opened at once")
	gogc := fs.Int("gogc", 400, "the worker's GC percent: the load generator's heap is not measured, and at Go's 100 clearing fresh pages for its allocations was 4 % of the machine in a perf profile of churn")
	_ = fs.Parse(args)
	debug.SetGCPercent(*gogc)

	w := &worker{name: *prefix, node: *node, out: json.NewEncoder(os.Stdout), lostWhy: map[string]int64{}}
	for i := 0; i < *rooms; i++ {
		w.rooms = append(w.rooms, fmt.Sprintf("r%03d", i))
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*src)}, Timeout: 10 * time.Second}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: -1, DisableKeepAlives: true}}

	// Heartbeats start with the first connection: the server closes a
	// connection silent for two intervals, and connecting all of them can
	// take longer than that.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.sessions = make([]atomic.Pointer[client.Client], *n)
	go w.heartbeats(ctx, *ping)

	// Connect.
	start := time.Now()
	var failed atomic.Int64
	var firstErr atomic.Value
	idx := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < *conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				c, err := w.open(hc, *url, fmt.Sprintf("%s-u%d", *prefix, i / *tabs), w.rooms[i%len(w.rooms)])
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				w.sessions[i].Store(c)
			}
		}()
	}
	for i := 0; i < *n; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	r := workerReport{Kind: "connected", N: *n - int(failed.Load()), Failed: int(failed.Load()), Secs: time.Since(start).Seconds()}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstErr = e
	}
	w.report(r)

	go w.reports(ctx)
	var stopOps []context.CancelFunc // the running ops loop's
	defer func() {
		for _, f := range stopOps {
			f()
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var cmd workerCmd
		if json.Unmarshal(sc.Bytes(), &cmd) != nil {
			continue
		}
		switch cmd.Cmd {
		case "ops":
			for _, f := range stopOps {
				f()
			}
			octx, stop := context.WithCancel(ctx)
			stopOps = []context.CancelFunc{stop}
			go w.ops(octx, cmd)
		case "stop":
			return nil
		}
	}
	return nil // the parent went away
}

func (w *worker) open(hc *http.Client, url, user, room string) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{User: user, NoAutoPing: true, EventBuffer: 1, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	if err := c.Enter(ctx, room, map[string]any{"v": 0}); err != nil {
		c.Drop()
		return nil, err
	}
	go func() {
		<-c.Done()
		w.lost.Add(1)
		why := fmt.Sprintf("%d %s", c.CloseStatus(), c.CloseReason())
		w.lostMu.Lock()
		w.lostWhy[why]++
		w.lostMu.Unlock()
	}()
	return c, nil
}

// heartbeats pings every session once per interval, spread evenly, and
// records round trips. A ping is never skipped: when the node answers slowly
// the schedule slips (the server closes a connection silent for two
// intervals, so a skipped ping could cost the session).
func (w *worker) heartbeats(ctx context.Context, every time.Duration) {
	const tick = 10 * time.Millisecond
	jobs := make(chan *client.Client, 4096)
	for g := 0; g < 256; g++ {
		go func() {
			for c := range jobs {
				t0 := time.Now()
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := c.Ping(pctx)
				cancel()
				if err == nil {
					w.pingMu.Lock()
					w.pings = append(w.pings, time.Since(t0).Microseconds())
					w.pingMu.Unlock()
				}
			}
		}()
	}
	defer close(jobs)
	t := time.NewTicker(tick)
	defer t.Stop()
	// The ring position follows the clock, not the ticks: a ticker drops
	// ticks when this goroutine is starved, and a ring that slowed down
	// would leave sessions silent past the server's limit.
	n := len(w.sessions)
	start := time.Now()
	done := 0 // slots handed out since start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(time.Since(start) * time.Duration(n) / every)
		for ; done < due; done++ {
			c := w.sessions[done%n].Load()
			if c == nil {
				continue
			}
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
		}
	}
}

// ops runs enter/leave pairs, data updates and typing at the given rates
// (per second, for this worker), on random sessions.
func (w *worker) ops(ctx context.Context, cmd workerCmd) {
	total := cmd.EnterLeave + cmd.Updates + cmd.Typing
	if total <= 0 || len(w.sessions) == 0 {
		return
	}
	// Each op waits for the node's answer (an enter+leave pair for two), so
	// the rate reached is at most opWorkers / round trip: 64 of them capped
	// churn at ~1k pairs/s per node once round trips grew to ~60 ms under
	// load, below what the node could do.
	const opWorkers = 512
	jobs := make(chan func(), 4096)
	for g := 0; g < opWorkers; g++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-jobs:
					f()
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	// The ops asked follow the clock, not the ticks (as the heartbeat ring
	// does): a ticker drops ticks when this goroutine is starved, and
	// counting ticks asked less than the rate given exactly when the
	// machine was busiest.
	start := time.Now()
	asked := 0 // ops handed out since start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(time.Since(start).Seconds() * total)
		for ; asked < due; asked++ {
			i := rng.IntN(len(w.sessions))
			c := w.sessions[i].Load()
			if c == nil {
				continue
			}
			room := w.rooms[i%len(w.rooms)]
			x := rng.Float64() * total
			var f func()
			switch {
			case x < cmd.EnterLeave:
				f = func() { w.enterLeave(ctx, c, room) }
			case x < cmd.EnterLeave+cmd.Updates:
				v := rng.IntN(1000) // drawn here: rng belongs to this goroutine
				f = func() {
					w.op(ctx, "update", &w.updates, func(octx context.Context) error { return c.Update(octx, room, map[string]any{"v": v}) })
				}
			default:
				f = func() {
					w.op(ctx, "typing", &w.typing, func(octx context.Context) error { return c.Typing(octx, room, true) })
				}
			}
			select {
			case jobs <- f:
			default:
				w.opDrops.Add(1) // more ops wanted than the node answers: counted, not queued
			}
		}
	}
}

func (w *worker) op(ctx context.Context, kind string, n *atomic.Int64, f func(context.Context) error) {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f(octx); err != nil {
		if ctx.Err() == nil {
			w.opFailed(kind, err)
		}
		return
	}
	n.Add(1)
}

func (w *worker) enterLeave(ctx context.Context, c *client.Client, room string) {
	if ctx.Err() != nil {
		return
	}
	// A pair once begun outlives the phase's end: a leave whose answer the
	// end cut short was done on the node but not followed by its enter,
	// which left ~240 sessions per node in no room for the phases after
	// this one.
	pctx := context.WithoutCancel(ctx)
	kind := func(op string) string {
		if ctx.Err() != nil {
			return op + " after the phase"
		}
		return op
	}
	lctx, cancel := context.WithTimeout(pctx, 5*time.Second)
	defer cancel()
	if err := c.Leave(lctx, room, nil); err != nil {
		// not_member: another pair of this session is between its leave
		// and its enter; this pair is given up, and counted by code.
		w.opFailed(kind("leave"), err)
		return
	}
	ectx, ecancel := context.WithTimeout(pctx, 5*time.Second)
	defer ecancel()
	if err := c.Enter(ectx, room, map[string]any{"v": 1}); err != nil {
		w.opFailed(kind("enter"), err) // the session is left in no room
		return
	}
	w.pairs.Add(1)
}

// opFailed counts an op the node answered with an error, or did not answer
// in time, by its kind and error code.
func (w *worker) opFailed(kind string, err error) {
	w.opErrs.Add(1)
	why := "other: " + err.Error()
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		why = ce.Code
	case errors.Is(err, context.DeadlineExceeded):
		why = "timeout"
	case errors.Is(err, client.ErrClosed):
		why = "closed"
	}
	why = kind + " " + why
	w.errMu.Lock()
	if w.errWhy == nil {
		w.errWhy = map[string]int64{}
	}
	if _, ok := w.errWhy[why]; !ok && len(w.errWhy) >= 8 {
		why = kind + " other"
	}
	w.errWhy[why]++
	w.errMu.Unlock()
}

func (w *worker) reports(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.pingMu.Lock()
		p := w.pings
		w.pings = nil
		w.pingMu.Unlock()
		live := int64(0)
		for i := range w.sessions {
			if w.sessions[i].Load() != nil {
				live++
			}
		}
		w.lostMu.Lock()
		why := maps.Clone(w.lostWhy)
		w.lostMu.Unlock()
		w.report(workerReport{Kind: "stats", PingsUS: p, LostWhy: why, Pairs: w.pairs.Swap(0), Updates: w.updates.Swap(0),
			Typing: w.typing.Swap(0), OpErrors: w.opErrs.Swap(0), OpDropped: w.opDrops.Swap(0), OpErrWhy: w.takeErrWhy(), Lost: w.lost.Load(), Connected: live - w.lost.Load()})
	}
}

func (w *worker) takeErrWhy() map[string]int64 {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	m := w.errWhy
	w.errWhy = nil
	return m
}
