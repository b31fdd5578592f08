package cluster

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestZapHCLogLevels(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newZapHCLog(zap.New(core))

	l.Trace("trace")
	l.Debug("debug")
	if l.IsDebug() || l.IsTrace() {
		t.Error("DEBUG/TRACE enabled on an INFO zap logger")
	}
	l.Info("info")
	l.Warn("warn")
	l.Error("error")
	l.Log(hclog.Warn, "log-warn")

	want := []struct {
		msg   string
		level zapcore.Level
	}{{"info", zapcore.InfoLevel}, {"warn", zapcore.WarnLevel}, {"error", zapcore.ErrorLevel}, {"log-warn", zapcore.WarnLevel}}
	got := logs.TakeAll()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Message != w.msg || got[i].Level != w.level {
			t.Errorf("entry %d = %s@%s, want %s@%s", i, got[i].Message, got[i].Level, w.msg, w.level)
		}
	}
	if l.GetLevel() != hclog.Info {
		t.Errorf("GetLevel = %v, want Info", l.GetLevel())
	}

	// SetLevel narrows further, for every derived logger.
	sub := l.Named("x")
	l.SetLevel(hclog.Error)
	sub.Warn("dropped")
	sub.Error("kept")
	if got := logs.TakeAll(); len(got) != 1 || got[0].Message != "kept" {
		t.Fatalf("after SetLevel(Error): %v", got)
	}
}

func TestZapHCLogDebugWhenZapIsDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newZapHCLog(zap.New(core))
	l.Trace("t")
	l.Debug("d")
	if !l.IsTrace() || !l.IsDebug() {
		t.Error("TRACE/DEBUG disabled on a DEBUG zap logger")
	}
	for _, e := range logs.TakeAll() {
		if e.Level != zapcore.DebugLevel {
			t.Errorf("%s logged at %s, want debug", e.Message, e.Level)
		}
	}
}

func TestZapHCLogFieldsAndNames(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newZapHCLog(zap.New(core)).Named("raft").With("node", "n1")
	l = l.Named("transport")
	if l.Name() != "raft.transport" {
		t.Fatalf("Name = %q", l.Name())
	}
	l.Info("msg", "err", errors.New("boom"), "servers", hclog.Fmt("%d servers", 3), 42, "non-string key", "dangling")

	e := logs.TakeAll()[0]
	if e.LoggerName != "raft.transport" {
		t.Errorf("logger name = %q", e.LoggerName)
	}
	f := e.ContextMap()
	for k, want := range map[string]any{"node": "n1", "err": "boom", "servers": "3 servers", "42": "non-string key", "EXTRA_VALUE_AT_END": "dangling"} {
		if f[k] != want {
			t.Errorf("field %s = %#v, want %#v (all: %v)", k, f[k], want, f)
		}
	}

	r := l.ResetNamed("other")
	r.Info("m")
	if e := logs.TakeAll()[0]; e.LoggerName != "other" || e.ContextMap()["node"] != "n1" {
		t.Errorf("ResetNamed: name %q, fields %v", e.LoggerName, e.ContextMap())
	}
	if args := r.ImpliedArgs(); len(args) != 2 || args[0] != "node" {
		t.Errorf("ImpliedArgs = %v", args)
	}

	std := l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn})
	std.Print("from stdlib")
	if e := logs.TakeAll(); len(e) != 1 || e[0].Level != zapcore.WarnLevel || e[0].Message != "from stdlib" {
		t.Errorf("StandardLogger: %v", e)
	}
}
