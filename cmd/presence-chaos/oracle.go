package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/session"
)

// bounds are the oracle's documented tolerances.
type bounds struct {
	Ghost        time.Duration // a session or user still shown this long after its last connection ended is a ghost
	FalseOffline time.Duration // a user connected this long and shown offline is a false offline
	Converge     time.Duration // nodes may disagree on a member this long
	Unknown      time.Duration // a listed session the driver has not been told of yet
}

// violations collects what the oracle found, by kind, with the first examples.
type violations struct {
	mu       sync.Mutex
	start    time.Time
	count    map[string]int
	examples map[string][]string
	last     string
}

func newViolations(start time.Time) *violations {
	return &violations{start: start, count: map[string]int{}, examples: map[string][]string{}}
}

func (v *violations) add(kind, example string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.count[kind]++
	v.last = fmt.Sprintf("t=%.1fs %s: %s", time.Since(v.start).Seconds(), kind, example)
	if len(v.examples[kind]) < 3 {
		v.examples[kind] = append(v.examples[kind], fmt.Sprintf("t=%.1fs %s", time.Since(v.start).Seconds(), example))
	}
}

// brief is "kind=count …" with the latest example, for progress lines.
func (v *violations) brief() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := ""
	for k, c := range v.count {
		out += fmt.Sprintf(" %s=%d", k, c)
	}
	if v.last != "" {
		out += "; latest: " + v.last
	}
	return out
}

func (v *violations) total() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, c := range v.count {
		n += c
	}
	return n
}

// oracle samples every ready node's answers and compares them with the
// ground truth and with each other.
type oracle struct {
	nodes  []*node
	lb     *balancer
	tr     *truth
	rooms  []string
	users  []string
	b      bounds
	v      *violations
	faults *faultLog

	samples  atomic.Int64 // node answers compared
	unknown  map[string]time.Time
	diverged map[string]time.Time // room/session → first seen disagreeing
	divHist  map[string][]string  // room/session → the rounds since then (latest few)
	reported map[string]bool
}

var api = &http.Client{Timeout: time.Second}

func getJSON(u string, out any) error {
	resp, err := api.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

type membersBody struct {
	Version uint64           `json:"version"`
	Members []session.Member `json:"members"`
}

// nodeView is one node's answers in one sampling round.
type nodeView struct {
	n       *node
	members map[string]map[string]session.State // room → session → state
}

// readiness keeps the balancer's ready set current.
func (o *oracle) readiness(ctx context.Context) {
	for ctx.Err() == nil {
		var ready []*node
		for _, n := range o.nodes {
			if n.ready() {
				ready = append(ready, n)
			}
		}
		o.lb.set(ready)
		sleepCtx(ctx, 250*time.Millisecond)
	}
}

func (o *oracle) run(ctx context.Context, every time.Duration) {
	o.unknown, o.diverged, o.reported = map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}
	o.divHist = map[string][]string{}
	for sleepCtx(ctx, every) {
		o.round()
	}
}

// round samples every ready node once. Each room (and each batch of users)
// is read from every node at the same moment, in parallel: read one node
// after another, a round takes seconds on a loaded machine, and a member
// that changed in between would look like nodes disagreeing.
func (o *oracle) round() {
	nodes := o.lb.snapshot()
	views := make([]nodeView, len(nodes))
	alive := make([]bool, len(nodes))
	for i, n := range nodes {
		views[i] = nodeView{n: n, members: map[string]map[string]session.State{}}
		alive[i] = true
	}
	for _, room := range o.rooms {
		got := fetchAll(nodes, alive, func(n *node) (roomSample, error) { return fetchRoom(n, room) })
		for i, r := range got {
			if alive[i] = alive[i] && r.err == nil; alive[i] {
				views[i].members[room] = o.checkRoom(nodes[i], room, r.v)
			}
		}
	}
	for i := 0; i < len(o.users); i += 100 {
		ids := o.users[i:min(i+100, len(o.users))]
		got := fetchAll(nodes, alive, func(n *node) (map[string]session.UserPresence, error) { return fetchUsers(n, ids) })
		for j, r := range got {
			if alive[j] = alive[j] && r.err == nil; alive[j] {
				o.checkUsers(nodes[j], ids, r.v)
			}
		}
	}
	var ok []nodeView
	for i, v := range views {
		if alive[i] { // a node that went away mid-round is left out
			ok = append(ok, v)
		}
	}
	o.compare(ok, time.Now())
}

