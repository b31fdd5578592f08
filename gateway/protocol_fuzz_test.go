package gateway

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeInbound: no client frame crashes the decoder, and whatever it
// accepts is one JSON object with a type.
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
	})
}
