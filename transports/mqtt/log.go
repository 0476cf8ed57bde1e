package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
)

// logger writes through Options.Logf; nil Logf discards.
type logger func(level int, msg string)

func (l logger) printf(level int, format string, args ...any) {
	if l == nil {
		return
	}
	l(level, "mqtt: "+fmt.Sprintf(format, args...))
}

// recoverLog is deferred at the top of every goroutine and callback: a panic
// is logged with its stack instead of killing the host process.
func (l logger) recoverLog(where string) {
	if r := recover(); r != nil {
		l.printf(LevelError, "recovered panic in %s: %v\n%s", where, r, debug.Stack())
	}
}

// fault calls Options.Fault (tests inject panics there).
func (t *Transport) fault(point string) {
	if t.opts.Fault != nil {
		t.opts.Fault(point)
	}
}

// slogHandler routes mochi-mqtt's log/slog output to Logf. mochi's Info
// lines (hooks added, clients connecting) become debug lines; its Debug
// lines are discarded. Nothing is ever written to stdout or stderr.
type slogHandler struct {
	logf  func(level int, msg string)
	attrs []slog.Attr
	group string
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.logf != nil && l >= slog.LevelInfo
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("log handler panic: %v", p)
		}
	}()
	if h.logf == nil {
		return nil
	}
	level := LevelDebug
	switch {
	case r.Level >= slog.LevelError:
		level = LevelError
	case r.Level >= slog.LevelWarn:
		level = LevelWarn
	}
	var b strings.Builder
	b.WriteString("mqtt: embedded broker: ")
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true
		}
		b.WriteByte(' ')
		if h.group != "" {
			b.WriteString(h.group)
			b.WriteByte('.')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	h.logf(level, b.String())
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		n.group += "." + name
	} else {
		n.group = name
	}
	return &n
}