// result is one node's answer to a parallel fetch.
type result[T any] struct {
	v   T
	err error
}

// fetchAll runs fetch on every node still alive in this round, in parallel.
func fetchAll[T any](nodes []*node, alive []bool, fetch func(*node) (T, error)) []result[T] {
	out := make([]result[T], len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if !alive[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := fetch(n)
			out[i] = result[T]{v, err}
		}()
	}
	wg.Wait()
	return out
}

// roomSample is one node's listing and counts of one room.
type roomSample struct {
	mb     membersBody
	counts session.Counts
	at     time.Time
}

func fetchRoom(n *node, room string) (roomSample, error) {
	var r roomSample
	if err := getJSON(n.base()+"/v1/rooms/"+room+"/members", &r.mb); err != nil {
		return r, err
	}
	if err := getJSON(n.base()+"/v1/rooms/"+room+"/counts", &r.counts); err != nil {
		return r, err
	}
	r.at = time.Now()
	return r, nil
}

func fetchUsers(n *node, ids []string) (map[string]session.UserPresence, error) {
	var batch struct {
		Users map[string]session.UserPresence `json:"users"`
	}
	err := getJSON(n.base()+"/v1/users?ids="+url.QueryEscape(strings.Join(ids, ",")), &batch)
	return batch.Users, err
}

// checkRoom checks one node's listing of a room against the truth and
// returns its members' states.
func (o *oracle) checkRoom(n *node, room string, r roomSample) map[string]session.State {
	now := r.at
	o.samples.Add(1)
	states := map[string]session.State{}
	for _, m := range r.mb.Members {
		states[m.Session] = m.State
		o.checkListed(n, room, m, now)
	}
	if r.counts.Version == r.mb.Version {
		o.checkCounts(n, room, r.mb, r.counts)
	}
	if !o.faults.exempt(now, o.b) {
		for _, s := range o.tr.liveInRoom(room, now.Add(-o.b.FalseOffline)) {
			if _, ok := states[s.id]; !ok {
				o.v.add("false_offline", fmt.Sprintf("%s room %s: session %s of %s connected %.1fs, in the room %.1fs, not listed (driver: %s) %s",
					n.name, room, short(s.id), s.user, now.Sub(s.since).Seconds(), now.Sub(s.enteredAt).Seconds(), o.tr.history(s.id), debugOf(n, s.id, room)))
			}
		}
	}
	return states
}

// checkUsers checks one node's user batch against the truth.
func (o *oracle) checkUsers(n *node, ids []string, users map[string]session.UserPresence) {
	now := time.Now()
	o.samples.Add(1)
	exempt := o.faults.exempt(now, o.b)
	for _, u := range ids {
		p := users[u]
		since, last := o.tr.userState(u, now)
		switch {
		case p.State != session.Offline && p.State != "" && !last.IsZero() && now.Sub(last) > o.b.Ghost:
			o.v.add("ghost", fmt.Sprintf("%s: user %s shown %s, %.1fs after their last connection ended", n.name, u, p.State, now.Sub(last).Seconds()))
		case p.State != session.Offline && p.State != "" && last.IsZero() && now.Sub(o.v.start) > o.b.Ghost:
			o.v.add("ghost", fmt.Sprintf("%s: user %s shown %s but never connected", n.name, u, p.State))
		case (p.State == session.Offline || p.State == "") && !since.IsZero() && now.Sub(since) > o.b.FalseOffline && !exempt:
			o.v.add("false_offline", fmt.Sprintf("%s: user %s shown offline, connected for %.1fs", n.name, u, now.Sub(since).Seconds()))
		}
	}
}

