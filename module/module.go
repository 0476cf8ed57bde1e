// Package module is mesibo-iot itself, independent of the C ABI: it decides
// what to do with each message mesibo shows it, talks to devices through
// transports and answers people through the Host.
//
// Callbacks (OnMessage, OnMessageStatus, OnLogin) never block: they copy what
// they need and hand it to the module's worker through a bounded queue.
// Messages that are not for the bridge or a device PASS without allocating.
package module

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Version is the module's version, reported by `ping` and `version`.
const Version = "0.1.0"

// Options are the module's non-configuration dependencies.
type Options struct {
	// Fault, if set, is called at named points (on_message, on_message_status,
	// on_login, worker, ...) so tests can inject panics. Nil in production.
	Fault func(point string)
}

// Module is one instance of mesibo-iot. mesibo may load the module twice with
// different configuration: each instance is independent.
type Module struct {
	cfg  Config
	host Host
	opts Options

	inbox  chan event
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	nextID atomic.Uint32

	// owned by the worker goroutine
	sent map[uint64]sentMessage
}

type eventKind uint8

const (
	evChat eventKind = iota + 1
	evStatus
	evLogin
	evTooLong
)

type event struct {
	kind   eventKind
	p      Params
	body   []byte
	online bool
}

type sentMessage struct {
	to   string
	what string
}

// New creates an instance from its mesibo.conf items. It starts the module's
// goroutines; Close stops them.
func New(items []ConfigItem, host Host, opts Options) (*Module, error) {
	if host == nil {
		return nil, errors.New("module.New: host is nil")
	}
	cfg, err := ParseConfig(items)
	if err != nil {
		return nil, err
	}
	m := &Module{
		cfg:   cfg,
		host:  host,
		opts:  opts,
		inbox: make(chan event, cfg.InboxSize),
		sent:  make(map[uint64]sentMessage),
	}
	m.nextID.Store(rand.Uint32() & 0x7fffffff)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.worker()
	m.logf(LevelInfo, "iot %s: bridge address %q", Version, cfg.Address)
	return m, nil
}

// Config returns the instance's configuration.
func (m *Module) Config() Config { return m.cfg }

// Close stops every goroutine the instance started. It is safe to call twice.
func (m *Module) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.cancel()
	m.wg.Wait()
	m.logf(LevelInfo, "iot: stopped")
	return nil
}

func (m *Module) fault(point string) {
	if m.opts.Fault != nil {
		m.opts.Fault(point)
	}
}

// OnMessage is mesibo's on_message. It returns Pass for traffic that is not
// for the bridge or a device, without allocating.
func (m *Module) OnMessage(p *Params, body []byte) Result {
	if p.To != m.cfg.Address {
		return Pass
	}
	m.fault("on_message")
	if m.closed.Load() {
		return Pass
	}
	ev := event{kind: evChat, p: p.Clone()}
	if len(body) > m.cfg.MaxMessage {
		ev.kind = evTooLong
	} else {
		ev.body = append([]byte(nil), body...)
	}
	m.enqueue(ev)
	return Consumed
}

// OnMessageStatus is mesibo's on_message_status for messages the module sent.
func (m *Module) OnMessageStatus(p *Params) Result {
	m.fault("on_message_status")
	if m.closed.Load() {
		return Pass
	}
	m.enqueue(event{kind: evStatus, p: p.Clone()})
	return Pass
}

// OnLogin is mesibo's on_login: a user logged in (online) or out.
func (m *Module) OnLogin(address string, online bool) {
	m.fault("on_login")
	if m.closed.Load() {
		return
	}
	m.enqueue(event{kind: evLogin, p: Params{From: cloneString(address)}, online: online})
}

// enqueue never blocks: when the worker's queue is full the event is dropped
// with a log line (a chat message gets a "busy" answer from the callback).
func (m *Module) enqueue(ev event) {
	select {
	case m.inbox <- ev:
	default:
		m.logf(LevelWarn, "iot: worker queue full (%d); dropped %s from %q", cap(m.inbox), ev.kind, ev.p.From)
		if ev.kind == evChat || ev.kind == evTooLong {
			m.reply(&ev.p, "The bridge is busy; please try again in a moment.")
		}
	}
}

func (k eventKind) String() string {
	switch k {
	case evChat:
		return "message"
	case evStatus:
		return "status"
	case evLogin:
		return "login"
	case evTooLong:
		return "oversized message"
	}
	return "event"
}

func (m *Module) worker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case ev := <-m.inbox:
			m.safely("worker", func() { m.handle(ev) })
		}
	}
}

// safely runs fn and turns a panic into a logged error.
func (m *Module) safely(where string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			m.logf(LevelError, "iot: recovered panic in %s: %v\n%s", where, r, debug.Stack())
		}
	}()
	fn()
}

func (m *Module) handle(ev event) {
	m.fault("worker")
	switch ev.kind {
	case evChat:
		m.handleBridge(&ev.p, string(ev.body))
	case evTooLong:
		m.reply(&ev.p, fmt.Sprintf("Message too long: at most %d bytes are read.", m.cfg.MaxMessage))
	case evStatus:
		m.handleStatus(&ev.p)
	case evLogin:
		m.logf(LevelDebug, "iot: %s is %s", ev.p.From, map[bool]string{true: "online", false: "offline"}[ev.online])
	}
}

func (m *Module) handleStatus(p *Params) {
	s, ok := m.sent[p.ID]
	if !ok {
		m.logf(LevelDebug, "iot: status %s for unknown message %d", statusName(p.Status), p.ID)
		return
	}
	m.logf(LevelDebug, "iot: message %d (%s) to %s: %s", p.ID, s.what, s.to, statusName(p.Status))
	if p.Status == StatusRead || p.Status >= StatusFail {
		delete(m.sent, p.ID)
	}
}

func statusName(s uint64) string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	case StatusFail:
		return "failed"
	case StatusNotActive:
		return "not active"
	case StatusInboxFull:
		return "inbox full"
	case StatusInvalidDest:
		return "invalid destination"
	case StatusExpired:
		return "expired"
	case StatusNoIncoming:
		return "no incoming"
	case StatusBlocked:
		return "blocked"
	}
	return fmt.Sprintf("status %d", s)
}

func (m *Module) newID() uint64 {
	for {
		id := uint64(m.nextID.Add(1) & 0x7fffffff)
		if id != 0 {
			return id
		}
	}
}

// reply answers the message p with text, from the address p was sent to,
// with refid = p.ID and a delivery receipt requested.
func (m *Module) reply(p *Params, text string) {
	out := Params{
		AID:   p.AID,
		ID:    m.newID(),
		RefID: p.ID,
		Flags: FlagDeliveryReceipt,
		To:    p.From,
		From:  p.To,
	}
	if err := m.host.Send(&out, []byte(text)); err != nil {
		m.logf(LevelWarn, "iot: could not send reply %d to %s: %v", out.ID, out.To, err)
		return
	}
	if len(m.sent) < 65536 {
		m.sent[out.ID] = sentMessage{to: out.To, what: fmt.Sprintf("reply to %d", p.ID)}
	}
}

func (m *Module) logf(level Level, format string, args ...any) {
	if level > m.cfg.LogLevel {
		return
	}
	m.host.Log(level, fmt.Sprintf(format, args...))
}

// FaultHook returns the fault-injection hook the instance was created with.
func (m *Module) FaultHook() func(string) { return m.opts.Fault }
