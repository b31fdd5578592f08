package session

import (
	"bytes"
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

// encodeEvent writes exactly what encoding/json writes, for any event:
// plain ones by hand, the rest (strings or raw JSON that need escaping or
// compacting) through encoding/json.
func TestEncodeEventMatchesEncodingJSON(t *testing.T) {
	str := rapid.OneOf(
		rapid.SampledFrom([]string{"", "lobby", "user-42", "s_0123456789", "web", "ios", "active", "stale"}),
		rapid.StringOfN(rapid.SampledFrom([]rune{'a', 'Z', '0', '-', '_', ' ', '"', '\\', '<', '>', '&', '\n', '\t', 0x01, 0x7f, 'é', '\u2028', '😀'}), 0, 8, -1),
	)
	raw := rapid.SampledFrom([]string{"", `{"v":0}`, `{"cursor":{"x":10,"y":20},"color":"#ff00ff"}`, `null`, `"a<b"`,
		`{ "spaced" : [1, 2] }`, `{"u":"é"}`, `[1,2,3]`, `{"html":"&amp;"}`, "{\n\"nl\":1}", `1.5e3`})
	rapid.Check(t, func(t *rapid.T) {
		ev := Event{Type: EventType(str.Draw(t, "type")), Room: str.Draw(t, "room"), Version: rapid.Uint64().Draw(t, "version"),
			Time: rapid.Int64().Draw(t, "time"), Session: str.Draw(t, "session"), User: str.Draw(t, "user"),
			Reason: Reason(str.Draw(t, "reason")), Data: json.RawMessage(raw.Draw(t, "data")), State: State(str.Draw(t, "state")),
			Typing: rapid.Bool().Draw(t, "typing")}
		if rapid.Bool().Draw(t, "member") {
			ev.Member = &Member{Session: str.Draw(t, "m.session"), User: str.Draw(t, "m.user"),
				Device: Device{Kind: str.Draw(t, "m.kind"), Platform: str.Draw(t, "m.platform"), Meta: json.RawMessage(raw.Draw(t, "m.meta"))},
				State:  State(str.Draw(t, "m.state")), Here: rapid.Bool().Draw(t, "m.here"), Location: str.Draw(t, "m.location"),
				Data: json.RawMessage(raw.Draw(t, "m.data")), EnteredAt: rapid.Int64().Draw(t, "m.entered"), LastActive: rapid.Int64().Draw(t, "m.active")}
		}
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeEvent(&ev); !bytes.Equal(got, want) {
			t.Fatalf("encodeEvent:\n got %s\nwant %s", got, want)
		}
	})
}

// The common events take the hand-written path (no encoding/json).
func TestEncodeEventPlainPathIsTaken(t *testing.T) {
	ev := Event{Type: EventUpdate, Room: "big", Version: 7, Time: 1_700_000_000_000, Session: "s_1", User: "u-1",
		Member: &Member{Session: "s_1", User: "u-1", Device: Device{Kind: "web"}, State: Stale, Data: json.RawMessage(`{"v":0}`)}}
	if _, ok := appendEvent(nil, &ev); !ok {
		t.Fatal("a plain update event fell back to encoding/json")
	}
	st := Event{Type: EventState, Room: "big", Version: 8, Time: 1, User: "u-1", State: Stale}
	if _, ok := appendEvent(nil, &st); !ok {
		t.Fatal("a plain state event fell back to encoding/json")
	}
}
