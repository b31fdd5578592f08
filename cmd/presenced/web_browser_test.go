package main

// End-to-end tests of the browser side (gateway/web: presence.js, the demo
// page, the dashboard, the React bindings) in real headless Chromium, driven
// with chromedp, against real node processes.
//
// Without Chromium they skip, unless CI=true (CI installs it: .ci/run).
// Screenshots go to $PRESENCED_ARTIFACTS (default: $TMPDIR/presenced-artifacts).
//
// The file sorts last so that these tests, the heaviest of the package
// (Chromium), run after the others.
//
// A build with -tags presence_broken serves a presence.js that no longer
// ends its session on pagehide: TestBrowserPresence must fail against it
// (a closed tab then stays listed for the grace window):
//
//	go test -tags presence_broken -run TestBrowserPresence ./cmd/presenced/

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presenced/presenced/gateway"
)

// chromiumPath finds Chromium or Chrome ($PRESENCED_CHROMIUM first).
// Without one the test skips, or fails under CI.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRESENCED_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "browser test: no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true requires it")
	}
	t.Skip(msg)
	return ""
}

// artifactDir is where screenshots go.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PRESENCED_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "presenced-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ---- browsers and tabs ----

// chrome is the test's one Chromium process. Each person gets a browser
// context of it: their own storage and cookies, as separate browsers have.
type chrome struct {
	t    *testing.T
	root context.Context // an about:blank tab; cancelling it stops Chromium
}

// person is one person's browser (a browser context).
type person struct {
	c    *chrome
	name string
	ctx  context.Context
}

// tab is one page, in a window of its own so that it is visible (Chrome
// hides every tab of a window but the active one).
type tab struct {
	b      *chrome
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	log []string // console messages and uncaught exceptions
}

func startChrome(t *testing.T, exe string) *chrome {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("lang", "en-US"),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	root, rcancel := chromedp.NewContext(actx)
	c := &chrome{t: t, root: root}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(root, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(ctx)
		rcancel()
		acancel()
	})
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return c
}

// person opens a new browser context for name.
func (c *chrome) person(name string) *person {
	ctx, cancel := chromedp.NewContext(c.root, chromedp.WithNewBrowserContext())
	c.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		c.t.Fatalf("%s: new browser context: %v", name, err)
	}
	return &person{c: c, name: name, ctx: ctx}
}

// newTab opens a tab of p in a new window.
func (p *person) newTab(name string) *tab {
	tb := &tab{b: p.c, name: name}
	tb.ctx, tb.cancel = chromedp.NewContext(p.ctx, chromedp.WithListener(tb.listen))
	p.c.t.Cleanup(tb.cancel)
	if err := chromedp.Do(tb.ctx); err != nil {
		p.c.t.Fatalf("%s: new tab: %v", name, err)
	}
	return tb
}

func (tb *tab) listen(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			if a.Description != "" {
				args = append(args, a.Description)
			} else {
				args = append(args, string(a.Value))
			}
		}
		line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		line = fmt.Sprintf("exception: %s %s:%d", d.Text, d.URL, d.LineNumber)
		if d.Exception != nil {
			line += " " + d.Exception.Description
		}
	default:
		return
	}
	tb.mu.Lock()
	tb.log = append(tb.log, time.Now().Format("15:04:05.000 ")+line)
	tb.mu.Unlock()
}

func (tb *tab) console() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return strings.Join(tb.log, "\n")
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.b.t.Fatalf("%s: %v\nconsole:\n%s", tb.name, err, tb.console())
	}
}

// eval runs JavaScript that returns JSON text and decodes it into v.
func (tb *tab) eval(js string, v any) error {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), v)
}

// poke moves the mouse over the page: real input, as a person's.
func (tb *tab) poke() {
	tb.b.t.Helper()
	x, y := 300+rand.Float64()*400, 300+rand.Float64()*200
	tb.do(chromedp.MouseEvent(chromedp.MouseMoved, x, y))
}

// close closes the tab as a person would (pagehide and unload run).
func (tb *tab) close() {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
		tb.b.t.Fatalf("%s: closing: %v", tb.name, err)
	}
}

