package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func TestPutGetListDelete(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	in := RoomMeta{Room: "lobby", GraceMS: 5000, MaxMembers: 50, TypingTimeoutMS: 2000, Visibility: VisibilityPublic, Metadata: json.RawMessage(`{"topic":"hi"}`)}
	got, err := s.Put(ctx, in, "req-1")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got.Version == 0 || got.UpdatedAt.IsZero() {
		t.Fatalf("Put did not set Version/UpdatedAt: %+v", got)
	}
	want := in
	want.Version, want.UpdatedAt = got.Version, got.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Put = %+v\nwant %+v", got, want)
	}
	if g, ok := s.Get("lobby"); !ok || !reflect.DeepEqual(g, got) {
		t.Fatalf("Get = %+v, %v; want %+v", g, ok, got)
	}

	// Replace: a new version, the old settings gone.
	got2, err := s.Put(ctx, RoomMeta{Room: "lobby", MaxMembers: 10}, "")
	if err != nil {
		t.Fatalf("Put replace: %v", err)
	}
	if got2.Version <= got.Version || got2.GraceMS != 0 || got2.Metadata != nil {
		t.Fatalf("replace = %+v (previous version %d)", got2, got.Version)
	}
	if _, err := s.Put(ctx, RoomMeta{Room: "attic"}, ""); err != nil {
		t.Fatal(err)
	}

	list := s.List()
	if len(list) != 2 || list[0].Room != "attic" || list[1].Room != "lobby" || list[1].Version != got2.Version {
		t.Fatalf("List = %+v", list)
	}

	if err := s.Delete(ctx, "lobby", ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok := s.Get("lobby"); ok {
		t.Fatal("Get after Delete found the room")
	}
	if err := s.Delete(ctx, "lobby", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.Rooms != 1 || st.State != "Leader" || st.Leader != "node-1" {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestGetReturnsCopies(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	if _, err := s.Put(context.Background(), RoomMeta{Room: "r", Metadata: json.RawMessage(`{"a":1}`)}, ""); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Get("r")
	m.Metadata[2] = 'X'
	s.List()[0].Metadata[2] = 'Y'
	if m2, _ := s.Get("r"); string(m2.Metadata) != `{"a":1}` {
		t.Fatalf("caller mutated the FSM: %s", m2.Metadata)
	}
}

func TestWritesRejectedBeforeRaft(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	// A new leader appends a no-op just after it is known; wait for it so
	// only our writes could move the index.
	if err := s.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().LastIndex

	for name, m := range map[string]RoomMeta{
		"empty room":    {},
		"negative":      {Room: "r", MaxMembers: -1},
		"visibility":    {Room: "r", Visibility: "secret"},
		"bad metadata":  {Room: "r", Metadata: json.RawMessage(`{`)},
		"huge metadata": {Room: "r", Metadata: json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)},
	} {
		if _, err := s.Put(ctx, m, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Put = %v, want ErrInvalid", name, err)
		}
	}
	if err := s.Delete(ctx, "", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Delete empty room = %v, want ErrInvalid", err)
	}
	if _, err := s.Put(ctx, RoomMeta{Room: "r"}, strings.Repeat("x", 129)); !errors.Is(err, ErrInvalid) {
		t.Errorf("long request id: %v, want ErrInvalid", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cancelled, RoomMeta{Room: "r"}, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v, want context.Canceled", err)
	}
	if after := s.Stats().LastIndex; after != before {
		t.Fatalf("rejected writes reached the log: last index %d -> %d", before, after)
	}
}

func TestIdempotentRetry(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	first, err := s.Put(ctx, RoomMeta{Room: "r", MaxMembers: 1}, "req-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, RoomMeta{Room: "r", MaxMembers: 2}, "req-b"); err != nil {
		t.Fatal(err)
	}
	// The client never saw req-a's answer and retries it.
	again, err := s.Put(ctx, RoomMeta{Room: "r", MaxMembers: 1}, "req-a")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !reflect.DeepEqual(again, first) {
		t.Fatalf("retry = %+v, want first result %+v", again, first)
	}
	if cur, _ := s.Get("r"); cur.MaxMembers != 2 {
		t.Fatalf("retry changed the room: %+v", cur)
	}
	if _, err := s.Put(ctx, RoomMeta{Room: "r", MaxMembers: 9}, "req-a"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reused id for another command = %v, want ErrInvalid", err)
	}

	if err := s.Delete(ctx, "r", "del-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "r", "del-1"); err != nil {
		t.Fatalf("retried delete = %v, want its first result (nil)", err)
	}
	if err := s.Delete(ctx, "r", "del-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("new delete = %v, want ErrNotFound", err)
	}
}

func TestOnChange(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	type event struct {
		m       RoomMeta
		deleted bool
		seen    bool // the listener could read its own change back
	}
	events := make(chan event, 16)
	s.OnChange(func(m RoomMeta, deleted bool) {
		_, ok := s.Get(m.Room) // reading the store from a listener must not deadlock
		events <- event{m, deleted, ok != deleted}
	})

	p1, err := s.Put(ctx, RoomMeta{Room: "a", MaxMembers: 3}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a", ""); !errors.Is(err, ErrNotFound) { // no event for a no-op
		t.Fatal(err)
	}
	p2, err := s.Put(ctx, RoomMeta{Room: "b"}, "")
	if err != nil {
		t.Fatal(err)
	}

	var got []event
	waitFor(t, "3 change events", 5*time.Second, func() bool {
		for {
			select {
			case e := <-events:
				got = append(got, e)
			default:
				return len(got) >= 3
			}
		}
	})
	if len(got) != 3 {
		t.Fatalf("got %d events: %+v", len(got), got)
	}
	if !reflect.DeepEqual(got[0].m, p1) || got[0].deleted {
		t.Errorf("event 0 = %+v, want put %+v", got[0], p1)
	}
	if got[1].m.Room != "a" || !got[1].deleted || got[1].m.Version <= p1.Version {
		t.Errorf("event 1 = %+v, want delete of a after version %d", got[1], p1.Version)
	}
	if !reflect.DeepEqual(got[2].m, p2) || got[2].deleted {
		t.Errorf("event 2 = %+v, want put %+v", got[2], p2)
	}
	for i, e := range got {
		if !e.seen {
			t.Errorf("event %d: change not visible to the listener", i)
		}
	}
}

// writeSome writes three rooms and deletes one, returning List afterwards.
func writeSome(t *testing.T, s *Meta, prefix string) []RoomMeta {
	t.Helper()
	ctx := context.Background()
	for i := range 3 {
		m := RoomMeta{Room: fmt.Sprintf("%s-%d", prefix, i), MaxMembers: i + 1, Metadata: json.RawMessage(`{"n":1}`)}
		if _, err := s.Put(ctx, m, fmt.Sprintf("%s-put-%d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, prefix+"-1", prefix+"-del"); err != nil {
		t.Fatal(err)
	}
	return s.List()
}

func TestRestartReplaysLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenMeta(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	want := writeSome(t, s, "log")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openReady(t, testConfig(t, dir))
	if got := s2.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart List = %+v\nwant %+v", got, want)
	}
	assertRetryIsNoop(t, s2, "log")
}

func TestRestartFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenMeta(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	writeSome(t, s, "snap")
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	snapIndex := s.Stats().LastIndex
	writeSome(t, s, "tail") // after the snapshot: comes back by log replay
	want := s.List()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Compact the log up to the snapshot, as raft does once TrailingLogs is
	// exceeded, so the pre-snapshot rooms can only come back from the
	// snapshot itself.
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft", "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := bolt.FirstIndex()
	if err := bolt.DeleteRange(first, snapIndex); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := bolt.GetLog(snapIndex, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("log %d still there after compaction: %v", snapIndex, err)
	}
	bolt.Close()

	s2 := openReady(t, testConfig(t, dir))
	if got := s2.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart List = %+v\nwant %+v", got, want)
	}
	assertRetryIsNoop(t, s2, "snap") // the idempotency window is in the snapshot
	assertRetryIsNoop(t, s2, "tail")
}

// assertRetryIsNoop retries writeSome's first put and delete: both must
// answer as the first time and change nothing.
func assertRetryIsNoop(t *testing.T, s *Meta, prefix string) {
	t.Helper()
	ctx := context.Background()
	before := s.List()
	orig, _ := s.Get(prefix + "-0")
	m, err := s.Put(ctx, RoomMeta{Room: prefix + "-0", MaxMembers: 1, Metadata: json.RawMessage(`{"n":1}`)}, prefix+"-put-0")
	if err != nil || m.Version != orig.Version || !m.UpdatedAt.Equal(orig.UpdatedAt) {
		t.Fatalf("retried put = %+v, %v; want version %d", m, err, orig.Version)
	}
	if err := s.Delete(ctx, prefix+"-1", prefix+"-del"); err != nil {
		t.Fatalf("retried delete = %v", err)
	}
	if after := s.List(); !reflect.DeepEqual(after, before) {
		t.Fatalf("retries changed state:\n%+v\n%+v", before, after)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	if _, err := s.Put(ctx, RoomMeta{Room: "r"}, ""); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := s.Put(ctx, RoomMeta{Room: "r"}, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	if err := s.Delete(ctx, "r", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Delete after Close = %v, want ErrClosed", err)
	}
	if err := s.WaitReady(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitReady after Close = %v, want ErrClosed", err)
	}
	if s.Ready() {
		t.Fatal("Ready after Close")
	}
	if _, ok := s.Get("r"); !ok {
		t.Fatal("Get after Close lost the last state")
	}
	_ = s.Stats() // must not panic
}

func TestNoLeaderWithoutBootstrap(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Bootstrap = false // a server waiting to join: no state, no cluster
	s, err := OpenMeta(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(context.Background(), RoomMeta{Room: "r"}, ""); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Put = %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady = %v, want DeadlineExceeded", err)
	}
	if s.Ready() {
		t.Fatal("Ready without a leader")
	}
}

func TestTCPTransport(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.RaftAddr = "127.0.0.1:0"
	s := openReady(t, cfg)
	m, err := s.Put(context.Background(), RoomMeta{Room: "r"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := s.Get("r"); !ok || g.Version != m.Version {
		t.Fatalf("Get = %+v, %v", g, ok)
	}
	if st := s.Stats(); !strings.HasPrefix(st.LeaderAddr, "127.0.0.1:") || st.LeaderAddr == "127.0.0.1:0" {
		t.Fatalf("leader address %q, want the bound 127.0.0.1 port", st.LeaderAddr)
	}
}

func TestOpenMetaConfigErrors(t *testing.T) {
	for name, edit := range map[string]func(*MetaConfig){
		"no data dir": func(c *MetaConfig) { c.DataDir = "" },
		"no node id":  func(c *MetaConfig) { c.NodeID = "" },
		"timing":      func(c *MetaConfig) { c.Timing = "wan" },
	} {
		cfg := testConfig(t, t.TempDir())
		edit(&cfg)
		if s, err := OpenMeta(cfg); !errors.Is(err, ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: OpenMeta = %v, want ErrInvalid", name, err)
		}
	}
}

func TestSecondOpenOfDataDirFails(t *testing.T) {
	dir := t.TempDir()
	openReady(t, testConfig(t, dir))
	s, err := OpenMeta(testConfig(t, dir)) // must not hang on bolt's file lock
	if err == nil {
		s.Close()
		t.Fatal("second OpenMeta on the same DataDir succeeded")
	}
}

func TestConcurrentWritesAndReads(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	const writers, each = 4, 25

	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	stop := make(chan struct{})
	go func() { // a reader racing the writers
		for {
			select {
			case <-stop:
				return
			default:
				s.List()
				s.Get("w0-0")
				s.Stats()
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Put(ctx, RoomMeta{Room: fmt.Sprintf("w%d-%d", w, i)}, ""); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list := s.List()
	if len(list) != writers*each {
		t.Fatalf("%d rooms, want %d", len(list), writers*each)
	}
	versions := map[uint64]bool{}
	for _, m := range list {
		if versions[m.Version] {
			t.Fatalf("version %d used twice", m.Version)
		}
		versions[m.Version] = true
	}
}

func TestApplyErrorMapping(t *testing.T) {
	s := &Meta{}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		in   error
		ctx  context.Context
		want []error
	}{
		{raft.ErrNotLeader, context.Background(), []error{ErrNotLeader}},
		{raft.ErrLeadershipTransferInProgress, context.Background(), []error{ErrNotLeader}},
		{raft.ErrLeadershipLost, context.Background(), []error{ErrUnknownOutcome, raft.ErrLeadershipLost}},
		{errCtxDone, cancelled, []error{ErrUnknownOutcome, context.Canceled}},
		{raft.ErrRaftShutdown, context.Background(), []error{ErrClosed, ErrUnknownOutcome}},
		{errShutdown, context.Background(), []error{ErrClosed, ErrUnknownOutcome}},
		{raft.ErrEnqueueTimeout, context.Background(), []error{context.DeadlineExceeded}},
	} {
		got := s.applyError(tt.ctx, tt.in)
		for _, w := range tt.want {
			if !errors.Is(got, w) {
				t.Errorf("applyError(%v) = %v, want it to wrap %v", tt.in, got, w)
			}
		}
	}
}

func TestCloseDuringWrites(t *testing.T) {
	s := openReady(t, testConfig(t, t.TempDir()))
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := s.Put(context.Background(), RoomMeta{Room: fmt.Sprintf("w%d-%d", w, i)}, "")
				if i == 0 {
					started <- struct{}{}
				}
				switch {
				case errors.Is(err, ErrClosed):
					return
				case err == nil, errors.Is(err, ErrUnknownOutcome), errors.Is(err, ErrNotLeader):
					// Racing Close: in flight when leadership ended, or
					// checked raft's state after it shut down.
				default:
					t.Errorf("Put during Close: %v", err)
					return
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // every writer returned: no Put hangs on Close
}
