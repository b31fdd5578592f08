package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Room-metadata writes are accepted on any node. A follower ships the raft
// command (self-contained, idempotent by request id) to the leader over
// memberlist's reliable messaging and waits for the leader's result:
//
//	metaCmd:    corr(uvarint) | command JSON
//	metaResult: corr(uvarint) | forwardReply JSON
const (
	msgMetaCmd    byte = 5
	msgMetaResult byte = 6
)

type forwardReply struct {
	Result result `json:"result"`
	Err    string `json:"err,omitempty"` // "", not_leader, unknown_outcome, unavailable (+ Msg)
	Msg    string `json:"msg,omitempty"`
}

// forwardToLeader is the Meta's Forwarder.
func (c *Cluster) forwardToLeader(ctx context.Context, cmd command) (result, error) {
	leader := c.cfg.Meta.LeaderID()
	node := c.nodeByStableName(leader)
	if leader == "" || node == nil {
		return result{}, fmt.Errorf("%w: no leader known", ErrNotLeader)
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return result{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	corr := c.corr.Add(1)
	ch := make(chan forwardReply, 1)
	c.mu.Lock()
	c.pending[corr] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, corr)
		c.mu.Unlock()
	}()
	msg := encodeMsg(msgMetaCmd, c.name, append(binary.AppendUvarint(nil, corr), body...))
	if err := c.ml.SendReliable(node, msg); err != nil {
		return result{}, fmt.Errorf("%w: forward to leader %s: %v", ErrNotLeader, leader, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultApplyTimeout)
		defer cancel()
	}
	select {
	case r := <-ch:
		switch r.Err {
		case "":
			return r.Result, r.Result.err()
		case "not_leader":
			return result{}, fmt.Errorf("%w: %s", ErrNotLeader, r.Msg)
		case "unknown_outcome":
			return result{}, fmt.Errorf("%w: %s", ErrUnknownOutcome, r.Msg)
		default:
			return result{}, fmt.Errorf("cluster: leader: %s", r.Msg)
		}
	case <-ctx.Done():
		return result{}, fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
	case <-c.stop:
		return result{}, ErrClosed
	}
}

// answerMetaCmd applies a forwarded command on this (leader) node and
// replies; it runs in its own goroutine (raft takes milliseconds).
func (c *Cluster) answerMetaCmd(sender string, body []byte) {
	corr, k := binary.Uvarint(body)
	if k <= 0 || c.cfg.Meta == nil {
		return
	}
	var cmd command
	reply := forwardReply{}
	if err := json.Unmarshal(body[k:], &cmd); err != nil {
		reply.Err, reply.Msg = "unavailable", "malformed command"
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), defaultApplyTimeout)
		res, err := c.cfg.Meta.applyForwarded(ctx, cmd)
		cancel()
		switch {
		case err == nil:
			reply.Result = res
		case errors.Is(err, ErrNotFound):
			reply.Result = result{Code: codeNotFound, Msg: err.Error()}
		case errors.Is(err, ErrInvalid):
			reply.Result = result{Code: codeInvalid, Msg: err.Error()}
		case errors.Is(err, ErrNotLeader):
			reply.Err, reply.Msg = "not_leader", err.Error()
		case errors.Is(err, ErrUnknownOutcome):
			reply.Err, reply.Msg = "unknown_outcome", err.Error()
		default:
			reply.Err, reply.Msg = "unavailable", err.Error()
		}
	}
	b, _ := json.Marshal(reply)
	if node := c.nodeNamed(sender); node != nil {
		_ = c.ml.SendReliable(node, encodeMsg(msgMetaResult, c.name, append(binary.AppendUvarint(nil, corr), b...)))
	}
}

func (c *Cluster) deliverMetaResult(body []byte) {
	corr, k := binary.Uvarint(body)
	if k <= 0 {
		return
	}
	var r forwardReply
	if err := json.Unmarshal(body[k:], &r); err != nil {
		return
	}
	c.mu.Lock()
	ch := c.pending[corr]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// nodeByStableName finds the alive member whose stable name is id.
func (c *Cluster) nodeByStableName(id string) *memberlist.Node {
	if id == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.peers {
		if p.origin.Node == id {
			return p.node.Load()
		}
	}
	return nil
}
