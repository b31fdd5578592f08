package gateway

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// The hold endpoint writes a byte every 250 ms while it is open (peers use
// them as proof of life: cluster/overrule.go), and ends when the node drains.
func TestHoldTicks(t *testing.T) {
	n := newTestNode(t, nodeOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // the deadline of every read below
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.http.URL+"/internal/v1/hold", nil)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("2 ticks not read within the deadline: %v", err)
	}
	took := time.Since(start)
	t.Logf("2 bytes after %v", took)
	if took < 400*time.Millisecond {
		t.Fatalf("2 bytes after %v: the hold should tick every 250 ms, not burst (measured from before the request)", took)
	}
	drained := time.Now()
	n.gw.Drain(ctx)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("the hold did not end cleanly when the node drained: %v", err)
	}
	t.Logf("ended %v after Drain", time.Since(drained))
}
