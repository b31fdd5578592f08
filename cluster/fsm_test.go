package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// fsmHarness applies commands to a bare metaFSM at increasing indexes.
type fsmHarness struct {
	t     *testing.T
	f     *metaFSM
	index uint64
}

func newFSMHarness(t *testing.T) *fsmHarness {
	return &fsmHarness{t: t, f: newMetaFSM(zap.NewNop())}
}

func (h *fsmHarness) apply(cmd command) result {
	h.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	res, ok := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b}).(result)
	if !ok {
		h.t.Fatalf("Apply returned %T", res)
	}
	return res
}

func putCmd(id string, m RoomMeta) command {
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = time.Now().UTC()
	}
	return command{Op: opPut, RequestID: id, Meta: &m}
}

func TestFSMPutSetsVersion(t *testing.T) {
	h := newFSMHarness(t)
	res := h.apply(putCmd("a", RoomMeta{Room: "r", MaxMembers: 5}))
	if res.err() != nil || res.Meta.Version != 1 || res.Meta.MaxMembers != 5 {
		t.Fatalf("put result = %+v", res)
	}
	got, ok := h.f.get("r")
	if !ok || !reflect.DeepEqual(got, res.Meta) {
		t.Fatalf("get = %+v, %v; want %+v", got, ok, res.Meta)
	}
}

func TestFSMRetryReturnsFirstResult(t *testing.T) {
	h := newFSMHarness(t)
	first := h.apply(putCmd("a", RoomMeta{Room: "r", MaxMembers: 1}))
	second := h.apply(putCmd("b", RoomMeta{Room: "r", MaxMembers: 2}))

	// A retry of "a" (new timestamp, same intent) answers what "a" did and
	// must not roll the room back to MaxMembers 1.
	retry := putCmd("a", RoomMeta{Room: "r", MaxMembers: 1, UpdatedAt: first.Meta.UpdatedAt.Add(time.Second)})
	res := h.apply(retry)
	if res.err() != nil || !reflect.DeepEqual(res.Meta, first.Meta) {
		t.Fatalf("retry = %+v, want first result %+v", res.Meta, first.Meta)
	}
	if got, _ := h.f.get("r"); !reflect.DeepEqual(got, second.Meta) {
		t.Fatalf("room after retry = %+v, want %+v", got, second.Meta)
	}

	// The same id for a different command is a client bug, not a retry.
	res = h.apply(putCmd("a", RoomMeta{Room: "r", MaxMembers: 3}))
	if !errors.Is(res.err(), ErrInvalid) {
		t.Fatalf("reused id: err = %v, want ErrInvalid", res.err())
	}
	if got, _ := h.f.get("r"); got.MaxMembers != 2 {
		t.Fatalf("reused id changed the room: %+v", got)
	}
}

func TestFSMDelete(t *testing.T) {
	h := newFSMHarness(t)
	if res := h.apply(command{Op: opDelete, RequestID: "d0", Room: "r"}); !errors.Is(res.err(), ErrNotFound) {
		t.Fatalf("delete missing: %v, want ErrNotFound", res.err())
	}
	h.apply(putCmd("p", RoomMeta{Room: "r"}))
	if res := h.apply(command{Op: opDelete, RequestID: "d1", Room: "r"}); res.err() != nil {
		t.Fatalf("delete: %v", res.err())
	}
	// Retrying a delete that succeeded still succeeds...
	if res := h.apply(command{Op: opDelete, RequestID: "d1", Room: "r"}); res.err() != nil {
		t.Fatalf("delete retry: %v", res.err())
	}
	// ...and retrying the earlier put does not resurrect the room.
	h.apply(putCmd("p", RoomMeta{Room: "r"}))
	if _, ok := h.f.get("r"); ok {
		t.Fatal("put retry resurrected a deleted room")
	}
}

