package cluster

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// memberlist's "[LEVEL] memberlist: ..." lines keep their level in zap.
func TestMemberlistLoggerLevels(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	var closed atomic.Bool
	l := memberlistLogger(zap.New(core), &closed)
	l.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:1")
	l.Printf("[INFO] memberlist: Suspect b2 has failed, no acks received")
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: b1)")
	l.Printf("[ERR] memberlist: Failed to send ping: boom")
	l.Printf("no prefix")
	closed.Store(true)
	l.Printf("[INFO] memberlist: Marking b1 as failed, suspect timeout reached (after Shutdown)")
	got := logs.AllUntimed()
	want := []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.InfoLevel, "Suspect b2 has failed, no acks received"},
		{zapcore.WarnLevel, "Refuting a suspect message (from: b1)"},
		{zapcore.ErrorLevel, "Failed to send ping: boom"},
		{zapcore.InfoLevel, "no prefix"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg {
			t.Errorf("entry %d: %v %q, want %v %q", i, got[i].Level, got[i].Message, w.level, w.msg)
		}
	}
}
