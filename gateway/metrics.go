package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presenced/presenced/session"
)

// metrics are the gateway's Prometheus series, plus gauges read from the
// engine at scrape time. Every name starts with presenced_.
type metrics struct {
	reg           *prometheus.Registry
	connections   prometheus.Gauge
	readers       prometheus.Gauge
	readEnds      *prometheus.CounterVec
	sseStreams    prometheus.Gauge
	messagesIn    prometheus.Counter
	messagesOut   prometheus.Counter
	framesOut     prometheus.Counter
	slowConsumers prometheus.Counter
	rateLimited   prometheus.Counter
	dropped       prometheus.Counter
	errors        *prometheus.CounterVec
	closes        *prometheus.CounterVec
	resumes       *prometheus.CounterVec
	httpLatency   *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, e *session.Engine, s *Server) *metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		reg:         reg,
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "presenced_ws_connections", Help: "Open WebSocket connections."}),
		readers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "presenced_ws_active_readers",
			Help: "WebSocket connections being read right now (an idle connection has no reader: it waits in epoll)."}),
		readEnds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_ws_read_ends_total",
			Help: "WebSocket connections whose reading ended, by why: close (the client's close frame), eof, error (a read error, e.g. reset), closed (the server had closed the socket), poll (the socket could not be watched)."}, []string{"why"}),
		sseStreams:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "presenced_sse_streams", Help: "Open SSE event streams."}),
		messagesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_ws_messages_in_total", Help: "WebSocket messages received."}),
		messagesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_ws_messages_out_total", Help: "WebSocket messages sent (replies and events)."}),
		framesOut:   prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_ws_frames_out_total", Help: "WebSocket frames written (messages are coalesced into frames)."}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_slow_consumers_total",
			Help: "Connections and streams dropped because their send queue overflowed."}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_rate_limited_total", Help: "Messages dropped by the per-connection rate limit."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_dropped_messages_total",
			Help: "Outbound messages dropped because their connection was closing or overflowed."}),
		errors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_ws_errors_total", Help: "Error replies by code."}, []string{"code"}),
		closes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_ws_closes_total", Help: "Server-initiated closes by close code."}, []string{"code"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_resumes_total", Help: "Resume attempts by outcome."}, []string{"outcome"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "presenced_http_request_duration_seconds",
			Help: "HTTP request latency by route and status.", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}},
			[]string{"route", "code"}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.readers, m.readEnds, m.sseStreams, m.messagesIn, m.messagesOut, m.framesOut,
		m.slowConsumers, m.rateLimited, m.dropped, m.errors, m.closes, m.resumes, m.httpLatency} {
		f(c)
	}
	gauge := func(name, help string, v func(session.Stats) float64) {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(e.Stats()) }))
	}
	counter := func(name, help string, v func(session.Stats) float64) {
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return v(e.Stats()) }))
	}
	gauge("presenced_sessions", "Sessions known cluster-wide.", func(st session.Stats) float64 { return float64(st.Sessions) })
	gauge("presenced_owned_sessions", "Sessions owned by this node.", func(st session.Stats) float64 { return float64(st.OwnedSessions) })
	gauge("presenced_users", "Users with at least one session.", func(st session.Stats) float64 { return float64(st.Users) })
	gauge("presenced_rooms", "Rooms with members, typists or subscribers.", func(st session.Stats) float64 { return float64(st.Rooms) })
	gauge("presenced_subscribers", "Room subscriptions on this node.", func(st session.Stats) float64 { return float64(st.Subscribers) })
	gauge("presenced_replicated_entries", "Live entries in the replicated session map.", func(st session.Stats) float64 { return float64(st.Entries) })
	gauge("presenced_replicated_tombstones", "Removals kept until every replica holds them.", func(st session.Stats) float64 { return float64(st.Tombstones) })
	counter("presenced_events_total", "Room events emitted.", func(st session.Stats) float64 { return float64(st.Events) })
	counter("presenced_event_deliveries_total", "Room events handed to subscribers.", func(st session.Stats) float64 { return float64(st.Deliveries) })
	// The default Go metrics plus the scheduler's latency histogram
	// (go_sched_latencies_seconds): how long ready goroutines wait to run,
	// which is what delays gossip acks on a saturated node.
	f(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)))
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController and the WebSocket upgrade reach the
// underlying writer (Hijack).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (m *metrics) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		m.httpLatency.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}