// checkListed: a listed member must be a session whose connection is live,
// or ended less than the ghost bound ago.
func (o *oracle) checkListed(n *node, room string, m session.Member, now time.Time) {
	s, ok := o.tr.lookup(m.Session)
	if !ok {
		first, seen := o.unknown[m.Session]
		if !seen {
			o.unknown[m.Session] = now
		} else if now.Sub(first) > o.b.Unknown {
			o.v.add("ghost", fmt.Sprintf("%s room %s: session %s of %s listed (%s) but no client ever had it", n.name, room, short(m.Session), m.User, m.State))
			o.unknown[m.Session] = now // report again only after another bound
		}
		return
	}
	if s.ended && !s.connected && now.Sub(s.lastConnEnd) > o.b.Ghost {
		o.v.add("ghost", fmt.Sprintf("%s room %s: session %s of %s listed (%s) %.1fs after its last connection ended (driver: %s) %s",
			n.name, room, short(m.Session), m.User, m.State, now.Sub(s.lastConnEnd).Seconds(), o.tr.history(m.Session), debugOf(n, m.Session, room)))
	}
}

// checkCounts: counts read at the same version as the listing must agree with it.
func (o *oracle) checkCounts(n *node, room string, mb membersBody, c session.Counts) {
	users, here := map[string]bool{}, 0
	anon := 0
	for _, m := range mb.Members {
		if m.User == "" {
			anon++
		} else {
			users[m.User] = true
		}
		if m.Here {
			here++
		}
	}
	if c.Online.Connections != len(mb.Members) || c.Online.Users != len(users) || c.Online.Anonymous != anon || c.Here.Connections != here {
		o.v.add("counts", fmt.Sprintf("%s room %s v%d: counts %+v / here %+v, listing has %d sessions, %d users, %d here",
			n.name, room, mb.Version, c.Online, c.Here, len(mb.Members), len(users), here))
	}
}

// compare finds members the nodes disagree on, and reports those that stay
// in disagreement longer than the convergence bound.
func (o *oracle) compare(views []nodeView, now time.Time) {
	if len(views) < 2 {
		return
	}
	exempt := o.faults.divergenceExempt(now, o.b)
	seen := map[string]bool{}
	for _, room := range o.rooms {
		all := map[string]bool{}
		for _, nv := range views {
			for sid := range nv.members[room] {
				all[sid] = true
			}
		}
		for sid := range all {
			var desc []string
			agree := true
			first, firstOK := views[0].members[room][sid]
			for _, nv := range views {
				st, ok := nv.members[room][sid]
				if ok != firstOK || st != first {
					agree = false
				}
				if !ok {
					st = "absent"
				}
				desc = append(desc, nv.n.name+"="+string(st))
			}
			key := room + "/" + sid
			if agree || exempt {
				continue
			}
			seen[key] = true
			h := append(o.divHist[key], fmt.Sprintf("%.1fs %v", now.Sub(o.v.start).Seconds(), desc))
			if len(h) > 6 {
				h = append(h[:1], h[len(h)-5:]...)
			}
			o.divHist[key] = h
			since, ok := o.diverged[key]
			if !ok {
				o.diverged[key] = now
			} else if now.Sub(since) > o.b.Converge && !o.reported[key] {
				o.reported[key] = true
				sort.Strings(desc)
				var dbg []string
				for _, nv := range views {
					dbg = append(dbg, debugOf(nv.n, sid, room))
				}
				o.v.add("divergence", fmt.Sprintf("room %s session %s: %v for %.1fs (rounds: %s) (driver: %s) %s", room, short(sid), desc, now.Sub(since).Seconds(), strings.Join(o.divHist[key], "; "), o.tr.history(sid), strings.Join(dbg, " ")))
			}
		}
	}
	for k := range o.diverged {
		if !seen[k] {
			delete(o.diverged, k)
			delete(o.divHist, k)
		}
	}
}

// finalDivergence reports the disagreements still open when the oracle
// stops that have lasted longer than the convergence bound (a round may not
// have come round to reporting them).
func (o *oracle) finalDivergence(now time.Time) {
	for key, since := range o.diverged {
		if now.Sub(since) > o.b.Converge && !o.reported[key] {
			o.reported[key] = true
			o.v.add("divergence", fmt.Sprintf("%s: nodes still disagree at the end, for %.1fs", key, now.Sub(since).Seconds()))
		}
	}
}

