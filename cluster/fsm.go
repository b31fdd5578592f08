package cluster

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Command ops.
const (
	opPut    = "put"
	opDelete = "delete"
	opRead   = "read" // a linearizable read: changes nothing, answers in log order
)

// command is one raft log entry, JSON encoded. It is self-contained and
// deterministic: every replica applying it reaches the same state, so the
// proposer fills in anything clock-dependent (Meta.UpdatedAt) before it is
// proposed. A forwarding layer can ship it to the leader as is.
type command struct {
	Op        string    `json:"op"`
	RequestID string    `json:"request_id"`
	Meta      *RoomMeta `json:"meta,omitempty"` // put
	Room      string    `json:"room,omitempty"` // delete, read
}

// Result codes carried by result and outcome. They are data (not Go errors)
// because a result may cross the network once writes are forwarded.
const (
	codeNotFound = "not_found"
	codeInvalid  = "invalid"
)

// result is what metaFSM.Apply returns through raft's ApplyFuture.
type result struct {
	Meta RoomMeta `json:"meta"` // the stored value, for a successful put
	Code string   `json:"code,omitempty"`
	Msg  string   `json:"msg,omitempty"`
}

// err maps a result code to the package's sentinel errors.
func (r result) err() error {
	switch r.Code {
	case "":
		return nil
	case codeNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, r.Msg)
	case codeInvalid:
		return fmt.Errorf("%w: %s", ErrInvalid, r.Msg)
	default:
		return fmt.Errorf("cluster: unknown result code %q: %s", r.Code, r.Msg)
	}
}

// change is one applied change, handed to OnChange listeners.
type change struct {
	meta    RoomMeta
	deleted bool
}

// metaFSM is the raft state machine: rooms by id, plus the idempotency
// window. raft calls Apply, Snapshot and Restore from one goroutine; reads
// (get, list) come from any goroutine under mu.
type metaFSM struct {
	logger *zap.Logger

	mu       sync.RWMutex
	rooms    map[string]RoomMeta
	requests *requestWindow
	applied  uint64 // index of the last command log applied

	listenMu  sync.Mutex                             // serialises addListener
	listeners atomic.Pointer[[]func(RoomMeta, bool)] // copy on write; read lock-free by Apply
}

func newMetaFSM(logger *zap.Logger) *metaFSM {
	return &metaFSM{
		logger:   logger,
		rooms:    make(map[string]RoomMeta),
		requests: newRequestWindow(requestWindowSize),
	}
}

var _ raft.FSM = (*metaFSM)(nil)

// Apply implements raft.FSM.
func (f *metaFSM) Apply(l *raft.Log) any {
	var cmd command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		// Every replica fails the same way, so skipping keeps them equal.
		f.logger.Error("undecodable raft command", zap.Uint64("index", l.Index), zap.Error(err))
		f.mu.Lock()
		f.applied = l.Index
		f.mu.Unlock()
		return result{Code: codeInvalid, Msg: "undecodable command"}
	}
	res, ch := f.applyCommand(l.Index, cmd)
	if ch != nil {
		f.notify([]change{*ch})
	}
	return res
}

