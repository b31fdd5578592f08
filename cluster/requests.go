package cluster

// requestWindowSize is how many request ids the FSM remembers. A client
// that retries within the last 10,000 writes gets the first outcome back.
const requestWindowSize = 10_000

// outcome is the remembered result of one applied command. It is compact
// on purpose (no Metadata): the window holds 10,000 of them on every node
// and in every snapshot. A retry carries the same payload, so the full
// result is rebuilt from the retried command plus this outcome; Digest
// proves the payloads are the same.
type outcome struct {
	ID        string `json:"id"`
	Digest    uint64 `json:"digest"`               // commandDigest of the first attempt
	Version   uint64 `json:"version,omitempty"`    // Version written by a put
	UpdatedAt int64  `json:"updated_at,omitempty"` // UpdatedAt written by a put, unix ns
	Code      string `json:"code,omitempty"`       // "" (success) or an error code, see resultError
	Msg       string `json:"msg,omitempty"`        // detail for Code
}

// requestWindow remembers the outcomes of the last max request ids, evicting
// the oldest first. Not safe for concurrent use (the FSM's lock guards it).
type requestWindow struct {
	max  int
	byID map[string]outcome
	ring []string // insertion order; once full, next is the oldest slot
	next int
}

func newRequestWindow(max int) *requestWindow {
	return &requestWindow{max: max, byID: make(map[string]outcome)}
}

func (w *requestWindow) get(id string) (outcome, bool) {
	o, ok := w.byID[id]
	return o, ok
}

// add records o. The caller has checked that o.ID is not present.
func (w *requestWindow) add(o outcome) {
	if len(w.ring) < w.max {
		w.ring = append(w.ring, o.ID)
	} else {
		delete(w.byID, w.ring[w.next])
		w.ring[w.next] = o.ID
		w.next = (w.next + 1) % w.max
	}
	w.byID[o.ID] = o
}

func (w *requestWindow) len() int { return len(w.ring) }

// list returns the outcomes oldest first, the order add must replay them in.
func (w *requestWindow) list() []outcome {
	out := make([]outcome, 0, len(w.ring))
	for i := range w.ring {
		id := w.ring[(w.next+i)%len(w.ring)]
		out = append(out, w.byID[id])
	}
	return out
}
