package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/presenced/presenced/crdt"
)

// FuzzMergeHostileDelta: a corrupt or hostile delta (any bytes that decode,
// any values under any keys) never crashes the engine and never breaks its
// incremental counts, and the sessions this node owns keep their state.
func FuzzMergeHostileDelta(f *testing.F) {
	peer := crdt.Origin{Node: "peer", Incarnation: 1}
	good := crdt.Delta{Origin: peer, From: 0, To: 4, Entries: []crdt.Entry{
		{Key: "s/x1", Value: (&sessionRecord{User: "eve", Kind: KindWebSocket, State: Active, ConnectedAt: 1, LastActive: 1}).marshal(), Version: crdt.Version{TS: crdt.MakeTimestamp(1, 0), Node: "peer"}, Origin: peer, Seq: 1},
		{Key: "m/x1/r", Value: []byte(`{"data":{"a":1},"at":1}`), Version: crdt.Version{TS: crdt.MakeTimestamp(1, 1), Node: "peer"}, Origin: peer, Seq: 2},
		{Key: "t/x1/r", Value: []byte(`{"until":99}`), Version: crdt.Version{TS: crdt.MakeTimestamp(1, 2), Node: "peer"}, Origin: peer, Seq: 3},
		{Key: "m/x1/r", Deleted: true, Value: []byte(`{"r":"bogus"}`), Version: crdt.Version{TS: crdt.MakeTimestamp(2, 0), Node: "peer"}, Origin: peer, Seq: 4},
	}}
	b, err := good.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	hostile := good
	hostile.Entries = []crdt.Entry{
		{Key: "s/", Value: []byte(`{`), Version: crdt.Version{TS: 5, Node: "peer"}, Origin: peer, Seq: 1},
		{Key: "m//", Value: []byte(`null`), Version: crdt.Version{TS: 6, Node: "peer"}, Origin: peer, Seq: 2},
		{Key: "s/mine", Value: []byte{recordVersion, 200, 0}, Version: crdt.Version{TS: 7, Node: "peer"}, Origin: peer, Seq: 3},
	}
	b, _ = hostile.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d crdt.Delta
		if d.UnmarshalBinary(b) != nil {
			return
		}
		clock := NewFakeClock(time.UnixMilli(1_000_000))
		e := New(Config{Node: "me", Incarnation: 1, Clock: clock})
		defer e.Stop()
		op, err := e.Open(OpenRequest{User: "owner"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Enter(op.Session, "r", []byte(`{"mine":true}`)); err != nil {
			t.Fatal(err)
		}
		_, _ = e.Merge(d)
		checkInvariants(t, e)
		info, ok := e.Session(op.Session)
		if !ok || !info.Owned || len(info.Rooms) != 1 {
			t.Fatalf("owned session harmed by a peer's delta: %+v %v", info, ok)
		}
		clock.Advance(time.Hour)
		checkInvariants(t, e)
	})
}

func TestMergeRefusesFutureClock(t *testing.T) {
	clock := NewFakeClock(time.UnixMilli(1_000_000))
	e := New(Config{Node: "me", Incarnation: 1, Clock: clock})
	defer e.Stop()
	peer := crdt.Origin{Node: "peer", Incarnation: 1}
	at := func(ms int64) crdt.Delta {
		return crdt.Delta{Origin: peer, To: 1, Entries: []crdt.Entry{{Key: "s/x", Value: (&sessionRecord{User: "z", State: Active}).marshal(),
			Version: crdt.Version{TS: crdt.MakeTimestamp(ms, 0), Node: "peer"}, Origin: peer, Seq: 1}}}
	}
	if _, err := e.Merge(at(1_000_000 + 60_000)); !errors.Is(err, crdt.ErrClockAhead) {
		t.Fatalf("a delta a minute ahead: %v", err)
	}
	if p := e.UserPresence("z"); p.State != Offline {
		t.Fatalf("refused delta was applied: %+v", p)
	}
	if _, err := e.Merge(at(1_000_000 + 100)); err != nil {
		t.Fatalf("100 ms ahead is within tolerance: %v", err)
	}
	if p := e.UserPresence("z"); p.State != Active {
		t.Fatalf("accepted delta not applied: %+v", p)
	}
}

