package crdt

// A slot is the stored form of one Entry. It is smaller than Entry: the writer
// (Origin, and Version.Node, which equals Origin.Node) is a 4-byte reference
// to the writer's shared state, and the tombstone flag lives in the top bit of
// seq. 64 bytes on 64-bit platforms.
type slot struct {
	key   string
	value []byte
	ts    Timestamp
	seq   uint64 // the writer's seq | tombBit for a tombstone
	org   uint32 // originState.id of the writer; 0 for a free slot
	gen   uint32 // bumped by every write into the slot, kept when it is freed
}

// tombBit marks a tombstone in slot.seq; valid sequence numbers are below it.
const tombBit = 1 << 63

// MaxSeq is the highest sequence number the map accepts; Merge ignores
// entries above it and the codec rejects them.
const MaxSeq = tombBit - 1

func (s *slot) deleted() bool  { return s.seq&tombBit != 0 }
func (s *slot) seqNum() uint64 { return s.seq &^ tombBit }

// slab stores slots in fixed-size chunks addressed by a 32-bit index, so the
// key index and the origin logs hold 4-byte references instead of pointers,
// growth never copies existing slots, and freed slots are reused.
type slab struct {
	chunks []*[chunkLen]slot
	free   []uint32
	used   uint32 // slots handed out so far, free or not
}

const (
	chunkBits = 9
	chunkLen  = 1 << chunkBits
)

func (b *slab) at(i uint32) *slot { return &b.chunks[i>>chunkBits][i&(chunkLen-1)] }

func (b *slab) alloc() uint32 {
	if n := len(b.free); n > 0 {
		i := b.free[n-1]
		b.free = b.free[:n-1]
		return i
	}
	if int(b.used) == len(b.chunks)*chunkLen {
		b.chunks = append(b.chunks, new([chunkLen]slot))
	}
	b.used++
	return b.used - 1
}

// release clears slot i (dropping its key and value for the garbage
// collector) and makes it available again. The generation survives, so log
// records of earlier writes never match a later one.
func (b *slab) release(i uint32) {
	s := b.at(i)
	*s = slot{gen: s.gen}
	b.free = append(b.free, i)
}

// each calls fn for every occupied slot, in slot order, until fn returns false.
func (b *slab) each(fn func(*slot) bool) {
	for c, chunk := range b.chunks {
		n := chunkLen
		if rest := int(b.used) - c*chunkLen; rest < n {
			n = rest
		}
		for i := range chunk[:n] {
			if s := &chunk[i]; s.org != 0 && !fn(s) {
				return
			}
		}
	}
}
