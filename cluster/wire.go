package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/presenced/presenced/crdt"
)

// Messages between nodes, sent with memberlist's user messaging. Each is
//
//	type(1) | sender name (uvarint length + bytes) | body
//
// Bodies: delta → crdt.Delta binary; head → origin + seq (the sender's own
// watermark, so a receiver that missed the last delta notices); pull →
// origin + after (send me that origin's entries after seq).
const (
	msgDelta byte = 1
	msgHead  byte = 2
	msgPull  byte = 3
	// msgWant is queued internally (never sent): pull origin from the named
	// peer, whose digest showed it holds more.
	msgWant byte = 4
	// msgDigest carries the sender's whole digest, for tombstone GC.
	msgDigest byte = 7
	// msgResync asks an owner for its own origin's entries after seq, to
	// repair a replica that may have missed removals (origin + after).
	msgResync byte = 8
	// msgResyncPage answers it: last(1) | crdt.Delta binary.
	msgResyncPage byte = 9
	// msgCensus: the sender's own origin + watermark + how many live entries
	// it writes (see census.go).
	msgCensus byte = 10
)

var errBadMessage = errors.New("cluster: malformed message")

func encodeMsg(typ byte, sender string, body []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(sender)+len(body))
	b = append(b, typ)
	b = binary.AppendUvarint(b, uint64(len(sender)))
	b = append(b, sender...)
	return append(b, body...)
}

// deltaMsg is encodeMsg(msgDelta, sender, d.MarshalBinary()) in one
// buffer, without the body's own.
func deltaMsg(sender string, d crdt.Delta) ([]byte, error) {
	return appendDeltaMsg(make([]byte, 0, 1+binary.MaxVarintLen64+len(sender)+d.MaxBinarySize()), sender, d)
}

// appendDeltaMsg appends deltaMsg(sender, d) to b: a sender reuses one
// buffer for every delta it pushes (memberlist copies what it sends).
func appendDeltaMsg(b []byte, sender string, d crdt.Delta) ([]byte, error) {
	b = append(b, msgDelta)
	b = binary.AppendUvarint(b, uint64(len(sender)))
	b = append(b, sender...)
	return d.AppendBinary(b)
}

func decodeMsg(b []byte) (typ byte, sender string, body []byte, err error) {
	if len(b) < 2 {
		return 0, "", nil, errBadMessage
	}
	typ = b[0]
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > 1024 || uint64(len(b)-1-k) < n {
		return 0, "", nil, errBadMessage
	}
	sender = string(b[1+k : 1+k+int(n)])
	return typ, sender, b[1+k+int(n):], nil
}

// originSeq is the body of head and pull messages.
type originSeq struct {
	Origin crdt.Origin
	Seq    uint64
}

func (o originSeq) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(o.Origin.Node)))
	b = append(b, o.Origin.Node...)
	b = binary.AppendUvarint(b, o.Origin.Incarnation)
	return binary.AppendUvarint(b, o.Seq)
}

func decodeOriginSeq(b []byte) (originSeq, error) {
	o, rest, err := decodeOriginSeqPrefix(b)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: trailing bytes", errBadMessage)
	}
	return o, err
}

func decodeOriginSeqPrefix(b []byte) (originSeq, []byte, error) {
	var o originSeq
	n, k := binary.Uvarint(b)
	if k <= 0 || n > crdt.MaxNodeLen || uint64(len(b)-k) < n {
		return o, nil, errBadMessage
	}
	o.Origin.Node = string(b[k : k+int(n)])
	b = b[k+int(n):]
	if o.Origin.Incarnation, k = binary.Uvarint(b); k <= 0 {
		return o, nil, errBadMessage
	}
	b = b[k:]
	if o.Seq, k = binary.Uvarint(b); k <= 0 {
		return o, nil, errBadMessage
	}
	return o, b[k:], nil
}

// census is the body of a census message.
type census struct {
	originSeq        // the sender's own origin and watermark
	Live      uint64 // live entries it writes
}

func (c census) encode() []byte { return binary.AppendUvarint(c.originSeq.encode(), c.Live) }

func decodeCensus(b []byte) (census, error) {
	o, rest, err := decodeOriginSeqPrefix(b)
	if err != nil {
		return census{}, err
	}
	live, k := binary.Uvarint(rest)
	if k <= 0 || k != len(rest) {
		return census{}, errBadMessage
	}
	return census{o, live}, nil
}
