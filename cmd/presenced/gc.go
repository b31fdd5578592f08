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
// ~125 MB and its RSS ~310 MB (~230 MB at 50 %). The GC runs 2.5 times as
// often as at 100 %: idle, a few ms of CPU per second; in the bench's
// churn (thousands of enters and leaves a second) it was a quarter of a
// node's CPU at 50 %. GOGC=100 trades the memory back for that CPU.
const defaultGCPercent = 40

// setGCPercent applies defaultGCPercent unless GOGC chose otherwise.
func setGCPercent(lookup func(string) (string, bool), log *zap.Logger) {
	if v, ok := lookup("GOGC"); ok && v != "" {
		log.Debug("GC headroom from GOGC", zap.String("GOGC", v))
		return
	}
	debug.SetGCPercent(defaultGCPercent)
}
