package crdt

import "strconv"

// Version orders writes of one key: higher TS wins, then Node (lexicographic string compare) breaks ties.
type Version struct {
	TS   Timestamp
	Node string
}

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	if v.TS != o.TS {
		return v.TS < o.TS
	}
	return v.Node < o.Node
}

// String renders "ts@node".
func (v Version) String() string { return v.TS.String() + "@" + v.Node }

// Origin is one boot of one node, the writer of entries. A node that restarts
// is a new Origin (a higher Incarnation), with sequence numbers from 1 again.
type Origin struct {
	Node        string
	Incarnation uint64
}

// String renders "node#inc".
func (o Origin) String() string { return o.Node + "#" + strconv.FormatUint(o.Incarnation, 10) }
