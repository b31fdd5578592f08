package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The baseline: seed 001's design, as written there (lib/presence/redis.ts),
// in Go against a local redis-server: a presence key per user with a 60 s
// TTL refreshed by a 30 s heartbeat, a Redis set per room (SADD on join,
// SREM on leave, EXPIRE 600 s), and a pipelined GET for batches. Only the
// Redis side is run; the seed's HTTP route in front of it is not, which
// favours the seed.

const (
	seedTTL       = 60 * time.Second
	seedHeartbeat = 30 * time.Second
)

type seedStore struct{ rdb *redis.Client }

type seedPresence struct {
	UserID   string         `json:"odId"` // sic: the seed's field name
	Name     string         `json:"name"`
	Status   string         `json:"status"`
	LastSeen int64          `json:"lastSeen"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

func (s seedStore) updatePresence(ctx context.Context, user, status string) error {
	b, _ := json.Marshal(seedPresence{UserID: user, Name: user, Status: status, LastSeen: time.Now().UnixMilli()})
	return s.rdb.SetEx(ctx, "presence:"+user, b, seedTTL).Err()
}

func (s seedStore) joinRoom(ctx context.Context, room, user string) error {
	if err := s.rdb.SAdd(ctx, "room:"+room, user).Err(); err != nil {
		return err
	}
	return s.rdb.Expire(ctx, "room:"+room, 10*seedTTL).Err()
}

func (s seedStore) leaveRoom(ctx context.Context, room, user string) error {
	return s.rdb.SRem(ctx, "room:"+room, user).Err()
}

// getMultiplePresence is the seed's pipelined batch GET.
func (s seedStore) getMultiplePresence(ctx context.Context, users []string) (map[string]*seedPresence, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.Get(ctx, "presence:"+u)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	out := make(map[string]*seedPresence, len(users))
	for i, u := range users {
		b, err := cmds[i].Bytes()
		if err != nil {
			out[u] = nil
			continue
		}
		var p seedPresence
		if json.Unmarshal(b, &p) == nil {
			out[u] = &p
		}
	}
	return out, nil
}

// roomListing is the seed's GET /api/presence/room/{roomId}: the room set,
// then the batch, keeping users whose key has not expired. It also returns
// the room set itself.
func (s seedStore) roomListing(ctx context.Context, room string) (map[string]*seedPresence, []string, error) {
	members, err := s.rdb.SMembers(ctx, "room:"+room).Result()
	if err != nil {
		return nil, nil, err
	}
	ps, err := s.getMultiplePresence(ctx, members)
	if err != nil {
		return nil, nil, err
	}
	for u, p := range ps {
		if p == nil {
			delete(ps, u)
		}
	}
	return ps, members, nil
}

// startRedis runs redis-server on a free loopback port, without persistence.
func startRedis(dir string) (*exec.Cmd, *redis.Client, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, fmt.Errorf("redis-server not installed (Debian: apt-get install redis-server): %w", err)
	}
	addr := freeAddr("127.0.0.1")
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	logf, _ := os.Create(filepath.Join(dir, "redis.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	go func() { _ = cmd.Wait() }()
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 128})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rdb.Ping(context.Background()).Err() == nil {
			return cmd, rdb, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, nil, fmt.Errorf("redis-server did not answer on %s", addr)
}

// throughput runs op from conc goroutines for d and returns ops/s.
func throughput(ctx context.Context, conc int, d time.Duration, op func(ctx context.Context, g, i int) error) (float64, int64) {
	var ok, failed atomic.Int64
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; tctx.Err() == nil; i++ {
				if op(tctx, g, i) == nil {
					ok.Add(1)
				} else if tctx.Err() == nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / d.Seconds(), failed.Load()
}

func userIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
