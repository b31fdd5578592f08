package session

import (
	"errors"
	"time"

	"github.com/presenced/presenced/crdt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ErrOriginRetired is returned by Merge for entries of a node incarnation
// that was replaced by a restart: they never come back.
var ErrOriginRetired = errors.New("session: origin retired")

// The methods in this file are how the cluster tells the engine about the
// owners of replicated sessions. Every surviving node applies them on its
// own, so all of them show the same thing without writing anything.

// OriginFailed marks an owner dead: all its sessions are stale at once, on
// this node, and leave with reason node_failure after the grace window,
// unless their clients resume on another node first (the new owner's writes
// then replace the failed owner's entries, and nobody sees leave or enter).
func (e *Engine) OriginFailed(o crdt.Origin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || o == e.origin {
		return
	}
	if _, ok := e.failed[o]; ok {
		return
	}
	e.failed[o] = e.clock.AfterFunc(e.cfg.Grace, func() { e.dropFailed(o) })
	start := time.Now()
	n := e.reindexOriginLocked(o)
	e.log.Info("owner failed: its sessions are stale here", zap.Stringer("origin", o), zap.Int("sessions", n),
		zap.Duration("took", time.Since(start)))
}

// OriginAlive cancels OriginFailed when the owner turns out to be alive (a
// partition healed, a frozen process woke up inside grace): its sessions show
// their replicated state again.
func (e *Engine) OriginAlive(o crdt.Origin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.failed[o]
	if !ok {
		return
	}
	t.Stop()
	delete(e.failed, o)
	e.reindexOriginLocked(o)
}

// OriginRetired removes at once every entry of an owner incarnation that a
// restart replaced, with reason node_failure, and refuses its entries from
// then on.
func (e *Engine) OriginRetired(o crdt.Origin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || o == e.origin {
		return
	}
	if t, ok := e.failed[o]; ok {
		t.Stop()
		delete(e.failed, o)
	}
	e.retired[o] = struct{}{}
	e.dropOriginLocked(o)
}

// FailedOrigins lists the owners currently marked dead.
func (e *Engine) FailedOrigins() []crdt.Origin {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]crdt.Origin, 0, len(e.failed))
	for o := range e.failed {
		out = append(out, o)
	}
	return out
}

func (e *Engine) dropFailed(o crdt.Origin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.failed[o]; !ok || e.closed {
		return
	}
	delete(e.failed, o)
	e.dropOriginLocked(o)
}

// dropOriginLocked removes every entry written by o, announcing leaves with
// reason node_failure.
func (e *Engine) dropOriginLocked(o crdt.Origin) {
	gone := mustJSON(goneRecord{Reason: ReasonNodeFailure})
	for _, c := range e.data.DropOrigin(o) {
		c.Cur.Value = gone
		e.applyLocked(c)
	}
}

// reindexOriginLocked re-reads the records of o's sessions, so the index
// applies (or stops applying) the failed-owner override.
func (e *Engine) reindexOriginLocked(o crdt.Origin) (n int) {
	for sid, s := range e.sessions {
		if s.rec == nil || s.origin != o {
			continue
		}
		if ent, ok := e.data.Get(sessionKey(sid)); ok {
			e.applySessionLocked(sid, ent)
			n++
		}
	}
	return n
}

// PruneOrigin removes o's sessions that o itself no longer holds: keep is
// the set of keys o holds up to seq upTo, read from o after it came back
// from being declared dead (its peers may have collected the tombstones of
// what it removed meanwhile). Subscribers see leave with reason timeout.
// Returns how many entries were removed.
func (e *Engine) PruneOrigin(o crdt.Origin, keep map[string]struct{}, upTo uint64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || o == e.origin {
		return 0
	}
	gone := mustJSON(goneRecord{Reason: ReasonTimeout})
	changes := e.data.PruneOrigin(o, keep, upTo)
	for _, c := range changes {
		c.Cur.Value = gone
		if ce := e.log.Check(zapcore.DebugLevel, "pruned an entry its owner no longer holds"); ce != nil {
			ce.Write(zap.String("key", c.Key), zap.Stringer("origin", o))
		}
		e.applyLocked(c)
	}
	return len(changes)
}
