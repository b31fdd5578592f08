package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/gateway/client"
	"github.com/presenced/presenced/session"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testNode struct {
	t      *testing.T
	engine *session.Engine
	gw     *Server
	http   *httptest.Server
	wsURL  string
}

type nodeOpts struct {
	secured bool
	engine  session.Config
	gateway Config
}

// newTestNode serves a gateway over a real listener; everything stops at test end.
func newTestNode(t *testing.T, o nodeOpts) *testNode {
	t.Helper()
	if o.engine.Logger == nil {
		o.engine.Logger = zaptest.NewLogger(t)
	}
	e := session.New(o.engine)
	ac := AuthConfig{}
	if o.secured {
		ac.HS256Secret = testSecret
	}
	v, err := NewVerifier(ac)
	if err != nil {
		t.Fatal(err)
	}
	gc := o.gateway
	gc.Logger = zaptest.NewLogger(t)
	gc.Node = "test"
	gw := New(gc, e, v)
	hs := httptest.NewServer(gw.Handler())
	n := &testNode{t: t, engine: e, gw: gw, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Drain(ctx)
		hs.Close()
		gw.Close()
		e.Stop()
	})
	return n
}

func token(t *testing.T, sub string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (n *testNode) dial(opts client.Options) *client.Client {
	n.t.Helper()
	c, err := client.Dial(ctxT(n.t), n.wsURL, opts)
	if err != nil {
		n.t.Fatalf("dial: %v", err)
	}
	n.t.Cleanup(func() { c.Drop() })
	return c
}

// do sends an HTTP request and returns status and body.
func (n *testNode) do(method, path, contentType, body string, hdr map[string]string) (int, string) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.http.URL+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// nextEvent waits for the next event of a type (skipping others), failing after a deadline.
func nextEvent(t *testing.T, c *client.Client, typ session.EventType) *session.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within 5s", typ)
			return nil
		}
	}
}

// eventsUntil collects events until one matches stop (inclusive), failing after a deadline.
func eventsUntil(t *testing.T, c *client.Client, stop func(*session.Event) bool) []*session.Event {
	t.Helper()
	var out []*session.Event
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			out = append(out, ev)
			if stop(ev) {
				return out
			}
		case <-deadline:
			t.Fatalf("condition not met within 5s; got %d events", len(out))
			return nil
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