// converged reports whether every ready node lists the same members (and
// states) in every room, and their counts agree.
func (o *oracle) converged() (bool, string) {
	type roomView struct {
		members map[string]string // session → state
		counts  string
	}
	var first map[string]roomView
	var firstName string
	for _, n := range o.lb.snapshot() {
		got := map[string]roomView{}
		for _, room := range o.rooms {
			var mb membersBody
			var counts session.Counts
			if err := getJSON(n.base()+"/v1/rooms/"+room+"/members", &mb); err != nil {
				return false, err.Error()
			}
			if err := getJSON(n.base()+"/v1/rooms/"+room+"/counts", &counts); err != nil {
				return false, err.Error()
			}
			rv := roomView{members: map[string]string{}, counts: fmt.Sprint(counts.Online, counts.Here)}
			for _, m := range mb.Members {
				rv.members[m.Session] = string(m.State)
			}
			got[room] = rv
		}
		if first == nil {
			first, firstName = got, n.name
			continue
		}
		for _, room := range o.rooms {
			if d := o.diff(first[room].members, got[room].members, firstName, n.name); d != "" {
				return false, fmt.Sprintf("room %s: %s and %s differ: %s", room, firstName, n.name, d)
			}
			if first[room].counts != got[room].counts {
				return false, fmt.Sprintf("room %s: %s and %s differ in counts: %s vs %s", room, firstName, n.name, first[room].counts, got[room].counts)
			}
		}
	}
	return true, ""
}

// diff describes up to three sessions two nodes list differently, with
// what the driver knows of each.
func (o *oracle) diff(a, b map[string]string, an, bn string) string {
	var out []string
	for sid := range a {
		if a[sid] != b[sid] && len(out) < 3 {
			out = append(out, fmt.Sprintf("session %s %s=%s %s=%s (driver: %s)", short(sid), an, a[sid], bn, orAbsent(b[sid]), o.tr.history(sid)))
		}
	}
	for sid := range b {
		if _, ok := a[sid]; !ok && len(out) < 3 {
			out = append(out, fmt.Sprintf("session %s %s=absent %s=%s (driver: %s)", short(sid), an, bn, b[sid], o.tr.history(sid)))
		}
	}
	return strings.Join(out, "; ")
}

func orAbsent(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

// debugOf fetches what node n holds of session sid (nodes run with
// --debug-endpoints), compactly: "c5{record owned e1 [room09] s/…=c1#3:7 m/…/room09=absent}".
func debugOf(n *node, sid, room string) string {
	var d session.SessionDebug
	if err := getJSON(n.base()+"/internal/v1/debug/sessions/"+url.PathEscape(sid)+"?rooms="+url.QueryEscape(room), &d); err != nil {
		return n.name + "{" + err.Error() + "}"
	}
	var b strings.Builder
	b.WriteString(n.name + "{")
	flag := func(on bool, s string) {
		if on {
			b.WriteString(s + " ")
		}
	}
	flag(d.Record, fmt.Sprintf("record(%s from %s)", d.State, d.Writer))
	flag(!d.Record, "no-record")
	flag(d.Owned, fmt.Sprintf("owned(e%d,connected=%v)", d.Epoch, d.Connected))
	flag(d.Failed, "owner-failed")
	flag(len(d.FailedAll) > 0, fmt.Sprintf("failed=%v", d.FailedAll))
	fmt.Fprintf(&b, "rooms=%v", d.Rooms)
	for _, e := range d.Entries {
		k := e.Key
		if i := strings.LastIndexByte(k, '/'); strings.HasPrefix(k, "m/") && i > 0 {
			k = "m/…/" + k[i+1:]
		} else {
			k = k[:2] + "…"
		}
		switch {
		case !e.Present:
			fmt.Fprintf(&b, " %s=absent", k)
		case e.Deleted:
			fmt.Fprintf(&b, " %s=%s:%d:deleted(e%d,%s)", k, e.Origin, e.Seq, e.Epoch, e.Reason)
		default:
			fmt.Fprintf(&b, " %s=%s:%d(e%d)", k, e.Origin, e.Seq, e.Epoch)
		}
	}
	b.WriteString("}")
	return b.String()
}
