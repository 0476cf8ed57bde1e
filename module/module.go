// Package module is mesibo-iot itself, independent of the C ABI: it decides
// what to do with each message mesibo shows it, talks to devices through
// transports and answers people through the Host.
//
// Concurrency: mesibo's callbacks (OnMessage, OnMessageStatus, OnLogin) never
// block: they copy what they need and hand it to the core goroutine through a
// bounded queue. The core goroutine owns all state (devices, commands,
// watchers) and is the only one to touch it. Transports report through the
// Sink, which posts to the same queue. Each device with work has a sender
// goroutine that calls Transport.Send so the core never waits on the network.
// Messages that are not for the bridge, a device or a device group PASS
// without allocating and without taking a lock.
package module

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mesibo-iot/mesibo-iot/devices"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// Version is the module's version, reported by `ping` and `version`.
const Version = "0.2.0"

// Options are the module's non-configuration dependencies.
type Options struct {
	// Fault, if set, is called at named points (on_message, on_message_status,
	// on_login, worker, sender, watcher, ...) so tests can inject panics.
	// Nil in production.
	Fault func(point string)
	// Transports, if set, replaces the transports built from the
	// configuration (unit tests use transports/memory). Keyed by the
	// transport name devices.yaml uses (mqtt, serial, memory).
	Transports map[string]transports.Transport
	// Now, if set, replaces time.Now (tests).
	Now func() time.Time
}

// routes is the immutable routing table the PASS path reads.
type routes struct {
	bridge  string
	devices map[string]*devices.Device
	groups  map[uint64]*devices.Group
	filter  addrFilter // the bridge's and the devices' addresses: most misses end here
}

// RouteSet is what Passes decides on, as plain data: the bridge's address
// (first) and the devices' addresses, and the device groups' ids. The C ABI
// keeps a copy of it so that mesibo's threads can tell the module's messages
// from the rest without entering Go (see PublishRoutes).
type RouteSet struct {
	Addresses []string // Addresses[0] is the bridge's
	Groups    []uint64
}

func (r *routes) set() RouteSet {
	s := RouteSet{Addresses: make([]string, 0, len(r.devices)+1), Groups: make([]uint64, 0, len(r.groups))}
	s.Addresses = append(s.Addresses, r.bridge)
	for a := range r.devices {
		s.Addresses = append(s.Addresses, a)
	}
	for id := range r.groups {
		s.Groups = append(s.Groups, id)
	}
	return s
}

// routeTable holds the current routing table. Load is one atomic load;
// Store (at New and at every reload) also hands the new table to the hook
// PublishRoutes set, under a mutex, so the hook sees the tables in the
// order they were stored and never misses the last one.
type routeTable struct {
	p    atomic.Pointer[routes]
	mu   sync.Mutex
	hook func(RouteSet)
}

func (t *routeTable) Load() *routes { return t.p.Load() }

func (t *routeTable) Store(r *routes) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Store(r)
	if t.hook != nil {
		t.hook(r.set())
	}
}

// PublishRoutes calls fn with the current routing table now and with every
// new one from then on (reloads, on the core goroutine), until it is called
// again (nil: stop). The C ABI uses it to keep its own copy of what Passes
// decides on.
func (m *Module) PublishRoutes(fn func(RouteSet)) {
	m.routes.mu.Lock()
	defer m.routes.mu.Unlock()
	m.routes.hook = fn
	if r := m.routes.p.Load(); fn != nil && r != nil {
		fn(r.set())
	}
}

// Module is one instance of mesibo-iot. mesibo may load the module twice with
// different configuration: each instance is independent.
type Module struct {
	cfg  Config
	host Host
	opts Options
	now  func() time.Time

	routes routeTable

	events chan event // bounded; the core goroutine drains it
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	nextID    atomic.Uint32
	nextCmdID atomic.Uint64

	transports map[string]transports.Transport
	metrics    *metrics
	metricsSrv *metricsServer

	core *core // owned by the core goroutine
}