// applyCommand applies cmd at log index and returns its result and the
// change to announce (nil when nothing changed).
func (f *metaFSM) applyCommand(index uint64, cmd command) (result, *change) {
	digest := commandDigest(cmd)

	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = index

	if cmd.Op == opRead { // not kept in the idempotency window: reads repeat safely
		m, ok := f.rooms[cmd.Room]
		if !ok {
			return result{Code: codeNotFound, Msg: fmt.Sprintf("room %q", cmd.Room)}, nil
		}
		return result{Meta: m.clone()}, nil
	}
	if cmd.RequestID != "" {
		if o, ok := f.requests.get(cmd.RequestID); ok {
			return replay(o, cmd, digest), nil
		}
	}

	o := outcome{ID: cmd.RequestID, Digest: digest}
	var res result
	var ch *change
	switch cmd.Op {
	case opPut:
		if cmd.Meta == nil {
			res = result{Code: codeInvalid, Msg: "put without meta"}
			break
		}
		if err := cmd.Meta.Validate(); err != nil {
			res = result{Code: codeInvalid, Msg: strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")}
			break
		}
		m := *cmd.Meta
		m.Version = index
		f.rooms[m.Room] = m
		o.Version, o.UpdatedAt = m.Version, m.UpdatedAt.UnixNano()
		res = result{Meta: m.clone()}
		ch = &change{meta: m.clone()}
	case opDelete:
		if _, ok := f.rooms[cmd.Room]; !ok {
			res = result{Code: codeNotFound, Msg: fmt.Sprintf("room %q", cmd.Room)}
			break
		}
		delete(f.rooms, cmd.Room)
		ch = &change{meta: RoomMeta{Room: cmd.Room, Version: index}, deleted: true}
	default:
		res = result{Code: codeInvalid, Msg: fmt.Sprintf("unknown op %q", cmd.Op)}
	}
	o.Code, o.Msg = res.Code, res.Msg
	if cmd.RequestID != "" {
		f.requests.add(o)
	}
	return res, ch
}

// replay rebuilds the first attempt's result for a retried command.
func replay(o outcome, cmd command, digest uint64) result {
	if o.Digest != digest {
		return result{Code: codeInvalid, Msg: fmt.Sprintf("request id %q was already used for a different command", cmd.RequestID)}
	}
	res := result{Code: o.Code, Msg: o.Msg}
	if o.Code == "" && cmd.Op == opPut && cmd.Meta != nil {
		res.Meta = cmd.Meta.clone()
		res.Meta.Version = o.Version
		res.Meta.UpdatedAt = time.Unix(0, o.UpdatedAt).UTC()
	}
	return res
}

// commandDigest identifies a command's intent: what it writes, not when or
// under which request id. Two attempts of one request have equal digests.
func commandDigest(cmd command) uint64 {
	key := struct {
		Op   string    `json:"op"`
		Room string    `json:"room,omitempty"`
		Meta *RoomMeta `json:"meta,omitempty"`
	}{Op: cmd.Op, Room: cmd.Room}
	if cmd.Meta != nil {
		m := *cmd.Meta
		m.Version, m.UpdatedAt = 0, time.Time{}
		key.Meta = &m
	}
	b, err := json.Marshal(key)
	if err != nil {
		// Only reachable with metadata that is not JSON, which Validate
		// rejects; digest what we have so replicas still agree.
		b = []byte(cmd.Op + "\x00" + cmd.Room + "\x00" + err.Error())
	}
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// Snapshot implements raft.FSM. It copies the values only (a stored
// RoomMeta's Metadata is never mutated, so sharing it is safe); sorting and
// encoding happen in Persist, off the apply path.
func (f *metaFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	snap := &fsmSnapshot{data: snapshotData{
		Format:   snapshotFormat,
		Applied:  f.applied,
		Rooms:    make([]RoomMeta, 0, len(f.rooms)),
		Requests: f.requests.list(),
	}}
	for _, m := range f.rooms {
		snap.data.Rooms = append(snap.data.Rooms, m)
	}
	return snap, nil
}

// Restore implements raft.FSM: it replaces the whole state with the
// snapshot's and announces the difference to listeners. raft closes rc.
func (f *metaFSM) Restore(rc io.ReadCloser) error {
	data, err := decodeSnapshot(rc)
	if err != nil {
		return err
	}
	rooms := make(map[string]RoomMeta, len(data.Rooms))
	for _, m := range data.Rooms {
		rooms[m.Room] = m
	}
	requests := newRequestWindow(requestWindowSize)
	for _, o := range data.Requests {
		if _, dup := requests.get(o.ID); !dup && o.ID != "" {
			requests.add(o)
		}
	}

	f.mu.Lock()
	changes := diffRooms(f.rooms, rooms, data.Applied)
	f.rooms, f.requests, f.applied = rooms, requests, data.Applied
	f.mu.Unlock()

	f.notify(changes)
	return nil
}

// diffRooms lists what a listener must hear to go from old to new.
func diffRooms(old, new map[string]RoomMeta, index uint64) []change {
	var out []change
	for id, m := range new {
		if o, ok := old[id]; !ok || o.Version != m.Version {
			out = append(out, change{meta: m.clone()})
		}
	}
	for id := range old {
		if _, ok := new[id]; !ok {
			out = append(out, change{meta: RoomMeta{Room: id, Version: index}, deleted: true})
		}
	}
	return out
}

func (f *metaFSM) addListener(fn func(RoomMeta, bool)) {
	f.listenMu.Lock()
	defer f.listenMu.Unlock()
	var next []func(RoomMeta, bool)
	if cur := f.listeners.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, fn)
	f.listeners.Store(&next)
}

// notify runs the listeners for changes, without holding mu, so a listener
// may read the store.
func (f *metaFSM) notify(changes []change) {
	fns := f.listeners.Load()
	if fns == nil {
		return
	}
	for _, c := range changes {
		for _, fn := range *fns {
			fn(c.meta, c.deleted)
		}
	}
}

func (f *metaFSM) get(room string) (RoomMeta, bool) {
	f.mu.RLock()
	m, ok := f.rooms[room]
	f.mu.RUnlock()
	if !ok {
		return RoomMeta{}, false
	}
	return m.clone(), true
}

func (f *metaFSM) list() []RoomMeta {
	f.mu.RLock()
	out := make([]RoomMeta, 0, len(f.rooms))
	for _, m := range f.rooms {
		out = append(out, m.clone())
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b RoomMeta) int { return strings.Compare(a.Room, b.Room) })
	return out
}

func (f *metaFSM) count() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.rooms)
}

func (f *metaFSM) appliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}
