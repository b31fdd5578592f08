package main

import (
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
)

func TestGCPercentDefaultsUnlessGOGCIsSet(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	setGCPercent(func(string) (string, bool) { return "", false }, zap.NewNop())
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, defaultGCPercent)
	}
	setGCPercent(func(k string) (string, bool) { return "200", k == "GOGC" }, zap.NewNop())
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent changed to %d", got)
	}
}
