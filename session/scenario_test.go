package session

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of scenario files in testdata/session")

// TestScenarios runs the scripts in testdata/session against an engine on a
// fake clock. Each case is a command, a line "----", the expected output and
// a blank line (etcd-io/raft's data-driven style). Run with -rewrite to
// regenerate the expectations after a deliberate change, then review the diff.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../testdata/session/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScenarioFile(t, file)
		})
	}
}

type scenarioCase struct {
	line     int
	cmd      string
	expected string
}

func parseScenario(t *testing.T, file string) (header []string, cases []scenarioCase) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lineNo := 0
	var cur *scenarioCase
	inOutput := false
	var out []string
	flush := func() {
		if cur != nil {
			cur.expected = strings.Join(out, "\n")
			cases = append(cases, *cur)
		}
		cur, inOutput, out = nil, false, nil
	}
	for sc.Scan() {
		lineNo++
		l := sc.Text()
		switch {
		case inOutput && l == "":
			flush()
		case inOutput:
			out = append(out, l)
		case cur == nil && (l == "" || strings.HasPrefix(l, "#")):
			if len(cases) == 0 {
				header = append(header, l)
			}
		case cur == nil:
			cur = &scenarioCase{line: lineNo, cmd: l}
		case l == "----":
			inOutput = true
		default:
			t.Fatalf("%s:%d: expected ---- after command", file, lineNo)
		}
	}
	flush()
	return header, cases
}