// New creates an instance from its mesibo.conf items. It loads the devices
// file, starts the transports, the metrics endpoint and the core goroutine;
// Close stops them all.
func New(items []ConfigItem, host Host, opts Options) (*Module, error) {
	if host == nil {
		return nil, errors.New("module.New: host is nil")
	}
	cfg, err := ParseConfig(items)
	if err != nil {
		return nil, err
	}
	m := &Module{
		cfg:    cfg,
		host:   host,
		opts:   opts,
		now:    opts.Now,
		events: make(chan event, cfg.InboxSize),
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.nextID.Store(rand.Uint32() & 0x3fffffff)
	m.nextCmdID.Store(uint64(time.Now().UnixMilli()) << 16)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.metrics = newMetrics()

	var devs *devices.Config
	if cfg.DevicesFile != "" {
		devs, err = devices.Load(cfg.DevicesFile)
		if err != nil {
			m.cancel()
			return nil, fmt.Errorf("%w: devices = %s: %w", ErrConfig, cfg.DevicesFile, err)
		}
	} else {
		devs = emptyDevices()
	}
	if err := checkBridgeAddress(cfg.Address, devs); err != nil {
		m.cancel()
		return nil, err
	}
	m.core = newCore(m, devs)
	m.routes.Store(buildRoutes(cfg.Address, devs))

	if err := m.startTransports(devs); err != nil {
		m.closeTransports()
		m.cancel()
		return nil, err
	}
	if cfg.MetricsListen != "" {
		srv, err := startMetrics(m.ctx, cfg.MetricsListen, m.metrics,
			func(l Level, s string) { m.logf(l, "%s", s) }, opts.Fault)
		if err != nil {
			m.logf(LevelWarn, "iot: metrics endpoint disabled: %v (set metrics_listen to a free address, or off)", err)
		} else {
			m.metricsSrv = srv
			m.logf(LevelInfo, "iot: metrics on http://%s/metrics", srv.Addr())
		}
	}
	m.wg.Add(1)
	go m.run()
	if cfg.DevicesFile != "" && cfg.ReloadInterval > 0 {
		m.wg.Add(1)
		go m.watchDevicesFile()
	}
	m.logf(LevelInfo, "iot %s: bridge address %q, %d devices, %d groups", Version, cfg.Address, len(devs.Devices), len(devs.Groups))
	return m, nil
}

func emptyDevices() *devices.Config {
	return &devices.Config{
		ByAddress: map[string]*devices.Device{},
		ByID:      map[string]*devices.Device{},
		GroupByID: map[uint64]*devices.Group{},
	}
}

func checkBridgeAddress(bridge string, devs *devices.Config) error {
	if _, ok := devs.ByAddress[bridge]; ok {
		return fmt.Errorf("%w: a device uses the bridge's address %q; rename the device or set address", ErrConfig, bridge)
	}
	return nil
}

func buildRoutes(bridge string, devs *devices.Config) *routes {
	r := &routes{bridge: bridge, devices: make(map[string]*devices.Device, len(devs.Devices)), groups: make(map[uint64]*devices.Group, len(devs.Groups))}
	addrs := make([]string, 0, len(devs.Devices)+1)
	addrs = append(addrs, bridge)
	for _, d := range devs.Devices {
		r.devices[d.Address] = d
		addrs = append(addrs, d.Address)
	}
	for _, g := range devs.Groups {
		r.groups[g.GroupID] = g
	}
	r.filter = newAddrFilter(addrs)
	return r
}

// Config returns the instance's configuration.
func (m *Module) Config() Config { return m.cfg }

// MetricsAddr returns the address the metrics endpoint listens on, or "".
func (m *Module) MetricsAddr() string {
	if m.metricsSrv == nil {
		return ""
	}
	return m.metricsSrv.Addr()
}

// FaultHook returns the fault-injection hook the instance was created with.
func (m *Module) FaultHook() func(string) { return m.opts.Fault }

// Close stops every goroutine the instance started and closes what it
// opened. Commands still open are failed with a reply that says so.
func (m *Module) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	done := make(chan struct{})
	// let the core fail what is open while the host can still send
	select {
	case m.events <- event{kind: evShutdown, done: done}:
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	default:
	}
	m.cancel()
	m.closeTransports()
	if m.metricsSrv != nil {
		m.metricsSrv.Close()
	}
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
// for the bridge, a device or a device group, without allocating.
func (m *Module) OnMessage(p *Params, body []byte) Result {
	if m.Passes(p.To, p.GroupID) {
		return Pass
	}
	return m.accept(p, body)
}

// Passes reports whether a message to `to` (group message: groupID != 0)
// is not for the bridge, a device or a device group, i.e. whether
// OnMessage would return Pass at once. It reads the immutable routing
// table without a lock and never allocates; the C ABI calls it before it
// builds anything for OnMessage.
func (m *Module) Passes(to string, groupID uint64) bool {
	r := m.routes.Load()
	if groupID != 0 {
		_, ok := r.groups[groupID]
		return !ok
	}
	if !r.filter.mayContain(to) { // the bridge's address is in it too
		return true
	}
	if to == r.bridge {
		return false
	}
	_, ok := r.devices[to]
	return !ok
}

// accept is the slow path: the message is ours.
func (m *Module) accept(p *Params, body []byte) Result {
	start := time.Now()
	m.fault("on_message")
	if m.closed.Load() {
		return Pass
	}
	ev := event{kind: evChat, p: p.Clone(), at: m.now()}
	if len(body) > m.cfg.MaxMessage {
		ev.kind = evTooLong
	} else {
		ev.body = append([]byte(nil), body...)
	}
	m.post(ev)
	m.metrics.callback.Observe(time.Since(start).Seconds())
	return Consumed
}

// OnMessageStatus is mesibo's on_message_status for messages the module sent.
func (m *Module) OnMessageStatus(p *Params) Result {
	m.fault("on_message_status")
	if m.closed.Load() {
		return Pass
	}
	m.post(event{kind: evStatus, p: Params{ID: p.ID, Status: p.Status, To: cloneString(p.To)}})
	return Pass
}

// OnLogin is mesibo's on_login: a user logged in (online) or out.
func (m *Module) OnLogin(address string, online bool) {
	m.fault("on_login")
	if m.closed.Load() {
		return
	}
	m.post(event{kind: evLogin, p: Params{From: cloneString(address)}, online: online})
}

// AcceptCopied hands the module a message for the bridge, a device or a
// device group that the caller has already copied out of mesibo's buffers
// and owns no more: p's strings and body are kept as they are (no second
// copy). tooLong says the message was longer than max_message (body is then
// empty). spent is how long the caller's on_message took for it (observed
// in mesibo_iot_callback_seconds; 0: not measured).
//
// The C ABI's drainer goroutine calls it for the messages mesibo's threads
// queued in the C inbox (cabi/fastpath.c): unlike OnMessage it runs on a Go
// goroutine of the module's own, so it waits for room in the core's queue
// (or for the module to stop) instead of answering "busy" — the C inbox in
// front of it is where a full queue is answered busy (Busy).
func (m *Module) AcceptCopied(p Params, body []byte, tooLong bool, spent time.Duration) {
	m.fault("on_message")
	if m.closed.Load() {
		return
	}
	ev := event{kind: evChat, p: p, at: m.now()}
	if tooLong {
		ev.kind = evTooLong
	} else {
		ev.body = body
	}
	select {
	case m.events <- ev:
	case <-m.ctx.Done():
		return
	}
	if spent > 0 {
		m.metrics.callback.Observe(spent.Seconds())
	}
}

// Busy answers a message for the bridge, a device or a device group that
// could not be queued because the C inbox (inbox_size messages) was full:
// what post does when the core's queue is full. tooLong as for AcceptCopied.
// Called on mesibo's thread; p's strings are only read during the call.
func (m *Module) Busy(p *Params, tooLong bool) {
	if m.closed.Load() {
		return
	}
	ev := event{kind: evChat, p: p.Clone()}
	if tooLong {
		ev.kind = evTooLong
	}
	m.dropped(ev, "inbox")
}

// NotTaken answers a consumed message that could not be handed to the
// core because of an internal error (a recovered panic, logged with its
// stack): the sender learns it was not run and may send it again.
func (m *Module) NotTaken(p *Params) {
	m.metrics.queueDropped.WithLabelValues(evChat.String()).Inc()
	m.sendText(p, "The bridge could not take this message because of an internal error (logged); it was not run. Please send it again.", 0)
}

// post never blocks: when the core's queue is full the event is dropped with
// a log line and a metric (a chat message gets a "busy" answer).
func (m *Module) post(ev event) {
	select {
	case m.events <- ev:
	default:
		m.dropped(ev, "core queue")
	}
}

func (m *Module) dropped(ev event, queue string) {
	m.metrics.queueDropped.WithLabelValues(ev.kind.String()).Inc()
	m.logf(LevelWarn, "iot: %s full (%d); dropped %s", queue, cap(m.events), ev.kind)
	if ev.kind == evChat || ev.kind == evTooLong {
		m.sendText(&ev.p, "The bridge is busy; please try again in a moment.", 0)
	}
}

// postWait is for transport goroutines: it waits for room (they may block)
// but gives up when the module stops.
func (m *Module) postWait(ev event) bool {
	select {
	case m.events <- ev:
		return true
	case <-m.ctx.Done():
		return false
	}
}

func (m *Module) run() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.Tick)
	defer tick.Stop()
	queueMax := 0
	for {
		select {
		case <-m.ctx.Done():
			return
		case ev := <-m.events:
			if n := len(m.events) + 1; n > queueMax { // the depth just before this event was taken
				queueMax = n
				m.metrics.coreQueueMax.Set(float64(n))
			}
			m.safely("worker", func() { m.core.handle(ev) })
			if ev.done != nil {
				close(ev.done)
			}
		case <-tick.C:
			m.safely("timers", func() { m.core.tick(m.now()) })
			m.metrics.coreQueue.Set(float64(len(m.events)))
		}
	}
}

