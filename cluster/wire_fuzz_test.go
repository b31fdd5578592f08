package cluster

import (
	"testing"

	"github.com/presenced/presenced/crdt"
)

// FuzzDecodeMessage: no bytes from the network crash the message decoders.
func FuzzDecodeMessage(f *testing.F) {
	d := crdt.Delta{Origin: crdt.Origin{Node: "n", Incarnation: 1}, To: 1, Entries: []crdt.Entry{{Key: "s/x", Value: []byte(`{}`),
		Version: crdt.Version{TS: 5, Node: "n"}, Origin: crdt.Origin{Node: "n", Incarnation: 1}, Seq: 1}}}
	body, _ := d.MarshalBinary()
	f.Add(encodeMsg(msgDelta, "peer-1", body))
	f.Add(encodeMsg(msgHead, "peer-1", originSeq{Origin: crdt.Origin{Node: "n", Incarnation: 1}, Seq: 9}.encode()))
	f.Add(encodeMsg(msgPull, "p", originSeq{}.encode()))
	f.Add(encodeMsg(msgCensus, "p", census{originSeq{Origin: crdt.Origin{Node: "n", Incarnation: 1}, Seq: 9}, 4}.encode()))
	f.Add([]byte{msgMetaCmd, 1, 'p', 7, '{'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, sender, body, err := decodeMsg(b)
		if err != nil {
			return
		}
		_ = typ
		_ = sender
		_, _ = decodeOriginSeq(body)
		if cs, err := decodeCensus(body); err == nil {
			back, err := decodeCensus(cs.encode())
			if err != nil || back != cs {
				t.Fatalf("census %+v round-trips to %+v, %v", cs, back, err)
			}
		}
		var d crdt.Delta
		_ = d.UnmarshalBinary(body)
		var g crdt.Digest
		_ = g.UnmarshalBinary(body)
	})
}
