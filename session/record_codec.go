package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

// Session records are replicated to every node and decoded on every merge,
// so they use a compact binary form rather than JSON (a 1M-session join
// spent most of its CPU decoding JSON records):
//
//	version(1)=1 | state(1) | kind(1) | connectedAt, lastActive (varint)
//	| user, deviceKind, platform, location, secretHash (uvarint len + bytes)
//	| deviceMeta, meta (uvarint len + bytes)
//
// Every length is checked against what is left: a hostile record is an
// error, never a panic.

const recordVersion = 2

var errBadRecord = errors.New("session: malformed session record")

var stateCodes = []State{"", Active, Idle, Away, Stale, Offline}
var kindCodes = []Kind{"", KindWebSocket, KindHTTP, KindAgent}

func code[T comparable](table []T, v T) byte {
	for i, x := range table {
		if x == v {
			return byte(i)
		}
	}
	return 0
}

func appendBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (r *sessionRecord) marshal() []byte {
	b := make([]byte, 0, 64+len(r.User)+len(r.Location)+len(r.SecretHash)+len(r.Device.Meta)+len(r.Meta))
	b = append(b, recordVersion, code(stateCodes, r.State), code(kindCodes, r.Kind))
	b = binary.AppendVarint(b, r.ConnectedAt)
	b = binary.AppendVarint(b, r.LastActive)
	b = binary.AppendUvarint(b, r.Epoch)
	for _, s := range []string{r.User, r.Device.Kind, r.Device.Platform, r.Location, r.SecretHash} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = appendBytes(b, r.Device.Meta)
	return appendBytes(b, r.Meta)
}

type recReader struct {
	b   []byte
	err bool
}

func (r *recReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) bytes() []byte {
	l, n := binary.Uvarint(r.b)
	if n <= 0 || l > uint64(len(r.b)-n) {
		r.err = true
		return nil
	}
	out := r.b[n : n+int(l)]
	r.b = r.b[n+int(l):]
	if len(out) == 0 {
		return nil
	}
	return out
}

func (r *sessionRecord) unmarshal(b []byte) error {
	if len(b) < 3 || b[0] != recordVersion {
		return errBadRecord
	}
	st, kd := int(b[1]), int(b[2])
	if st >= len(stateCodes) || kd >= len(kindCodes) {
		return errBadRecord
	}
	r.State, r.Kind = stateCodes[st], kindCodes[kd]
	rd := recReader{b: b[3:]}
	r.ConnectedAt = rd.varint()
	r.LastActive = rd.varint()
	r.Epoch = rd.uvarint()
	strs := []*string{&r.User, &r.Device.Kind, &r.Device.Platform, &r.Location, &r.SecretHash}
	for _, p := range strs {
		*p = string(rd.bytes())
	}
	if m := rd.bytes(); m != nil {
		r.Device.Meta = append([]byte(nil), m...)
	}
	if m := rd.bytes(); m != nil {
		r.Meta = append([]byte(nil), m...)
	}
	if rd.err || len(rd.b) != 0 {
		return errBadRecord
	}
	// The metadata is embedded in member views and events as raw JSON: a
	// peer must not be able to make that encoding fail.
	if (r.Device.Meta != nil && !json.Valid(r.Device.Meta)) || (r.Meta != nil && !json.Valid(r.Meta)) {
		return errBadRecord
	}
	return nil
}
