package cluster

import (
	"fmt"
	"io"
	"log"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHCLog adapts a zap.Logger to hclog.Logger, the interface raft logs
// through. Levels map one to one except TRACE, which goes to zap's DEBUG.
// Whether a message is written is zap's decision (so raft's chatty DEBUG
// lines stay quiet unless the zap logger is at debug), further narrowed by
// SetLevel, which all loggers derived with With/Named share.
type zapHCLog struct {
	root    *zap.Logger // without name or implied fields, for ResetNamed
	zl      *zap.Logger // root + name + implied fields
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level floor; hclog.NoLevel lets everything through to zap
}

var _ hclog.Logger = (*zapHCLog)(nil)

func newZapHCLog(zl *zap.Logger) hclog.Logger {
	return &zapHCLog{root: zl, zl: zl, level: new(atomic.Int32)}
}

func (l *zapHCLog) Log(level hclog.Level, msg string, args ...any) {
	switch level {
	case hclog.Trace:
		l.Trace(msg, args...)
	case hclog.Debug:
		l.Debug(msg, args...)
	case hclog.Info, hclog.NoLevel:
		l.Info(msg, args...)
	case hclog.Warn:
		l.Warn(msg, args...)
	case hclog.Error:
		l.Error(msg, args...)
	}
}

func (l *zapHCLog) Trace(msg string, args ...any) { l.write(hclog.Trace, msg, args) }
func (l *zapHCLog) Debug(msg string, args ...any) { l.write(hclog.Debug, msg, args) }
func (l *zapHCLog) Info(msg string, args ...any)  { l.write(hclog.Info, msg, args) }
func (l *zapHCLog) Warn(msg string, args ...any)  { l.write(hclog.Warn, msg, args) }
func (l *zapHCLog) Error(msg string, args ...any) { l.write(hclog.Error, msg, args) }

func (l *zapHCLog) IsTrace() bool { return l.enabled(hclog.Trace) }
func (l *zapHCLog) IsDebug() bool { return l.enabled(hclog.Debug) }
func (l *zapHCLog) IsInfo() bool  { return l.enabled(hclog.Info) }
func (l *zapHCLog) IsWarn() bool  { return l.enabled(hclog.Warn) }
func (l *zapHCLog) IsError() bool { return l.enabled(hclog.Error) }

func (l *zapHCLog) write(level hclog.Level, msg string, args []any) {
	if !l.enabled(level) {
		return
	}
	if ce := l.zl.Check(zapLevel(level), msg); ce != nil {
		ce.Write(zapFields(args)...)
	}
}

func (l *zapHCLog) enabled(level hclog.Level) bool {
	if floor := hclog.Level(l.level.Load()); floor != hclog.NoLevel && level < floor {
		return false
	}
	return l.zl.Core().Enabled(zapLevel(level))
}

func zapLevel(level hclog.Level) zapcore.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	default:
		return zapcore.InfoLevel
	}
}

// zapFields turns hclog's alternating key/value args into zap fields.
func zapFields(args []any) []zap.Field {
	if len(args) == 0 {
		return nil
	}
	fields := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			// hclog's own convention for a dangling value.
			fields = append(fields, zap.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		switch v := args[i+1].(type) {
		case hclog.Format:
			if len(v) > 0 {
				format, _ := v[0].(string)
				fields = append(fields, zap.String(key, fmt.Sprintf(format, v[1:]...)))
			}
		case error:
			fields = append(fields, zap.NamedError(key, v))
		default:
			fields = append(fields, zap.Any(key, v))
		}
	}
	return fields
}

func (l *zapHCLog) ImpliedArgs() []any { return l.implied }

func (l *zapHCLog) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(append([]any(nil), l.implied...), args...)
	c.zl = l.zl.With(zapFields(args)...)
	return &c
}

func (l *zapHCLog) Name() string { return l.name }

func (l *zapHCLog) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return l.ResetNamed(name)
}

func (l *zapHCLog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	c.zl = l.root
	if name != "" {
		c.zl = c.zl.Named(name)
	}
	c.zl = c.zl.With(zapFields(l.implied)...)
	return &c
}

// SetLevel sets a floor below which messages are dropped before zap sees
// them. It cannot make zap write a level its core has disabled.
func (l *zapHCLog) SetLevel(level hclog.Level) { l.level.Store(int32(level)) }

func (l *zapHCLog) GetLevel() hclog.Level {
	if floor := hclog.Level(l.level.Load()); floor != hclog.NoLevel {
		return floor
	}
	for _, lv := range []hclog.Level{hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if l.zl.Core().Enabled(zapLevel(lv)) {
			return lv
		}
	}
	return hclog.Off
}

// StandardLogger writes each line at opts.ForceLevel (INFO when unset).
func (l *zapHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	level := zapcore.InfoLevel
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = zapLevel(opts.ForceLevel)
	}
	std, err := zap.NewStdLogAt(l.zl, level)
	if err != nil { // only for levels zap does not know; ours are all valid
		return zap.NewStdLog(l.zl)
	}
	return std
}

func (l *zapHCLog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return l.StandardLogger(opts).Writer()
}
