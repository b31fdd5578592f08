package main

import (
	"runtime/debug"

	"go.uber.org/zap"
)

// defaultGCPercent is the GC's heap headroom unless GOGC is set. A
// presence node's heap is mostly long-lived state (sessions, replicas,
// connections) and it allocates little per message, so Go's default of
// 100 % kept the heap at twice the live data for little gain: with 19.5k
// sessions of its own and 39k replicated, a bench node's live heap was
// ~125-145 MB and its RSS ~310 MB (~230 MB at 50 %). At 40 % a faster
// host's bench nodes held 11.7-12.0 KB per session, at the 12 KB target's
// edge; at 30 % 10.9-11.7 KB, and churn still passed its target (the GC runs
// more often: idle, a few ms of CPU per second; in a churn profile at 30 %,
// ~2,400 enter+leave pairs a second, 21 % of a node's CPU). GOGC=100 trades
// the memory back for that CPU.
const defaultGCPercent = 30

// setGCPercent applies defaultGCPercent unless GOGC chose otherwise.
func setGCPercent(lookup func(string) (string, bool), log *zap.Logger) {
	if v, ok := lookup("GOGC"); ok && v != "" {
		log.Debug("GC headroom from GOGC", zap.String("GOGC", v))
		return
	}
	debug.SetGCPercent(defaultGCPercent)
}
