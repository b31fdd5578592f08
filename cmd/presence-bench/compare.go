package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// seedResult is the side-by-side of presenced and seed 001's design.
type seedResult struct {
	Skipped           string     `json:"skipped,omitempty"`
	SeedHeartbeats    float64    `json:"seed_heartbeats_per_s"`
	WSHeartbeats      float64    `json:"presenced_ws_heartbeats_per_s"`
	HTTPHeartbeats    float64    `json:"presenced_http_heartbeats_per_s"`
	SeedBatch         dist       `json:"seed_batch100"`
	PresencedBatch    dist       `json:"presenced_batch100"`
	Accuracy          []accPoint `json:"accuracy"`
	AccUsers, AccTabs int        `json:"-"`
}

// accPoint is what each system shows at one moment after the workload's
// closes and crashes.
type accPoint struct {
	After           string `json:"after"`
	SeedGhosts      int    `json:"seed_ghosts"`      // users shown online with no tab left
	SeedSetGhosts   int    `json:"seed_set_ghosts"`  // gone users still in the room set
	SeedLost        int    `json:"seed_lost"`        // users with a live tab not shown online in the room
	PresGhosts      int    `json:"presenced_ghosts"` // users shown online (active/idle/away) with no session left
	PresStaleListed int    `json:"presenced_stale"`  // gone users still listed, as stale (inside grace)
	PresLost        int    `json:"presenced_lost"`   // users with a live session not shown online
}

func compareWithSeed(ctx context.Context, dir string, n *node, progress func(string, ...any)) seedResult {
	var res seedResult
	cmd, rdb, err := startRedis(dir)
	if err != nil {
		res.Skipped = err.Error()
		progress("seed baseline skipped: %v", err)
		return res
	}
	defer func() { _ = cmd.Process.Kill(); rdb.Close() }()
	s := seedStore{rdb}
	const conc = 64
	d := 5 * time.Second

	progress("seed baseline: heartbeat throughput (%d clients, %v each)", conc, d)
	res.SeedHeartbeats, _ = throughput(ctx, conc, d, func(ctx context.Context, g, i int) error {
		return s.updatePresence(ctx, fmt.Sprintf("hb%d-%d", g, i%500), "online")
	})
	var wsc []*client.Client
	for g := 0; g < conc; g++ {
		c, err := client.Dial(ctx, n.ws(), client.Options{User: fmt.Sprintf("hbws%d", g), NoAutoPing: true, EventBuffer: 1})
		if err != nil {
			res.Skipped = err.Error()
			return res
		}
		wsc = append(wsc, c)
	}
	res.WSHeartbeats, _ = throughput(ctx, conc, d, func(ctx context.Context, g, i int) error {
		_, err := wsc[g].Ping(ctx)
		return err
	})
	for _, c := range wsc {
		c.Drop()
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	res.HTTPHeartbeats, _ = throughput(ctx, conc, d, func(ctx context.Context, g, i int) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", n.base()+"/api/presence", strings.NewReader(`{"status":"online"}`))
		req.Header.Set("X-Presence-User", fmt.Sprintf("hbhttp%d", g))
		req.Header.Set("X-Presence-Client", "tab1")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})

	progress("seed baseline: batch of 100 users (pipelined GET vs GET /v1/users)")
	ids := userIDs("hb0-", 100)
	var sb, pb samples
	for i := 0; i < 2000; i++ {
		t0 := time.Now()
		if _, err := s.getMultiplePresence(ctx, ids); err == nil {
			sb.add(time.Since(t0))
		}
	}
	q := n.base() + "/v1/users?ids=" + url.QueryEscape(strings.Join(userIDs("hbws", 100), ","))
	for i := 0; i < 2000; i++ {
		t0 := time.Now()
		resp, err := hc.Get(q)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			pb.add(time.Since(t0))
		}
	}
	res.SeedBatch, res.PresencedBatch = sb.dist(), pb.dist()

	res.Accuracy = accuracy(ctx, s, n, progress)
	return res
}

