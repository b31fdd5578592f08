package client

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// okServer answers every frame after the hello with {"type":"ok"} and the
// frame's id (found by a plain scan, so the server side allocates little
// and the numbers are mostly the client's).
func okServer(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		var out []byte
		for first := true; ; first = false {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			id := []byte("0")
			if i := bytes.Index(b, []byte(`"id":`)); i >= 0 {
				rest := b[i+5:]
				if j := bytes.IndexAny(rest, ",}"); j >= 0 {
					id = rest[:j]
				}
			}
			out = out[:0]
			if first {
				out = append(out, `{"type":"welcome","session":"s1","id":`...)
			} else {
				out = append(out, `{"type":"ok","id":`...)
			}
			out = append(append(out, id...), '}')
			if ws.Write(ctx, websocket.MessageText, out) != nil {
				return
			}
		}
	}))
	tb.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// BenchmarkEnterLeave is one enter and one leave, each waiting for its
// answer: what the load generator's churn does. Its allocations are the
// client's cost per pair (the fake server's are a few).
func BenchmarkEnterLeave(b *testing.B) {
	ctx := context.Background()
	c, err := Dial(ctx, okServer(b), Options{NoAutoPing: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Drop()
	data := map[string]any{"v": 1}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Leave(ctx, "r001", nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Enter(ctx, "r001", data); err != nil {
			b.Fatal(err)
		}
	}
}