func TestSessionRecordRoundTrip(t *testing.T) {
	in := sessionRecord{User: "ünïcode", Device: Device{Kind: "web", Platform: "linux", Meta: []byte(`{"a":1}`)}, Kind: KindHTTP,
		State: Away, Location: "room/1", ConnectedAt: 1700000000000, LastActive: -5, SecretHash: "abcd", Meta: []byte(`[1]`)}
	var out sessionRecord
	if err := out.unmarshal(in.marshal()); err != nil {
		t.Fatal(err)
	}
	if string(mustJSON(in)) != string(mustJSON(out)) {
		t.Fatalf("round trip:\n%s\n%s", mustJSON(in), mustJSON(out))
	}
	b := in.marshal()
	for i := range b {
		var r sessionRecord
		_ = r.unmarshal(b[:i]) // every truncation is an error or a valid record, never a panic
	}
}

// FuzzSessionRecord: any bytes decode to an error or to a record that
// re-encodes to the same bytes.
func FuzzSessionRecord(f *testing.F) {
	f.Add((&sessionRecord{User: "u", State: Active, Kind: KindWebSocket}).marshal())
	f.Add([]byte{1, 1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r sessionRecord
		if r.unmarshal(b) != nil {
			return
		}
		var again sessionRecord
		if err := again.unmarshal(r.marshal()); err != nil || string(mustJSON(r)) != string(mustJSON(again)) {
			t.Fatalf("re-encode changed the record: %v", err)
		}
	})
}

// FuzzRecordDecoding: the fast readers of membership and tombstone values
// give what json.Unmarshal gives, for any bytes (they decline, or agree).
func FuzzRecordDecoding(f *testing.F) {
	for _, v := range []any{
		memberRecord{EnteredAt: 1700000000000},
		memberRecord{Data: json.RawMessage(`{"cursor":{"x":1,"at":2},"s":"<a>"}`), EnteredAt: 5},
		memberRecord{Data: json.RawMessage(`null`)},
		goneRecord{Reason: ReasonExplicit},
		goneRecord{Reason: ReasonTimeout, Epoch: 7},
		goneRecord{Reason: ReasonKicked, Data: json.RawMessage(`{"e":1}`), Epoch: 3},
	} {
		f.Add(mustJSON(v))
	}
	for _, s := range []string{`{"data": 1,"at":2}`, `{"data":1,"at":02}`, `{"at":1,"at":2}`, `{"data":{"at":1},"at":2}`,
		`{"at":2,"data":{"at":1}}`, `{"R":"explicit"}`, `{"r":"explicit","e":1,"e":2}`, `{"r":"closed","x":"y","e":1}`, `{"r":"x"}`, `{}`, `}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if mr, ok := fastMemberRecord(b); ok {
			var want memberRecord
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast membership read of %q; json.Unmarshal: %v", b, err)
			}
			if mr.EnteredAt != want.EnteredAt || !bytes.Equal(mr.Data, want.Data) {
				t.Fatalf("membership %q: fast %+v, json %+v", b, mr, want)
			}
		}
		var g goneRecord
		if fastGoneRecord(b, &g) {
			var want goneRecord
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast tombstone read of %q; json.Unmarshal: %v", b, err)
			}
			if g.Reason != want.Reason || g.Epoch != want.Epoch || !bytes.Equal(g.Data, want.Data) {
				t.Fatalf("tombstone %q: fast %+v, json %+v", b, g, want)
			}
		}
	})
}

// Data nested 10,000 deep is valid alone but not inside a record:
// json.Unmarshal refuses the record, and so must the fast reader.
func TestDeepDataIsReadAsJSONUnmarshalReadsIt(t *testing.T) {
	deep := append(bytes.Repeat([]byte("["), 10000), bytes.Repeat([]byte("]"), 10000)...)
	rec := []byte(`{"data":` + string(deep) + `,"at":1}`)
	if _, err := decodeMemberRecord(rec); err == nil {
		t.Fatal("a record nested 10,001 deep was read; json.Unmarshal refuses it")
	}
}

// The values this package writes are all read by the fast path.
func TestRecordsThisPackageWritesAreReadFast(t *testing.T) {
	for _, v := range []memberRecord{{EnteredAt: 1700000000000}, {Data: json.RawMessage(`{"v":1}`), EnteredAt: 1}} {
		if _, ok := fastMemberRecord(mustJSON(v)); !ok {
			t.Errorf("membership %s not read fast", mustJSON(v))
		}
	}
	for _, r := range []Reason{ReasonExplicit, ReasonClosed, ReasonTimeout, ReasonNodeFailure, ReasonKicked} {
		for _, g := range []goneRecord{{Reason: r}, {Reason: r, Epoch: 12}} {
			var got goneRecord
			if !fastGoneRecord(mustJSON(g), &got) || got.Reason != g.Reason || got.Epoch != g.Epoch || got.Data != nil {
				t.Errorf("tombstone %s read fast as %+v", mustJSON(g), got)
			}
		}
	}
}
