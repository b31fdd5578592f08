package cluster

import (
	"bytes"
	"log"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// memberlistLogger turns memberlist's standard-library log lines, which
// carry their level as a "[WARN] " style prefix, into zap entries at that
// level: its warnings and errors (a refuted suspicion, probes that failed
// over UDP but not TCP, a push/pull that failed) reach the node's log, and
// its per-connection [DEBUG] lines only at debug level. Once closed is
// set, lines are dropped: memberlist's Shutdown does not wait for a probe in
// flight, which may still log after the cluster (and a test) has ended.
func memberlistLogger(l *zap.Logger, closed *atomic.Bool) *log.Logger {
	// Every line would name this file as its caller: leave the caller out.
	return log.New(mlWriter{l.WithOptions(zap.WithCaller(false)), closed}, "", 0)
}

type mlWriter struct {
	l      *zap.Logger
	closed *atomic.Bool
}

var mlLevels = []struct {
	prefix []byte
	level  zapcore.Level
}{
	{[]byte("[DEBUG] "), zapcore.DebugLevel},
	{[]byte("[INFO] "), zapcore.InfoLevel},
	{[]byte("[WARN] "), zapcore.WarnLevel},
	{[]byte("[ERR] "), zapcore.ErrorLevel},
	{[]byte("[ERROR] "), zapcore.ErrorLevel},
}

func (w mlWriter) Write(p []byte) (int, error) {
	if w.closed != nil && w.closed.Load() {
		return len(p), nil
	}
	msg := bytes.TrimRight(p, "\n")
	level := zapcore.InfoLevel
	for _, lv := range mlLevels {
		if bytes.HasPrefix(msg, lv.prefix) {
			level, msg = lv.level, msg[len(lv.prefix):]
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if ce := w.l.Check(level, string(msg)); ce != nil {
		ce.Write()
	}
	return len(p), nil
}