// setHidden minimises the tab's window (or restores it): the browser makes
// the page hidden (or visible) and fires visibilitychange, as when a person
// minimises the window or switches to another tab.
func (tb *tab) setHidden(hidden bool) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	id := chromedp.FromContext(tb.ctx).Target.TargetID
	w, err := chromedp.CallBrowser(ctx, browser.GetWindowForTarget, browser.GetWindowForTargetParams{TargetID: id})
	if err != nil {
		tb.b.t.Fatalf("%s: window: %v", tb.name, err)
	}
	state := browser.WindowStateNormal
	if hidden {
		state = browser.WindowStateMinimized
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetWindowBounds, browser.SetWindowBoundsParams{WindowID: w.WindowID, Bounds: &browser.Bounds{WindowState: state}}); err != nil {
		tb.b.t.Fatalf("%s: window state %s: %v", tb.name, state, err)
	}
	want := "visible"
	if hidden {
		want = "hidden"
	}
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var got string
		if err := tb.eval(`JSON.stringify(document.visibilityState)`, &got); err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.b.t.Fatalf("%s: still not %s", tb.name, want)
		}
		<-tick.C
	}
}

func (tb *tab) screenshot(t *testing.T, file string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	path := filepath.Join(artifactDir(t), file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// ---- what the demo page shows ----

type userRow struct {
	User  string `json:"user"`
	State string `json:"state"`
	Tabs  int    `json:"tabs"`
	Here  bool   `json:"here"`
	Text  string `json:"text"`
	// Each tab's state as shown in its chip.
	TabStates []string `json:"tabStates"`
}

type demoView struct {
	Status     string    `json:"status"`
	StatusText string    `json:"statusText"`
	Joined     bool      `json:"joined"`
	Users      []userRow `json:"users"`
	OnlineText string    `json:"onlineText"`
	HereText   string    `json:"hereText"`
	OnlineUsrs int       `json:"onlineUsers"`
	OnlineTabs int       `json:"onlineTabs"`
	HereUsers  int       `json:"hereUsers"`
	HereTabs   int       `json:"hereTabs"`
	Typing     string    `json:"typing"`
	Log        []string  `json:"log"`
}

const demoViewJS = `JSON.stringify((() => {
	const $ = (id) => document.getElementById(id);
	const c = $('counts').dataset;
	return {
		status: $('status').dataset.status, statusText: $('status').innerText,
		joined: !$('room-card').classList.contains('pr-hidden'),
		users: [...document.querySelectorAll('#users > li')].map((li) => ({
			user: li.dataset.user, state: li.dataset.state, tabs: +li.dataset.tabs, here: li.dataset.here === 'true',
			text: li.innerText, tabStates: [...li.querySelectorAll('.pr-tab')].map((s) => s.dataset.state),
		})),
		onlineText: $('online-users').innerText + ' online ' + $('online-tabs').innerText,
		hereText: $('here-users').innerText + ' here',
		onlineUsers: +(c.onlineUsers || 0), onlineTabs: +(c.onlineTabs || 0),
		hereUsers: +(c.hereUsers || 0), hereTabs: +(c.hereTabs || 0),
		typing: $('typing').innerText.trim(),
		log: [...document.querySelectorAll('#log li')].map((li) => li.innerText),
	};
})())`

func (v demoView) user(name string) (userRow, bool) {
	for _, u := range v.Users {
		if u.User == name {
			return u, true
		}
	}
	return userRow{}, false
}

// shows reports whether the page lists user with that state (as text too),
// number of tabs and here flag.
func (v demoView) shows(name, state string, tabs int, here bool) bool {
	u, ok := v.user(name)
	label := state
	if state == "stale" {
		label = "reconnecting"
	}
	return ok && u.State == state && u.Tabs == tabs && u.Here == here &&
		strings.Contains(u.Text, name) && strings.Contains(u.Text, label) && strings.Contains(u.Text, fmt.Sprintf("%d tab", tabs))
}

func (v demoView) counts(onlineUsers, onlineTabs, hereUsers, hereTabs int) bool {
	return v.OnlineUsrs == onlineUsers && v.OnlineTabs == onlineTabs && v.HereUsers == hereUsers && v.HereTabs == hereTabs &&
		strings.HasPrefix(v.OnlineText, fmt.Sprintf("%d online %d tab", onlineUsers, onlineTabs)) &&
		v.HereText == fmt.Sprintf("%d here", hereUsers)
}

func (v demoView) logged(substr string) bool {
	for _, l := range v.Log {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func (tb *tab) demo() (demoView, error) {
	var v demoView
	err := tb.eval(demoViewJS, &v)
	return v, err
}

// expect polls what the page shows until cond holds, failing after within
// with what it showed last.
func (tb *tab) expect(t *testing.T, within time.Duration, what string, cond func(demoView) bool) demoView {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		v, err := tb.demo()
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(v, "", "  ")
			t.Fatalf("%s: %s: not within %v (error %v); the page shows:\n%s\nconsole:\n%s", tb.name, what, within, err, b, tb.console())
		}
		<-tick.C
	}
}

// waitJS polls a JavaScript condition until it is true.
func (tb *tab) waitJS(t *testing.T, within time.Duration, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		err := tb.eval("JSON.stringify(!!("+cond+"))", &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within %v (error %v)\nconsole:\n%s", tb.name, what, within, err, tb.console())
		}
		<-tick.C
	}
}

// join opens the demo page, types a name and joins the room.
func (tb *tab) join(t *testing.T, pageURL, name string) {
	t.Helper()
	tb.do(
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('name').value = ''`), // the name another tab saved
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.Click(chromedp.ID("join")),
	)
	tb.expect(t, 10*time.Second, name+" joined", func(v demoView) bool {
		_, listed := v.user(name)
		return v.Joined && v.Status == "open" && listed
	})
}

// ---- a network that can drop ----

// netProxy forwards TCP connections to a node. cut drops every connection
// and refuses new ones, as a lost network would, until restore; blackhole
// silently drops what the open connections carry (no close, no reset), as a
// dead network path does, while new connections work.
type netProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	down    bool
	conns   map[net.Conn]struct{}
	stalled map[net.Conn]*atomic.Bool // by client-side connection
	wg      sync.WaitGroup
}

func startProxy(t *testing.T, target string) *netProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &netProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{}), stalled: make(map[net.Conn]*atomic.Bool)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *netProxy) addr() string { return p.ln.Addr().String() }

func (p *netProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

func (p *netProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.forget(c)
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = struct{}{}
	stalled := new(atomic.Bool)
	p.stalled[c] = stalled
	p.mu.Unlock()
	defer p.forget(up)
	done := make(chan struct{}, 2)
	go func() { pipe(up, c, stalled); done <- struct{}{} }()
	go func() { pipe(c, up, stalled); done <- struct{}{} }()
	<-done
	up.Close()
	if !stalled.Load() {
		c.Close()
	} // else a dead path: the client hears nothing, not even the server's close
	<-done
}

// pipe copies src to dst, dropping the bytes once stalled.
func pipe(dst, src net.Conn, stalled *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// blackhole makes every open connection drop what it carries, silently.
func (p *netProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.stalled {
		s.Store(true)
	}
}

func (p *netProxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.stalled, c)
	p.mu.Unlock()
	c.Close()
}

func (p *netProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *netProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *netProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// ---- the test ----

// browserNodeArgs: short thresholds, so idle comes within seconds and a
// dropped connection is noticed at once.
var browserNodeArgs = []string{"--idle-after", "4s", "--away-after", "60s", "--heartbeat-interval", "1s", "--typing-timeout", "3s"}

const browserGrace = 8 * time.Second

func startBrowserCluster(t *testing.T) (*proc, *proc) {
	t.Helper()
	dir := t.TempDir()
	n1 := startProcWith(t, procOpts{name: "b1", grace: browserGrace, profile: "local", dataDir: filepath.Join(dir, "b1"), args: browserNodeArgs})
	n1.waitUp(t)
	n2 := startProcWith(t, procOpts{name: "b2", join: n1.gossip, grace: browserGrace, profile: "local", dataDir: filepath.Join(dir, "b2"), args: browserNodeArgs})
	n2.waitUp(t)
	for _, p := range []*proc{n1, n2} {
		waitFor(t, 10*time.Second, p.name+" sees both nodes alive", func() bool {
			_, body := get(t, p.base()+"/v1/cluster")
			return strings.Count(body, `"state":"alive"`) == 2
		})
	}
	return n1, n2
}

// Two people on a 2-node cluster: alice with two tabs (one on each node),
// bob on node 1 through a network that drops. What the pages show is
// checked after typing, a tab hidden, a tab closed, inactivity, a dropped
// and resumed connection, and a node killed (on the dashboard).
func TestBrowserPresence(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	exe := chromiumPath(t)
	if gateway.BrokenBuild {
		t.Log("DELIBERATELY BROKEN BUILD (-tags presence_broken): presence.js does not end its session on pagehide; this test must fail")
	}
	n1, n2 := startBrowserCluster(t)
	bobNet := startProxy(t, n1.http)

	ch := startChrome(t, exe)
	alice, bob := ch.person("alice"), ch.person("bob")
	b := bob.newTab("bob")
	a1 := alice.newTab("alice-tab1")
	a2 := alice.newTab("alice-tab2")
	b.join(t, "http://"+bobNet.addr()+"/", "bob")
	a1.join(t, n1.base()+"/", "alice")
	a2.join(t, n2.base()+"/", "alice")

	// 1. Everyone here and active: alice once with two tabs, on both nodes' pages.
	for _, tb := range []*tab{a1, a2, b} {
		tb.poke()
	}
	for _, tb := range []*tab{b, a2} {
		tb.expect(t, 3*time.Second, "alice (2 tabs) and bob active and here", func(v demoView) bool {
			return v.shows("alice", "active", 2, true) && v.shows("bob", "active", 1, true) && v.counts(2, 3, 2, 3)
		})
	}

	// 1b. A missed event (a version gap, simulated here) makes the page's
	// room subscribe again and rebuild from a fresh snapshot.
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const r = window.presenceRoom;
		window.resyncs = 0;
		r.on('sync', () => window.resyncs++);
		r._onEvent({ type: 'update', room: r.id, version: r.version + 2, session: 'missed', user: 'ghost',
			member: { session: 'missed', user: 'ghost', state: 'active', here: true, entered_at: 0, last_active: 0 } });
	})()`))
	b.waitJS(t, 3*time.Second, "resync after a version gap", `window.resyncs === 1 && window.presenceRoom.synced`)
	b.expect(t, time.Second, "the same room after the resync, no ghost", func(v demoView) bool {
		_, ghost := v.user("ghost")
		return !ghost && v.counts(2, 3, 2, 3)
	})

	// 1c. Unsubscribed and subscribed again before the snapshot came: only
	// the latest subscribe's snapshot is applied, and events keep coming
	// (step 2 needs them).
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const r = window.presenceRoom;
		r.unsubscribe(); r.subscribe(); r.unsubscribe(); r.subscribe();
	})()`))
	b.waitJS(t, 3*time.Second, "synced after unsubscribe and subscribe", `window.presenceRoom.synced`)

	// 1d. close() and connect() while an async token function is pending:
	// one session, not two; and the constructor's connect, cut short by
	// close, leaves no unhandled rejection.
	// The sockets it opens are counted: both token waits end before the
	// second one's socket opens, so once the client is open a stale _open
	// has either opened its socket already or never will.
	b.do(chromedp.Evaluate[chromedp.Void](`import('/presence.js').then(({ PresenceClient }) => {
		window.twiceSockets = 0;
		class CountingWebSocket extends WebSocket {
			constructor(...args) { super(...args); window.twiceSockets++; }
		}
		const c = new PresenceClient({ user: 'twice', detectActivity: false, WebSocket: CountingWebSocket,
			token: () => new Promise((resolve) => setTimeout(() => resolve(''), 200)) });
		c.close();
		c.connect().catch(() => {});
		window.twice = c;
	})`))
	b.waitJS(t, 3*time.Second, "the client closed and connected again is open", `window.twice && window.twice.status === 'open'`)
	var sockets int
	if err := b.eval(`String(window.twiceSockets)`, &sockets); err != nil || sockets != 1 {
		t.Fatalf("close() then connect() during the token fetch: want 1 socket, got %d (%v)", sockets, err)
	}
	var twice struct{ Sessions int }
	if _, body := get(t, n1.base()+"/v1/users/twice"); json.Unmarshal([]byte(body), &twice) != nil || twice.Sessions != 1 {
		t.Fatalf("close() then connect() during the token fetch: want 1 session, got %s", body)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`window.twice.close()`))
	if log := b.console(); strings.Contains(log, "exception:") {
		t.Fatalf("bob's page threw:\n%s", log)
	}

	// 2. Typing: bob sees "alice is typing…", then it stops by itself.
	a1.do(chromedp.SendKeys(chromedp.ID("message"), "hello bob"))
	b.expect(t, 3*time.Second, "alice is typing", func(v demoView) bool { return v.Typing == "alice is typing…" })
	b.poke()
	b.screenshot(t, "demo.png")
	b.expect(t, 6*time.Second, "typing stopped", func(v demoView) bool { return v.Typing == "" })

	// 3. A tab hidden: that tab is away and not here; alice stays active
	// (her other tab is) and here.
	a1.poke()
	a2.setHidden(true)
	b.expect(t, 3*time.Second, "alice's hidden tab away", func(v demoView) bool {
		u, _ := v.user("alice")
		return v.shows("alice", "active", 2, true) && slices.Contains(u.TabStates, "away") && v.counts(2, 3, 2, 2)
	})

	// 4. A tab closed: it leaves at once (not after the grace window), and
	// alice stays online with the hidden tab: away, not here.
	a1.close()
	closed := time.Now()
	b.expect(t, 2*time.Second, "alice's closed tab gone at once, alice away with one tab", func(v demoView) bool {
		return v.shows("alice", "away", 1, false) && v.counts(2, 2, 1, 1)
	})
	t.Logf("closed tab gone from the other user's page after %v (grace %v)", time.Since(closed).Round(time.Millisecond), browserGrace)
	if v, _ := b.demo(); v.logged("alice went offline") {
		t.Fatalf("alice went offline with a tab still open: %q", v.Log)
	}

	// 5. Visible again: active and here.
	a2.setHidden(false)
	b.expect(t, 3*time.Second, "alice active and here again", func(v demoView) bool {
		return v.shows("alice", "active", 1, true) && v.counts(2, 2, 2, 2)
	})

	// 6. No input for the idle threshold (4 s): idle, on both pages.
	for _, tb := range []*tab{b, a2} {
		tb.expect(t, 9*time.Second, "alice and bob idle", func(v demoView) bool {
			return v.shows("alice", "idle", 1, true) && v.shows("bob", "idle", 1, true)
		})
	}

	// 7. Bob's network drops: alice sees him reconnecting (stale), his page
	// says so; the network comes back and his tab resumes its session
	// inside grace: no leave, no offline, active again. A room he closed
	// while offline is left on the resume.
	b.do(chromedp.Evaluate[chromedp.Void](`window.side = window.presenceClient.room('side')`))
	b.waitJS(t, 3*time.Second, "bob in room side", `window.side.me !== null`)
	bobNet.cut()
	dropped := time.Now()
	a2.expect(t, 3*time.Second, "bob reconnecting", func(v demoView) bool { return v.shows("bob", "stale", 1, true) })
	b.expect(t, 5*time.Second, "bob's page says the connection is lost", func(v demoView) bool {
		return v.Status == "reconnecting" && strings.Contains(v.StatusText, "reconnecting")
	})
	b.waitJS(t, time.Second, "bob's room not synced while disconnected", `!window.presenceRoom.synced`)
	b.do(chromedp.Evaluate[chromedp.Void](`window.side.close()`))
	bobNet.restore()
	b.expect(t, browserGrace, "bob's session resumed", func(v demoView) bool {
		return v.Status == "open" && v.logged("session resumed")
	})
	a2.expect(t, 3*time.Second, "bob back", func(v demoView) bool {
		return v.shows("bob", "active", 1, true) && v.counts(2, 2, 2, 2)
	})
	waitFor(t, 3*time.Second, "bob out of room side (closed while offline)", func() bool {
		_, body := get(t, n1.base()+"/v1/rooms/side/members")
		return !strings.Contains(body, `"bob"`)
	})
	t.Logf("dropped network → resumed after %v", time.Since(dropped).Round(time.Millisecond))

	// 7b. The connection goes silent (a dead network path: no close, no
	// reset): bob's page notices its ping unanswered, reconnects and resumes.
	bobNet.blackhole()
	silent := time.Now()
	b.expect(t, browserGrace, "bob's session resumed after a silent drop", func(v demoView) bool {
		return v.Status == "open" && strings.Count(strings.Join(v.Log, "\n"), "session resumed") == 2 &&
			v.logged("connection lost (heartbeat timeout)")
	})
	a2.expect(t, 3*time.Second, "bob back after the silent drop", func(v demoView) bool {
		return v.shows("bob", "active", 1, true) && v.counts(2, 2, 2, 2)
	})
	t.Logf("silent connection → resumed after %v", time.Since(silent).Round(time.Millisecond))
	if v, _ := a2.demo(); v.logged("bob left") || v.logged("bob went offline") || v.logged("bob opened a tab") {
		t.Fatalf("bob's resume was seen as a leave or a new tab: %q", v.Log)
	}

	// 8. The dashboard of node 1: both nodes alive, the raft leader, the
	// sessions per node, the room, a live feed.
	d := bob.newTab("dashboard")
	d.do(chromedp.Navigate(n1.base() + "/dashboard"))
	d.expectDash(t, 5*time.Second, "both nodes alive, leader, sessions, room", func(v dashView) bool {
		b1, b2 := v.node("b1"), v.node("b2")
		room := v.room("lobby")
		return v.Status == "open" && b1.State == "alive" && b2.State == "alive" &&
			(v.Leader == "b1" || v.Leader == "b2") && b1.Sessions >= 2 && b2.Sessions >= 1 &&
			strings.Contains(room.Text, "2") && len(v.Feed) > 0
	})
	d.screenshot(t, "dashboard.png")

	// 9. Node 2 dies (kill -9): the dashboard shows it suspect or dead with
	// its sessions stale; bob sees alice (her tab was on node 2) reconnecting.
	_ = n2.cmd.Process.Signal(syscall.SIGKILL)
	d.expectDash(t, 5*time.Second, "b2 down", func(v dashView) bool {
		b2 := v.node("b2")
		return (b2.State == "suspect" || b2.State == "dead") && strings.Contains(b2.Text, "reconnecting") &&
			slices.ContainsFunc(v.Feed, func(s string) bool { return strings.Contains(s, "node b2: alive →") })
	})
	d.screenshot(t, "dashboard-node-down.png")
	b.expect(t, 3*time.Second, "alice reconnecting after her node died", func(v demoView) bool {
		return v.shows("alice", "stale", 1, true)
	})
	b.screenshot(t, "demo-node-down.png")
}

// ---- what the dashboard shows ----

type dashRow struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Sessions int    `json:"sessions"`
	Text     string `json:"text"`
}

type dashView struct {
	Status string    `json:"status"`
	Error  string    `json:"error"`
	Leader string    `json:"leader"`
	Nodes  []dashRow `json:"nodes"`
	Rooms  []dashRow `json:"rooms"`
	Feed   []string  `json:"feed"`
}

const dashViewJS = `JSON.stringify((() => ({
	status: document.getElementById('status').dataset.status,
	error: document.getElementById('error').innerText,
	leader: document.getElementById('stat-leader').innerText,
	nodes: [...document.querySelectorAll('#nodes tr')].map((tr) => ({ name: tr.dataset.node, state: tr.dataset.state, sessions: +tr.dataset.sessions, text: tr.innerText })),
	rooms: [...document.querySelectorAll('#rooms tr[data-room]')].map((tr) => ({ name: tr.dataset.room, text: tr.innerText })),
	feed: [...document.querySelectorAll('#feed li')].map((li) => li.innerText),
}))())`

func (v dashView) node(name string) dashRow {
	for _, n := range v.Nodes {
		if n.Name == name {
			return n
		}
	}
	return dashRow{}
}

func (v dashView) room(name string) dashRow {
	for _, r := range v.Rooms {
		if r.Name == name {
			return r
		}
	}
	return dashRow{}
}

func (tb *tab) expectDash(t *testing.T, within time.Duration, what string, cond func(dashView) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var v dashView
		err := tb.eval(dashViewJS, &v)
		if err == nil && cond(v) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(v, "", "  ")
			t.Fatalf("%s: %s: not within %v (error %v); the dashboard shows:\n%s\nconsole:\n%s", tb.name, what, within, err, b, tb.console())
		}
		<-tick.C
	}
}

// ---- React ----

// reactVersion is fetched with npm pack (once; cached) for the React test.
const reactVersion = "18.3.1"

// reactFiles returns a directory with React's UMD builds and ES module
// shims over them (react.js, react-dom-client.js), so that an import map
// can point "react" at them with no bundler and no CDN. It skips the test
// when npm is missing or cannot reach the registry (fails under CI).
func reactFiles(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "presenced-test", "react-"+reactVersion)
	want := []string{"react.production.min.js", "react-dom.production.min.js"}
	have := true
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			have = false
		}
	}
	if !have {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Skip("React browser test: no npm to fetch react@" + reactVersion + " (apt-get install npm)")
		}
		tmp := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "pack", "--silent", "react@"+reactVersion, "react-dom@"+reactVersion)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			msg := fmt.Sprintf("React browser test: npm pack react@%s failed: %v\n%s", reactVersion, err, out)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		untar(t, filepath.Join(tmp, "react-"+reactVersion+".tgz"), "package/umd/react.production.min.js", filepath.Join(dir, want[0]))
		untar(t, filepath.Join(tmp, "react-dom-"+reactVersion+".tgz"), "package/umd/react-dom.production.min.js", filepath.Join(dir, want[1]))
	}
	// ES module shims: the UMD build sets self.React (this is undefined in a module).
	shims := map[string]string{
		"react.js": `import './react.production.min.js';
