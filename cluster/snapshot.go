package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
)

// snapshotFormat versions snapshotData. Bump it (and keep decoding the old
// one) when the layout changes: snapshots outlive binaries.
const snapshotFormat = 1

// snapshotData is the FSM state as written to a raft snapshot, as one JSON
// document. Rooms are sorted by id; Requests are oldest first, so replaying
// them into a requestWindow rebuilds the same eviction order.
type snapshotData struct {
	Format   int        `json:"format"`
	Applied  uint64     `json:"applied"`
	Rooms    []RoomMeta `json:"rooms"`
	Requests []outcome  `json:"requests"`
}

// fsmSnapshot is a point-in-time copy taken by metaFSM.Snapshot.
type fsmSnapshot struct {
	data snapshotData
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Persist implements raft.FSMSnapshot. It runs concurrently with Apply and
// touches only its own copy.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	slices.SortFunc(s.data.Rooms, func(a, b RoomMeta) int { return strings.Compare(a.Room, b.Room) })
	if err := encodeSnapshot(sink, s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

func encodeSnapshot(w io.Writer, data snapshotData) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := json.NewEncoder(bw).Encode(data); err != nil {
		return fmt.Errorf("cluster: encode snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cluster: write snapshot: %w", err)
	}
	return nil
}

func decodeSnapshot(r io.Reader) (snapshotData, error) {
	var data snapshotData
	if err := json.NewDecoder(bufio.NewReaderSize(r, 64<<10)).Decode(&data); err != nil {
		return snapshotData{}, fmt.Errorf("cluster: decode snapshot: %w", err)
	}
	if data.Format != snapshotFormat {
		return snapshotData{}, fmt.Errorf("cluster: snapshot format %d, this binary reads %d", data.Format, snapshotFormat)
	}
	return data, nil
}
