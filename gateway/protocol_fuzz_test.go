package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
)

// everyField is a client message that sets every field of inbound.
const everyField = `{"type":"hello","id":"x1","token":"t","user":"u","device":{"kind":"web","platform":"p"},"resume":"r",` +
	`"meta":{"m":1},"room":"room","data":{"d":2},"typing":true,"location":"l","state":"active","reason":"closed",` +
	`"what":"members","users":["a","b"]}`

// FuzzDecodeInbound: no client frame crashes the decoder, and whatever it
// accepts is one JSON object with a type. Decoding is the same after a
// message that set every field (the decoder's targets are pooled).
func FuzzDecodeInbound(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","token":"x","device":{"kind":"web"}}`,
		`{"type":"enter","room":"r","data":{"a":[1,2,{"b":null}]}}`,
		`{"type":"typing","room":"r","typing":false,"id":7}`,
		`{"type":"query","what":"users_batch","users":["a","b"]}`,
		`{"type":"location","location":null}`,
		`not json`, `{`, `[]`, `{"type":1}`, `{"id":{"deep":[[[[]]]]},"type":"ping"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, werr := decodeInbound(b)
		if werr != nil {
			if werr.Code == "" || werr.Message == "" {
				t.Fatalf("error without code or message: %+v", werr)
			}
			return
		}
		if m.Type == "" || !json.Valid(b) {
			t.Fatalf("accepted %q as %+v", b, m)
		}
		if _, werr := decodeInbound([]byte(everyField)); werr != nil {
			t.Fatal(werr)
		}
		if again, werr := decodeInbound(b); werr != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("%q decoded after a message with every field: %+v (%v), want %+v", b, again, werr, m)
		}
	})
}

// FuzzOKReply: the hand-built ok is byte for byte what json.Marshal makes
// of okMsg, for any id a client frame can carry.
func FuzzOKReply(f *testing.F) {
	for _, id := range []string{``, `7`, `"a-1"`, `"<b>&"`, `{ "x" : 1 }`, `"\u2028"`, "\"\xff\"", `-1.5e3`, `null`, `[1, 2]`} {
		f.Add([]byte(id))
	}
	f.Fuzz(func(t *testing.T, id []byte) {
		if len(id) > 0 && !json.Valid(id) {
			return // the decoder hands on only ids of a valid frame
		}
		want, err := json.Marshal(okMsg{Type: "ok", ID: rawID(id)})
		if err != nil {
			t.Fatal(err)
		}
		if got := okJSON(id); string(got) != string(want) {
			t.Fatalf("id %q: ok %s, json.Marshal %s", id, got, want)
		}
	})
}