const React = self.React;
export default React;
export const { Children, Component, Fragment, PureComponent, StrictMode, Suspense, cloneElement, createContext,
  createElement, createRef, forwardRef, isValidElement, lazy, memo, startTransition, useCallback, useContext,
  useDebugValue, useDeferredValue, useEffect, useId, useImperativeHandle, useInsertionEffect, useLayoutEffect,
  useMemo, useReducer, useRef, useState, useSyncExternalStore, useTransition, version } = React;
`,
		"react-dom-client.js": `import './react.js';
import './react-dom.production.min.js';
export const { createRoot, hydrateRoot } = self.ReactDOM;
`,
	}
	for name, body := range shims {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func untar(t *testing.T, tgz, member, dst string) {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", tgz, member, err)
		}
		if h.Name != member {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
}

// The React example page (/examples/react.html: usePresence, useTyping and
// the example components) with React from npm through an import map: two
// users see each other, the avatar stack counts them, typing shows.
func TestBrowserReact(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	exe := chromiumPath(t)
	vendor := reactFiles(t)
	n1 := startProc(t, "r1", browserGrace, "")
	n1.waitUp(t)
	// One origin serves the node and React: the example page maps "react"
	// to /vendor/react/ with ?react=.
	target, _ := url.Parse(n1.base())
	proxy := httputil.NewSingleHostReverseProxy(target)
	files := http.StripPrefix("/vendor/react/", http.FileServer(http.Dir(vendor)))
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/vendor/react/") {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			files.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(site.Close)

	ch := startChrome(t, exe)
	alice, bob := ch.person("alice"), ch.person("bob")
	a := alice.newTab("alice-react")
	b := bob.newTab("bob-react")
	page := site.URL + "/examples/react.html?react=/vendor/react/&room=lobby&user="
	a.do(chromedp.Navigate(page + "alice"))
	b.do(chromedp.Navigate(page + "bob"))

	type reactView struct {
		Status string   `json:"status"`
		Users  []string `json:"users"`
		States []string `json:"states"`
		Stack  string   `json:"stack"`
		Dots   int      `json:"dots"`
		Typing string   `json:"typing"`
	}
	const js = `JSON.stringify((() => {
		const room = document.getElementById('react-room');
		if (!room) return {};
		return {
			status: room.dataset.status,
			users: [...document.querySelectorAll('#react-users > li')].map((li) => li.dataset.user),
			states: [...document.querySelectorAll('#react-users > li')].map((li) => li.dataset.state),
			stack: document.querySelector('.pr-stack').innerText,
			dots: document.querySelectorAll('.pr-stack .pr-dot.pr-active').length,
			typing: document.querySelector('.pr-typing').innerText.trim(),
		};
	})())`
	expect := func(tb *tab, within time.Duration, what string, cond func(reactView) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var v reactView
			err := tb.eval(js, &v)
			if err == nil && cond(v) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s: not within %v (error %v): %+v\nconsole:\n%s", tb.name, what, within, err, v, tb.console())
			}
			<-tick.C
		}
	}
	for _, tb := range []*tab{a, b} {
		tb.poke()
		expect(tb, 10*time.Second, "both users, active, 2 people here", func(v reactView) bool {
			return v.Status == "open" && slices.Equal(v.Users, []string{"alice", "bob"}) &&
				slices.Equal(v.States, []string{"active", "active"}) && strings.Contains(v.Stack, "2 people here") && v.Dots == 2
		})
	}
	a.do(chromedp.SendKeys(chromedp.ID("react-message"), "hi"))
	expect(b, 3*time.Second, "alice is typing", func(v reactView) bool { return v.Typing == "alice is typing…" })
	b.screenshot(t, "react.png")
	a.close()
	expect(b, 2*time.Second, "alice gone", func(v reactView) bool {
		return slices.Equal(v.Users, []string{"bob"}) && strings.Contains(v.Stack, "1 person here")
	})
}

// With tokens on, the demo page connects with a pasted token (presence.js
// sends it in hello): the user is the token's subject, not the typed name;
// the dashboard reads /v1/cluster with ?token= (an admin token: the
// cluster view needs caps.admin).
func TestBrowserToken(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	exe := chromiumPath(t)
	const secret = "browser-test-secret-0123456789abcdef"
	n := startProcWith(t, procOpts{name: "t1", grace: browserGrace, profile: "local", dataDir: filepath.Join(t.TempDir(), "t1"),
		args: []string{"--auth-hs256-secret", secret}})
	n.waitUp(t)
	exp := time.Now().Add(time.Hour).Unix()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "carol", "exp": exp}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	adminTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "admin", "exp": exp, "caps": map[string]any{"admin": true}}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	ch := startChrome(t, exe)
	c := ch.person("carol").newTab("carol")
	c.do(
		chromedp.Navigate(n.base()+"/"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "mallory"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = 'not-a-token'`),
		chromedp.Click(chromedp.ID("join")),
	)
	c.waitJS(t, 5*time.Second, "a bad token refused", `document.getElementById('join-error').innerText.includes('unauthorized') &&
		document.getElementById('status').dataset.status === 'closed'`)
	// The form can be sent again, with a good token.
	c.do(
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById('token').value = %q`, tok)),
		chromedp.Click(chromedp.ID("join")),
	)
	c.expect(t, 10*time.Second, "joined as the token's subject", func(v demoView) bool {
		u, ok := v.user("carol")
		_, named := v.user("mallory")
		return v.Status == "open" && ok && !named && strings.Contains(u.Text, "(you)") && v.counts(1, 1, 1, 1)
	})
	d := ch.person("admin").newTab("dashboard")
	d.do(chromedp.Navigate(n.base() + "/dashboard?token=" + url.QueryEscape(adminTok)))
	d.expectDash(t, 5*time.Second, "the dashboard with a token", func(v dashView) bool {
		return v.Status == "open" && v.node("t1").State == "alive" && strings.Contains(v.room("lobby").Text, "1")
	})

	// A leave naming this session (the server took it out, e.g. kicked,
	// simulated here): the room is no longer entered and typing() sends nothing.
	c.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const r = window.presenceRoom;
		r._onEvent({ type: 'leave', room: r.id, version: r.version + 1, session: r.client.session, user: 'carol', reason: 'kicked' });
		r.typing();
	})()`))
	c.waitJS(t, time.Second, "not entered after being taken out", `!window.presenceRoom.entered && window.presenceRoom._typingSentAt === 0`)
}
