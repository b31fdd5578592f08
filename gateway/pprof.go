package gateway

import (
	"net/http"
	"net/http/pprof"
)

// pprofRoutes serves Go's profiles under /debug/pprof/ (with
// --debug-endpoints only: they are unauthenticated). The Performance
// section's heap and CPU profiles come from here, e.g.
// go tool pprof http://127.0.0.1:7070/debug/pprof/heap
func pprofRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
