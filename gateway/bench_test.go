package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

// benchNode serves a gateway over loopback HTTP with n sessions (n/2 users,
// two tabs each) in room "big".
func benchNode(b *testing.B, n int) (*httptest.Server, []string) {
	b.Helper()
	e := session.New(session.Config{Node: "bench", Incarnation: 1})
	v, _ := NewVerifier(AuthConfig{})
	gw := New(Config{Logger: zap.NewNop(), RateLimit: 1e9}, e, v) // a benchmark's one session sends as fast as it can
	hs := httptest.NewServer(gw.Handler())
	b.Cleanup(func() { hs.Close(); gw.Close(); e.Stop() })
	var users []string
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("user-%d", i/2)
		if i%2 == 0 {
			users = append(users, u)
		}
		op, err := e.Open(session.OpenRequest{User: u, Device: session.Device{Kind: "web"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Enter(op.Session, "big", []byte(`{"cursor":{"x":10,"y":20}}`)); err != nil {
			b.Fatal(err)
		}
	}
	return hs, users
}

func benchGET(b *testing.B, url string) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkHTTPRoomMembers10k: GET /v1/rooms/big/members of 10k members (target ≤ 10 ms).
func BenchmarkHTTPRoomMembers10k(b *testing.B) {
	hs, _ := benchNode(b, 10_000)
	benchGET(b, hs.URL+"/v1/rooms/big/members")
}

// BenchmarkHTTPRoomCounts10k: GET /v1/rooms/big/counts (target ≤ 1 ms).
func BenchmarkHTTPRoomCounts10k(b *testing.B) {
	hs, _ := benchNode(b, 10_000)
	benchGET(b, hs.URL+"/v1/rooms/big/counts")
}

// BenchmarkHTTPUsersBatch100: GET /v1/users?ids= with 100 ids (target ≤ 1 ms).
func BenchmarkHTTPUsersBatch100(b *testing.B) {
	hs, users := benchNode(b, 10_000)
	benchGET(b, hs.URL+"/v1/users?ids="+strings.Join(users[:100], ","))
}

// BenchmarkWSEnterLeave is one session's enter+leave pair over a real
// WebSocket on loopback, each answered before the next (client and server
// in this process: -benchmem counts both sides' allocations).
func BenchmarkWSEnterLeave(b *testing.B) {
	hs, _ := benchNode(b, 1000)
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/ws", client.Options{User: "bench-user", NoAutoPing: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Drop()
	data := map[string]any{"v": 1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Enter(ctx, "big", data); err != nil {
			b.Fatal(err)
		}
		if err := c.Leave(ctx, "big", nil); err != nil {
			b.Fatal(err)
		}
	}
}