// safely runs fn and turns a panic into a logged error.
func (m *Module) safely(where string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			m.metrics.panics.WithLabelValues(where).Inc()
			m.logf(LevelError, "iot: recovered panic in %s: %v\n%s", where, r, debug.Stack())
		}
	}()
	fn()
}

// goSafe starts a goroutine the module owns: it is counted in wg and its
// panics are recovered and logged.
func (m *Module) goSafe(where string, fn func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.safely(where, fn)
	}()
}

func (m *Module) newMsgID() uint64 {
	for {
		id := uint64(m.nextID.Add(1) & 0x7fffffff)
		if id != 0 {
			return id
		}
	}
}

// sendText answers p (a message a person sent) with text from the address p
// was sent to, refid = p.ID. extra flags are added to DELIVERYRECEIPT.
func (m *Module) sendText(p *Params, text string, extra uint64) uint64 {
	return m.send(Params{AID: p.AID, RefID: p.ID, Flags: FlagDeliveryReceipt | extra, To: p.From, From: p.To}, text)
}

// send sends out (ID assigned here) and returns its id, or 0 on failure.
func (m *Module) send(out Params, text string) uint64 {
	out.ID = m.newMsgID()
	if err := m.host.Send(&out, []byte(text)); err != nil {
		m.metrics.sendErrors.Inc()
		m.logf(LevelWarn, "iot: could not send message %d to %s: %v", out.ID, out.To, err)
		return 0
	}
	m.metrics.messagesOut.Inc()
	return out.ID
}

func (m *Module) logf(level Level, format string, args ...any) {
	if level > m.cfg.LogLevel {
		return
	}
	m.host.Log(level, fmt.Sprintf(format, args...))
}
