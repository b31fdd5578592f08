package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/presenced/presenced/session"
)

// roomEvents streams a room's events as Server-Sent Events for server-side
// consumers: first "snapshot", then one event per room event with its
// version as the SSE id. A consumer that falls SendQueue events behind is
// cut off (it reconnects and gets a fresh snapshot).
func (s *Server) roomEvents(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !s.readRoom(w, r, room) {
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, CodeInternal, "streaming unsupported")
		return
	}
	events := make(chan *session.Event, s.cfg.SendQueue)
	overflow := make(chan struct{})
	var overflowed bool
	snap, cancel, err := s.engine.Subscribe(room, func(ev *session.Event) {
		if overflowed {
			return
		}
		select {
		case events <- ev:
		default:
			overflowed = true // the sink runs under the engine's lock: one writer
			close(overflow)
		}
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	defer cancel()
	s.metrics.sseStreams.Inc()
	defer s.metrics.sseStreams.Dec()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	b, _ := json.Marshal(snap)
	fmt.Fprintf(w, "id: %d\nevent: snapshot\ndata: %s\n\n", snap.Version, b)
	flusher.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case ev := <-events:
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Version, ev.Type, ev.JSON())
			// Drain what else is queued before one flush.
			for more := true; more; {
				select {
				case ev := <-events:
					fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Version, ev.Type, ev.JSON())
				default:
					more = false
				}
			}
			flusher.Flush()
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case <-overflow:
			s.metrics.slowConsumers.Inc()
			fmt.Fprint(w, "event: error\ndata: {\"code\":\"slow_consumer\"}\n\n")
			flusher.Flush()
			return
		case <-r.Context().Done():
			return
		case <-s.drained:
			return
		case <-s.stop:
			return
		}
	}
}
