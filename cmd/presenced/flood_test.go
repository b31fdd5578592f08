package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/gateway"
	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// A node under abuse keeps serving its calm clients. While calm clients
// ping, update and watch their room, others attack the same process:
// clients far over their rate limit, oversize frames, TCP connections that
// never finish the HTTP handshake, WebSocket connections that never say
// hello, and clients that vanish mid-session without a close (half-open:
// they neither read nor write again). The test shows every calm ping
// answered, every event of the room delivered in version order with the
// final view equal to the node's listing, the calm users active; the
// abusers cut off with their documented close codes; the vanished sessions
// gone after heartbeat timeout + grace; and the node's connections and
// goroutines back to where they were.
func TestFloodLeavesOthersUnaffected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process and holds hundreds of connections")
	}
	p := startProcWith(t, procOpts{name: "flood", profile: "local", dataDir: t.TempDir(), grace: time.Second,
		args: []string{"--heartbeat-interval", "1s", "--rate-limit", "50", "--max-frame-bytes", "65536"}})
	p.waitUp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	wsURL := "ws://" + p.http + "/v1/ws"
	dial := func(user string, buf int) *client.Client {
		t.Helper()
		c, err := client.Dial(ctx, wsURL, client.Options{User: user, EventBuffer: buf})
		if err != nil {
			t.Fatalf("dial %s: %v", user, err)
		}
		t.Cleanup(c.Drop)
		return c
	}
	baseGoroutines := metricValue(t, p, "go_goroutines")

	watcher := dial("watcher", 1<<16)
	snap, err := watcher.Subscribe(ctx, "calm")
	if err != nil {
		t.Fatal(err)
	}
	view := session.NewRoomView(snap)
	const calmN = 20
	calm := make([]*client.Client, calmN)
	for i := range calm {
		calm[i] = dial(fmt.Sprintf("calm%02d", i), 0)
		if err := calm[i].Enter(ctx, "calm", map[string]int{"n": 0}); err != nil {
			t.Fatal(err)
		}
	}

	// The vanished: in the room, then silent and never reading.
	const vanishN = 20
	for i := 0; i < vanishN; i++ {
		ws, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		for _, m := range []string{fmt.Sprintf(`{"type":"hello","user":"gone%02d"}`, i), `{"type":"enter","room":"calm"}`} {
			if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Half-open handshakes and hello-less sockets, held open.
	var raw []net.Conn
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, c)
		_, _ = c.Write([]byte("GET /v1/ws HTTP/1.1\r\nHost: x\r\n"))
	}
	var mute []*websocket.Conn
	for i := 0; i < 100; i++ {
		ws, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		mute = append(mute, ws)
	}

	var quiet []time.Duration // the same calm pings before the attack, for comparison
	for range 40 {            // under the rate limit (50/s, burst 50)
		start := time.Now()
		if _, err := calm[0].Ping(ctx); err != nil {
			t.Fatal(err)
		}
		quiet = append(quiet, time.Since(start))
	}
	slices.Sort(quiet)
	t.Logf("300 half-open handshakes and 100 hello-less sockets held; calm ping rtt before the attack p50 %v max %v", quiet[20], quiet[39])
	attack, stopAttack := context.WithTimeout(ctx, 6*time.Second)
	defer stopAttack()
	var wg sync.WaitGroup
	var floodCut, floodOther, bigCut, bigOther atomic.Int64
	for i := 0; i < 8; i++ { // far over the rate limit: 50/s allowed
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attack.Err() == nil {
				c, err := client.Dial(attack, wsURL, client.Options{User: fmt.Sprintf("flood%d", i), NoAutoPing: true})
				if err != nil {
					continue
				}
				for j := 0; j < 5000 && c.Send(attack, []byte(`{"type":"ping"}`)) == nil; j++ {
				}
				<-c.Done()
				if attack.Err() == nil { // not cut short by the end of the attack
					countClose(c.CloseStatus(), gateway.CloseFlood, &floodCut, &floodOther)
				}
			}
		}()
	}
	big := []byte(`{"type":"ping","pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	for i := 0; i < 4; i++ { // 1 MiB frames against a 64 KiB limit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attack.Err() == nil {
				c, err := client.Dial(attack, wsURL, client.Options{User: fmt.Sprintf("big%d", i), NoAutoPing: true})
				if err != nil {
					continue
				}
				_ = c.Send(attack, big)
				<-c.Done()
				if attack.Err() == nil {
					countClose(c.CloseStatus(), websocket.StatusMessageTooBig, &bigCut, &bigOther)
				}
			}
		}()
	}
	// The calm clients, meanwhile: ping every 50 ms, update every 250 ms.
	var rtts []time.Duration
	var mu sync.Mutex
	last := make([]int, calmN)
	for i, c := range calm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; attack.Err() == nil; n++ {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				start := time.Now()
				_, err := c.Ping(pctx)
				rtt := time.Since(start)
				if err == nil && n%5 == 0 {
					err = c.Update(pctx, "calm", map[string]int{"n": n})
					last[i] = n
				}
				cancel()
				if err != nil {
					t.Errorf("calm client %d: %v", i, err)
					return
				}
				mu.Lock()
				rtts = append(rtts, rtt)
				mu.Unlock()
				time.Sleep(50 * time.Millisecond) // pacing of the workload, not synchronisation
			}
		}()
	}
	wg.Wait()

	// The vanished are closed (4000 after 2 heartbeats of silence) and leave
	// after grace; the calm stay, their last update applied in order.
	events := 0
	want := func() bool {
		for {
			select {
			case ev := <-watcher.Events():
				events++
				if err := view.Apply(ev); err != nil {
					t.Fatalf("watcher: %v", err)
				}
				continue
			default:
			}
			break
		}
		if len(view.Members) != calmN {
			return false
		}
		for i := range calm {
			m, ok := view.Members[calm[i].Welcome.Session]
			if !ok || string(m.Data) != fmt.Sprintf(`{"n":%d}`, last[i]) {
				return false
			}
		}
		return true
	}
	waitFor(t, 20*time.Second, "calm room to hold exactly the calm clients with their last updates", want)
	if watcher.Dropped.Load() != 0 {
		t.Fatalf("watcher dropped %d events", watcher.Dropped.Load())
	}
	var listing struct {
		Version uint64           `json:"version"`
		Members []session.Member `json:"members"`
	}
	getJSONInto(t, p.base()+"/v1/rooms/calm/members", &listing)
	var ids []string
	for _, m := range listing.Members {
		ids = append(ids, m.Session)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, view.Sessions()) {
		t.Fatalf("watcher's view %v != node listing %v", view.Sessions(), ids)
	}
	var users struct {
		Users map[string]session.UserPresence `json:"users"`
	}
	q := make([]string, calmN)
	for i := range q {
		q[i] = fmt.Sprintf("calm%02d", i)
	}
	getJSONInto(t, p.base()+"/v1/users?ids="+strings.Join(q, ","), &users)
	for _, u := range q {
		if users.Users[u].State != session.Active {
			t.Errorf("calm user %s is %s", u, users.Users[u].State)
		}
	}

	if floodCut.Load() == 0 || floodOther.Load() != 0 {
		t.Errorf("flooders: %d closed with %d, %d otherwise", floodCut.Load(), gateway.CloseFlood, floodOther.Load())
	}
	if bigCut.Load() == 0 || bigOther.Load() != 0 {
		t.Errorf("oversize senders: %d closed with 1009, %d otherwise", bigCut.Load(), bigOther.Load())
	}
	// Half-open handshakes end at the header timeout (10 s); hello-less
	// sockets at the hello timeout (10 s) or, silent, at the heartbeat
	// timeout (2 s here).
	for _, c := range raw {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("half-open handshake not closed by the node: %v", err)
		}
		c.Close()
	}
	for _, ws := range mute {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, _, err := ws.Read(rctx)
		cancel()
		if code := websocket.CloseStatus(err); code != gateway.CloseProtocolError && code != gateway.CloseHeartbeatTimeout {
			t.Fatalf("hello-less socket: %v, want close %d or %d", err, gateway.CloseProtocolError, gateway.CloseHeartbeatTimeout)
		}
	}
	waitFor(t, 20*time.Second, "node goroutines back near their level before the attack", func() bool {
		return metricValue(t, p, "go_goroutines") <= baseGoroutines+float64(4*(calmN+2))
	})
	slices.Sort(rtts)
	t.Logf("under attack: %d calm pings, rtt p50 %v p99 %v max %v; %d events checked; flooders cut %d, oversize cut %d, rate-limited %v",
		len(rtts), rtts[len(rtts)/2], rtts[len(rtts)*99/100], rtts[len(rtts)-1], events, floodCut.Load(), bigCut.Load(),
		metricValue(t, p, "presenced_rate_limited_total"))
}

func countClose(got, want websocket.StatusCode, ok, other *atomic.Int64) {
	if got == want {
		ok.Add(1)
	} else {
		other.Add(1)
	}
}

func getJSONInto(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// metricValue reads one unlabelled sample from the node's /metrics.
func metricValue(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get(p.base() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("metric %s not found", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
