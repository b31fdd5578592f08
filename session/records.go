package session

import (
	"bytes"
	"encoding/json"
)

// Fast decoding of the two records every enter and leave writes and every
// replica applies (a membership and a tombstone). json.Unmarshal cost ~9
// allocations per enter+leave pair on each node, for values this package
// wrote itself in one fixed shape. The shapes json.Marshal gives them are
// read directly; anything else (another writer's spacing, a corrupt
// value) goes to json.Unmarshal, so both read every value alike
// (FuzzRecordDecoding).

// decodeMemberRecord reads {"at":N} or {"data":X,"at":N}.
func decodeMemberRecord(b []byte) (memberRecord, error) {
	if mr, ok := fastMemberRecord(b); ok {
		return mr, nil
	}
	var mr memberRecord
	err := json.Unmarshal(b, &mr)
	return mr, err
}

func fastMemberRecord(b []byte) (memberRecord, bool) {
	var mr memberRecord
	head, at, ok := cutIntField(b, `"at":`)
	if !ok {
		return mr, false
	}
	mr.EnteredAt = at
	if len(head) == 1 { // {
		return mr, head[0] == '{'
	}
	const pre = `{"data":`
	if len(head) < len(pre)+2 || string(head[:len(pre)]) != pre || head[len(head)-1] != ',' {
		return mr, false
	}
	x := head[len(pre) : len(head)-1]
	// json.Unmarshal refuses nesting over 10,000 levels; json.Valid(x)
	// sees one level fewer than the record has. A value that deep takes
	// 20,000 bytes: longer ones go to json.Unmarshal.
	if len(x) > maxFastData || isSpace(x[0]) || isSpace(x[len(x)-1]) || !json.Valid(x) {
		return mr, false
	}
	mr.Data = bytes.Clone(x)
	return mr, true
}

const maxFastData = 16 << 10

// decodeGoneRecord reads {"r":"reason"} with an optional ,"e":N; other
// shapes (with data) go to json.Unmarshal.
func decodeGoneRecord(b []byte, g *goneRecord) error {
	if fastGoneRecord(b, g) {
		return nil
	}
	return json.Unmarshal(b, g)
}

func fastGoneRecord(b []byte, g *goneRecord) bool {
	// {"r":"reason"} or {"r":"reason","e":N}: body ends where the
	// reason's closing quote does.
	body, epoch := b[:max(0, len(b)-1)], int64(0) // without }
	if h, e, ok := cutIntField(b, `"e":`); ok {
		if len(h) == 0 || h[len(h)-1] != ',' {
			return false
		}
		body, epoch = h[:len(h)-1], e
	} else if len(b) == 0 || b[len(b)-1] != '}' {
		return false
	}
	const pre = `{"r":"`
	if len(body) < len(pre)+1 || string(body[:len(pre)]) != pre || body[len(body)-1] != '"' {
		return false
	}
	var r Reason
	switch string(body[len(pre) : len(body)-1]) {
	case string(ReasonExplicit):
		r = ReasonExplicit
	case string(ReasonClosed):
		r = ReasonClosed
	case string(ReasonTimeout):
		r = ReasonTimeout
	case string(ReasonNodeFailure):
		r = ReasonNodeFailure
	case string(ReasonKicked):
		r = ReasonKicked
	default:
		return false
	}
	*g = goneRecord{Reason: r, Epoch: uint64(epoch)}
	return true
}

// cutIntField splits b = head + field + N + "}" where N is a JSON integer
// of up to 18 digits with no sign and no leading zero. head is b up to the
// field's name.
func cutIntField(b []byte, field string) (head []byte, n int64, ok bool) {
	if len(b) < len(field)+2 || b[len(b)-1] != '}' {
		return nil, 0, false
	}
	i := bytes.LastIndex(b, []byte(field))
	if i < 0 {
		return nil, 0, false
	}
	digits := b[i+len(field) : len(b)-1]
	if len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) {
		return nil, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return b[:i], n, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
