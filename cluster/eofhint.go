package cluster

import (
	"context"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// EOF hint. A killed process's TCP peers see EOF within a millisecond, long
// before gossip's failure detector (~1 s on loopback, seconds on a LAN)
// declares it dead. Each node holds one idle HTTP request open to every
// peer's /internal/v1/hold; when it ends with an error or EOF while the peer
// is still a member, its sessions are marked stale at once (OriginFailed).
// If gossip does not confirm the death within hintConfirm, and the hold
// can be re-established, the hint is withdrawn (OriginAlive): stale is
// reversible, leave is not, and leave still waits for the grace window.

const (
	holdPath    = "/internal/v1/hold"
	hintConfirm = 5 * time.Second
)

func (c *Cluster) watchPeer(p *peer, httpAddr string) {
	defer c.wg.Done()
	if httpAddr == "" {
		return
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + httpAddr + holdPath
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.stop:
			case <-p.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil && resp.StatusCode == http.StatusOK {
			attempt = 0
			p.holdSince.Store(time.Now().UnixNano())
			p.readHold(resp.Body) // returns when the peer goes away
			resp.Body.Close()
			if ctx.Err() == nil {
				c.hint(p)
			}
		} else if resp != nil {
			resp.Body.Close()
		}
		cancel()
		select {
		case <-c.stop:
			return
		case <-p.stop:
			return
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second)):
		}
	}
}

// readHold reads the held connection until it ends, noting when each byte
// arrives: a peer writes one every 250 ms (older peers write nothing, and are
// simply never seen ticking). The time is what overrule.go calls fresh.
func (p *peer) readHold(body io.Reader) {
	buf := make([]byte, 64)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			p.holdTick.Store(monoNow())
		}
		if err != nil {
			p.holdTick.Store(0)
			return
		}
	}
}

// hint marks a peer's sessions stale because its connection dropped, and
// withdraws that if gossip still sees the peer alive after hintConfirm.
func (c *Cluster) hint(p *peer) {
	c.mu.Lock()
	_, stillPeer := c.peers[p.name]
	_, alreadyFailed := c.failed[p.origin]
	if !stillPeer || alreadyFailed || c.closed.Load() {
		c.mu.Unlock()
		return
	}
	c.failed[p.origin] = struct{}{}
	c.mu.Unlock()
	c.stats.EOFHints.Add(1)
	c.log.Info("peer connection dropped: treating it as failed until gossip says otherwise", zap.String("peer", p.name))
	c.cfg.Replica.OriginFailed(p.origin)
	at := time.Now()
	time.AfterFunc(hintConfirm, func() { c.confirmHint(p, at) })
}

// confirmHint withdraws a hint only on evidence that the peer is alive: it is
// still a gossip member and our held connection to it is up again since the
// hint. (A suspect that is really dead stays failed.)
func (c *Cluster) confirmHint(p *peer, at time.Time) {
	if c.closed.Load() {
		return
	}
	name, o := p.name, p.origin
	if p.holdSince.Load() <= at.UnixNano() {
		c.mu.Lock()
		_, stillPeer := c.peers[name]
		c.mu.Unlock()
		if stillPeer {
			time.AfterFunc(hintConfirm, func() { c.confirmHint(p, at) }) // look again later
		}
		return
	}
	c.mu.Lock()
	_, stillPeer := c.peers[name] // NotifyLeave removes dead peers
	_, failed := c.failed[o]
	if stillPeer && failed {
		delete(c.failed, o)
	}
	c.mu.Unlock()
	if stillPeer && failed {
		c.log.Info("peer still alive in gossip: failure hint withdrawn", zap.String("peer", name))
		c.cfg.Replica.OriginAlive(o)
	}
}
