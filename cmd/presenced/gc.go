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
// ~125 MB and its RSS ~310 MB. At 50 % the GC runs about twice as often,
// which at that allocation rate is a few ms of CPU per second.
const defaultGCPercent = 50

// setGCPercent applies defaultGCPercent unless GOGC chose otherwise.
func setGCPercent(lookup func(string) (string, bool), log *zap.Logger) {
	if v, ok := lookup("GOGC"); ok && v != "" {
		log.Debug("GC headroom from GOGC", zap.String("GOGC", v))
		return
	}
	debug.SetGCPercent(defaultGCPercent)
}