// accuracy runs one workload on both: 300 users with 2 tabs each in one
// room; 100 users close one tab (the other stays), 100 users' tabs both
// crash (no leave, no beacon), 100 are untouched. Truth afterwards: 200
// users here, 100 gone.
func accuracy(ctx context.Context, s seedStore, n *node, progress func(string, ...any)) []accPoint {
	const users, room = 300, "bench-acc"
	progress("accuracy: %d users × 2 tabs on both systems; 100 close a tab, 100 crash, 100 stay; checked for %v", users, seedTTL+5*time.Second)
	// presenced: one WebSocket session per tab.
	tabs := make([][2]*client.Client, users)
	for u := 0; u < users; u++ {
		for t := 0; t < 2; t++ {
			c, err := client.Dial(ctx, n.ws(), client.Options{User: fmt.Sprintf("acc%d", u), EventBuffer: 1})
			if err != nil {
				progress("accuracy: %v", err)
				return nil
			}
			if err := c.Enter(ctx, room, nil); err != nil {
				progress("accuracy: %v", err)
				return nil
			}
			tabs[u][t] = c
		}
	}
	// The seed: each tab mounts (heartbeat online, join room), heartbeats every 30 s.
	sctx, stopSeed := context.WithCancel(ctx)
	defer stopSeed()
	var wg sync.WaitGroup
	seedTab := make([][2]context.CancelFunc, users)
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("acc%d", u)
		for t := 0; t < 2; t++ {
			_ = s.updatePresence(ctx, user, "online")
			_ = s.joinRoom(ctx, room, user)
			tctx, cancel := context.WithCancel(sctx)
			seedTab[u][t] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				for sleepCtx(tctx, seedHeartbeat) {
					_ = s.updatePresence(tctx, user, "online")
				}
			}()
		}
	}
	sleepCtx(ctx, time.Second)
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("acc%d", u)
		switch {
		case u < 100: // close one tab: beforeunload beacon (leave room), unmount beacon (offline)
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = tabs[u][0].CloseSession(cctx, session.ReasonClosed, nil)
			cancel()
			tabs[u][0].Drop()
			seedTab[u][0]()
			_ = s.leaveRoom(ctx, room, user)
			_ = s.updatePresence(ctx, user, "offline")
		case u < 200: // both tabs crash
			tabs[u][0].Drop()
			tabs[u][1].Drop()
			seedTab[u][0]()
			seedTab[u][1]()
		}
	}
	crashed := func(u int) bool { return u >= 100 && u < 200 }
	start := time.Now()
	var out []accPoint
	for _, at := range []time.Duration{time.Second, 20 * time.Second, 35 * time.Second, seedTTL + 5*time.Second} {
		sleepCtx(ctx, time.Until(start.Add(at)))
		p := accPoint{After: at.String()}
		listed, members, err := s.roomListing(ctx, room)
		if err == nil {
			inSet := map[string]bool{}
			for _, m := range members {
				inSet[m] = true
			}
			for u := 0; u < users; u++ {
				user := fmt.Sprintf("acc%d", u)
				sp := listed[user]
				online := sp != nil && sp.Status == "online"
				if crashed(u) && online {
					p.SeedGhosts++
				}
				if crashed(u) && inSet[user] {
					p.SeedSetGhosts++
				}
				if !crashed(u) && !online {
					p.SeedLost++
				}
			}
		}
		var body struct {
			Users []session.RoomUser `json:"users"`
		}
		if getJSON(n.base()+"/v1/rooms/"+room+"/users", &body) == nil {
			state := map[string]session.State{}
			for _, ru := range body.Users {
				state[ru.User] = ru.State
			}
			for u := 0; u < users; u++ {
				st, listed := state[fmt.Sprintf("acc%d", u)]
				online := listed && (st == session.Active || st == session.Idle || st == session.Away)
				switch {
				case crashed(u) && online:
					p.PresGhosts++
				case crashed(u) && listed:
					p.PresStaleListed++
				case !crashed(u) && !online:
					p.PresLost++
				}
			}
		}
		progress("accuracy after %v: seed ghosts %d (room set %d), seed lost %d; presenced ghosts %d (stale listed %d), lost %d",
			at, p.SeedGhosts, p.SeedSetGhosts, p.SeedLost, p.PresGhosts, p.PresStaleListed, p.PresLost)
		out = append(out, p)
	}
	stopSeed()
	wg.Wait()
	for u := range tabs {
		for _, c := range tabs[u] {
			c.Drop()
		}
	}
	return out
}

func getJSON(u string, out any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