func TestFSMRejectsBadCommands(t *testing.T) {
	h := newFSMHarness(t)
	for name, cmd := range map[string]command{
		"unknown op":   {Op: "merge", RequestID: "1"},
		"put no meta":  {Op: opPut, RequestID: "2"},
		"invalid meta": putCmd("3", RoomMeta{Room: "r", GraceMS: -1}),
	} {
		if res := h.apply(cmd); !errors.Is(res.err(), ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, res.err())
		}
	}
	h.index++
	res := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: []byte("{not json")}).(result)
	if !errors.Is(res.err(), ErrInvalid) {
		t.Errorf("undecodable: err = %v, want ErrInvalid", res.err())
	}
	if n := h.f.count(); n != 0 {
		t.Fatalf("%d rooms after bad commands", n)
	}
	if h.f.appliedIndex() != h.index {
		t.Fatalf("applied = %d, want %d", h.f.appliedIndex(), h.index)
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func persist(t *testing.T, f *metaFSM) *memSink {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v (closed %v)", err, sink.closed)
	}
	return &sink
}

func TestFSMSnapshotRestore(t *testing.T) {
	h := newFSMHarness(t)
	h.apply(putCmd("a", RoomMeta{Room: "b-room", Metadata: json.RawMessage(`{"x":[1,2]}`)}))
	h.apply(putCmd("b", RoomMeta{Room: "a-room", Visibility: VisibilityPublic}))
	h.apply(putCmd("c", RoomMeta{Room: "gone"}))
	h.apply(command{Op: opDelete, RequestID: "d", Room: "gone"})
	sink := persist(t, h.f)

	// Restore into a replica that has a stale room and a room the snapshot
	// no longer has: listeners hear exactly the difference.
	r := &fsmHarness{t: t, f: newMetaFSM(zap.NewNop())}
	r.apply(putCmd("x", RoomMeta{Room: "stale"}))
	var changes []change
	r.f.addListener(func(m RoomMeta, deleted bool) { changes = append(changes, change{m, deleted}) })
	if err := r.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := r.f.list(), h.f.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored rooms = %+v\nwant %+v", got, want)
	}
	if r.f.appliedIndex() != h.f.appliedIndex() {
		t.Fatalf("applied = %d, want %d", r.f.appliedIndex(), h.f.appliedIndex())
	}
	if !reflect.DeepEqual(r.f.requests.list(), h.f.requests.list()) {
		t.Fatal("idempotency window not restored")
	}
	puts, dels := 0, 0
	for _, c := range changes {
		if c.deleted {
			dels++
			if c.meta.Room != "stale" {
				t.Errorf("unexpected delete of %q", c.meta.Room)
			}
		} else {
			puts++
		}
	}
	if puts != 2 || dels != 1 {
		t.Fatalf("restore announced %d puts and %d deletes, want 2 and 1: %+v", puts, dels, changes)
	}

	// A retry after the restore is still recognised.
	r.index = h.index
	if res := r.apply(putCmd("a", RoomMeta{Room: "b-room", Metadata: json.RawMessage(`{"x":[1,2]}`)})); res.Meta.Version != 1 {
		t.Fatalf("retry after restore: version %d, want 1", res.Meta.Version)
	}
}

func TestFSMRestoreRejectsUnknownFormat(t *testing.T) {
	f := newMetaFSM(zap.NewNop())
	err := f.Restore(io.NopCloser(bytes.NewReader([]byte(`{"format":99}`))))
	if err == nil {
		t.Fatal("Restore accepted format 99")
	}
}

// FuzzFSMApply: no log entry may panic the FSM or store an invalid room.
func FuzzFSMApply(f *testing.F) {
	for _, seed := range []string{
		`{"op":"put","request_id":"a","meta":{"room":"r","metadata":{"k":1}}}`,
		`{"op":"delete","request_id":"b","room":"r"}`,
		`{"op":"put","meta":null}`,
		`{"op":"put","meta":{"room":"","grace_ms":-5}}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newMetaFSM(zap.NewNop())
		for i := uint64(1); i <= 2; i++ { // twice: the second is a retry
			if _, ok := m.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: data}).(result); !ok {
				t.Fatal("Apply did not return a result")
			}
		}
		for _, r := range m.list() {
			if err := r.Validate(); err != nil {
				t.Fatalf("stored invalid room %+v: %v", r, err)
			}
		}
	})
}