func runScenarioFile(t *testing.T, file string) {
	header, cases := parseScenario(t, file)
	h := newHarness(t)
	defer h.e.Stop()
	var b strings.Builder
	for _, l := range header {
		b.WriteString(l + "\n")
	}
	failed := false
	for i, c := range cases {
		got := strings.TrimRight(h.run(c.cmd), "\n")
		if got != c.expected && !*rewrite {
			t.Errorf("%s:%d: %s\n--- expected\n%s\n--- got\n%s", file, c.line, c.cmd, c.expected, got)
			failed = true
		}
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s\n----\n%s\n", c.cmd, got)
	}
	if *rewrite && !failed {
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness drives an Engine by script: sessions are named in the script and
// their random ids are printed back as names.
type harness struct {
	t      *testing.T
	clock  *FakeClock
	e      *Engine
	start  time.Time
	ids    map[string]string // name → session id
	names  map[string]string // session id → name
	tokens map[string]string // name → resume token
	events map[string][]*Event
	cancel map[string]func()
}

func newHarness(t *testing.T) *harness {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := NewFakeClock(start)
	e := New(Config{Node: "n1", Incarnation: 1, Clock: clock})
	return &harness{t: t, clock: clock, e: e, start: start, ids: map[string]string{}, names: map[string]string{},
		tokens: map[string]string{}, events: map[string][]*Event{}, cancel: map[string]func(){}}
}

func (h *harness) name(sid string) string {
	if n, ok := h.names[sid]; ok {
		return n
	}
	return sid
}

func kv(args []string) (pos []string, opts map[string]string) {
	opts = map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			opts[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	return pos, opts
}

func errOK(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

func (h *harness) run(cmd string) string {
	fields := strings.Fields(cmd)
	pos, o := kv(fields[1:])
	arg := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	sid := h.ids[arg(0)]
	switch fields[0] {
	case "open":
		op, err := h.e.Open(OpenRequest{ID: o["id"], User: o["user"], Kind: Kind(o["kind"]),
			Device: Device{Kind: o["device"]}, Location: o["location"], Meta: json.RawMessage(o["meta"])})
		if err != nil {
			return errOK(err)
		}
		h.ids[arg(0)], h.names[op.Session], h.tokens[arg(0)] = op.Session, arg(0), op.ResumeToken
		return "ok"
	case "enter":
		return errOK(h.e.Enter(sid, arg(1), json.RawMessage(o["data"])))
	case "update":
		return errOK(h.e.Update(sid, arg(1), json.RawMessage(o["data"])))
	case "leave":
		return errOK(h.e.Leave(sid, arg(1), Reason(o["reason"]), json.RawMessage(o["data"])))
	case "close":
		return errOK(h.e.Close(sid, Reason(o["reason"]), json.RawMessage(o["data"])))
	case "drop":
		h.e.Disconnect(sid, 0)
		return "ok"
	case "resume":
		tok := h.tokens[arg(0)]
		if o["token"] != "" {
			tok = o["token"]
		}
		user := ""
		if info, ok := h.e.Session(h.ids[arg(0)]); ok {
			user = info.User
		}
		if o["user"] != "" {
			user = o["user"]
		}
		op, err := h.e.Resume(tok, user)
		if err != nil {
			return errOK(err)
		}
		return fmt.Sprintf("resumed=%v", op.Resumed)
	case "activity":
		return errOK(h.e.Activity(sid, Activity(arg(1))))
	case "heartbeat":
		return errOK(h.e.Heartbeat(sid))
	case "typing":
		return errOK(h.e.Typing(sid, arg(1), arg(2) != "off"))
	case "location":
		return errOK(h.e.SetLocation(sid, arg(1)))
	case "advance":
		d, err := time.ParseDuration(arg(0))
		if err != nil {
			h.t.Fatalf("advance: %v", err)
		}
		h.clock.Advance(d)
		return fmt.Sprintf("t=%s", h.clock.Now().Sub(h.start))
	case "subscribe":
		room := arg(0)
		snap, cancel, err := h.e.Subscribe(room, func(ev *Event) { h.events[room] = append(h.events[room], ev) })
		if err != nil {
			return errOK(err)
		}
		h.cancel[room] = cancel
		return fmt.Sprintf("snapshot v%d members=%d users=%d", snap.Version, len(snap.Members), len(snap.Users))
	case "events":
		evs := h.events[arg(0)]
		h.events[arg(0)] = nil
		var b strings.Builder
		for _, ev := range evs {
			b.WriteString(h.formatEvent(ev) + "\n")
		}
		if len(evs) == 0 {
			return "(none)"
		}
		return b.String()
	case "members":
		ms, v := h.e.RoomMembers(arg(0))
		var b strings.Builder
		fmt.Fprintf(&b, "v%d\n", v)
		lines := make([]string, 0, len(ms))
		for _, m := range ms {
			lines = append(lines, fmt.Sprintf("%s user=%s state=%s here=%v data=%s", h.name(m.Session), m.User, m.State, m.Here, string(m.Data)))
		}
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n"))
		return b.String()
	case "users":
		us, _ := h.e.RoomUsers(arg(0))
		var b strings.Builder
		for _, u := range us {
			fmt.Fprintf(&b, "%s state=%s sessions=%d here=%v\n", u.User, u.State, u.Sessions, u.Here)
		}
		if len(us) == 0 {
			return "(none)"
		}
		return b.String()
	case "counts":
		c := h.e.RoomCounts(arg(0))
		return fmt.Sprintf("online: connections=%d users=%d anonymous=%d\nhere: connections=%d users=%d anonymous=%d",
			c.Online.Connections, c.Online.Users, c.Online.Anonymous, c.Here.Connections, c.Here.Users, c.Here.Anonymous)
	case "user":
		p := h.e.UserPresence(arg(0))
		devs := make([]string, 0, len(p.Devices))
		for k, v := range p.Devices {
			devs = append(devs, k+":"+string(v))
		}
		sort.Strings(devs)
		seen := "never"
		if p.LastSeen != 0 {
			seen = time.UnixMilli(p.LastSeen).Sub(h.start).String()
		}
		return fmt.Sprintf("%s state=%s sessions=%d devices=[%s] last_seen=%s", p.User, p.State, p.Sessions, strings.Join(devs, " "), seen)
	case "typing-users":
		return "[" + strings.Join(h.e.TypingUsers(arg(0)), " ") + "]"
	case "rooms-of":
		return "[" + strings.Join(h.e.UserRooms(arg(0)), " ") + "]"
	case "gap":
		// Simulate a subscriber missing event v: drop it from the log and
		// check the client-side gap detection resynchronises.
		return h.gapCheck(arg(0))
	}
	h.t.Fatalf("unknown command %q", fields[0])
	return ""
}

func (h *harness) formatEvent(ev *Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v%d %s", ev.Version, ev.Type)
	if ev.Session != "" {
		fmt.Fprintf(&b, " %s", h.name(ev.Session))
	}
	if ev.User != "" {
		fmt.Fprintf(&b, " user=%s", ev.User)
	}
	if ev.Member != nil && ev.Type != EventLeave {
		fmt.Fprintf(&b, " state=%s here=%v", ev.Member.State, ev.Member.Here)
		if len(ev.Member.Data) > 0 {
			fmt.Fprintf(&b, " data=%s", ev.Member.Data)
		}
	}
	if ev.State != "" {
		fmt.Fprintf(&b, " state=%s", ev.State)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", ev.Reason)
	}
	if len(ev.Data) > 0 {
		fmt.Fprintf(&b, " data=%s", ev.Data)
	}
	if ev.Type == EventTyping {
		fmt.Fprintf(&b, " typing=%v", ev.Typing)
	}
	return b.String()
}

// gapCheck replays the room's events into a view built from a snapshot taken
// before them, skipping one event: the view must report the gap, resync from
// a fresh snapshot and then agree with the room.
func (h *harness) gapCheck(room string) string {
	evs := h.events[room]
	h.events[room] = nil
	if len(evs) < 2 {
		return "need at least 2 events"
	}
	view := &RoomView{Room: room, Version: evs[0].Version - 1, Members: map[string]Member{}, Typing: map[string]bool{}}
	var out []string
	for i, ev := range evs {
		if i == 0 {
			out = append(out, fmt.Sprintf("missed v%d", ev.Version))
			continue
		}
		if err := view.Apply(ev); err != nil {
			out = append(out, "gap detected: "+err.Error())
			view.Reset(h.e.RoomSnapshot(room))
			out = append(out, fmt.Sprintf("resynced at v%d", view.Version))
			break
		}
	}
	ms, v := h.e.RoomMembers(room)
	want := make([]string, 0, len(ms))
	for _, m := range ms {
		want = append(want, m.Session)
	}
	got := view.Sessions()
	out = append(out, fmt.Sprintf("view v%d matches room v%d: %v", view.Version, v, strings.Join(got, ",") == strings.Join(want, ",")))
	return strings.Join(out, "\n")
}
