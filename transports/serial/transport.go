// Package serial is the transport to devices on serial ports of the gateway
// (USB CDC-ACM, FTDI and other USB-serial adapters, UARTs): one device per
// port, each port served by its own goroutines, so a slow or dead port never
// holds up another.
//
// For each port a worker resolves the port's path (again at every
// reconnect), opens it (OpenPort: any descriptor number, no select(2)), and
// runs a link (package link, role Bridge) over it. The device opens the link
// with a Hello; then it is online (Sink.Presence). Read errors, EOF and EIO
// (unplug), or a write that times out close the port: the device is
// reported offline and the port reopened with backoff. docs/serial.md has
// the operator's view.
package serial

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

// Transport is the serial transport. It implements transports.Transport.
type Transport struct {
	o Options

	mu      sync.Mutex
	sink    transports.Sink
	eps     map[string]transports.Endpoint
	workers map[string]*worker
	started bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc

	presSeq atomic.Uint64 // Presence.Seq: monotonic across ports, reconnects and instances
}

var _ transports.Transport = (*Transport)(nil)

// New returns a transport with opts. Start from DefaultOptions (or
// OptionsFromConfig): a zero Retries means no retransmission.
func New(opts Options) (*Transport, error) {
	o := opts.withDefaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	t := &Transport{o: o, eps: map[string]transports.Endpoint{}, workers: map[string]*worker{}}
	t.presSeq.Store(uint64(time.Now().UnixNano()))
	return t, nil
}

// Name implements transports.Transport.
func (t *Transport) Name() string { return t.o.Name }

// Kind implements transports.Transport.
func (t *Transport) Kind() string { return "serial" }

// fault calls Options.Fault (tests inject panics there).
func (t *Transport) fault(point string) {
	if t.o.Fault != nil {
		t.o.Fault(point)
	}
}

func (t *Transport) logf(level LogLevel, format string, args ...any) {
	if t.o.Logf != nil {
		t.o.Logf(level, "serial: "+fmt.Sprintf(format, args...))
	}
}

// Start implements transports.Transport: it starts one worker per endpoint
// and returns. Ports that cannot be opened are retried in the background
// (logged; the devices stay offline). ctx bounds the transport's life, as
// Close does.
func (t *Transport) Start(ctx context.Context, sink transports.Sink) error {
	if sink == nil {
		return errors.New("serial: Start needs a Sink")
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transports.ErrClosed
	}
	if t.started {
		t.mu.Unlock()
		return errors.New("serial: Start called twice")
	}
	t.started = true
	t.sink = sink
	t.ctx, t.cancel = context.WithCancel(ctx)
	stopped := t.applyLocked()
	n := len(t.workers)
	t.mu.Unlock()
	t.waitStopped(stopped)
	sink.Link(t.o.Name, true, fmt.Sprintf("serial transport started with %d port(s)", n))
	return nil
}

// SetEndpoints implements transports.Transport. Every endpoint needs a
// DeviceID and a Serial with a Path or a USB vendor and product; device ids
// must be unique. Workers of removed or changed endpoints are stopped (their
// ports closed), new ones started; unchanged ones keep running.
func (t *Transport) SetEndpoints(eps []transports.Endpoint) error {
	next := make(map[string]transports.Endpoint, len(eps))
	for i, ep := range eps {
		switch {
		case ep.DeviceID == "":
			return fmt.Errorf("serial: endpoint %d has no device id", i+1)
		case ep.Serial == nil:
			return fmt.Errorf("serial: device %s has no serial port settings", ep.DeviceID)
		case ep.Serial.Path == "" && (ep.Serial.USBVendor == "" || ep.Serial.USBProduct == ""):
			return fmt.Errorf("serial: device %s has neither a port path nor a USB vendor and product", ep.DeviceID)
		}
		if _, dup := next[ep.DeviceID]; dup {
			return fmt.Errorf("serial: device %s is listed twice", ep.DeviceID)
		}
		sp := *ep.Serial
		ep.Serial = &sp
		next[ep.DeviceID] = ep
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transports.ErrClosed
	}
	t.eps = next
	var stopped []*worker
	if t.started {
		stopped = t.applyLocked()
	}
	t.mu.Unlock()
	t.waitStopped(stopped)
	return nil
}

// applyLocked makes the workers match t.eps. It returns the workers it
// stopped; a replacement worker for the same device waits for its
// predecessor to release the port before opening it.
func (t *Transport) applyLocked() []*worker {
	var stopped []*worker
	for id, w := range t.workers {
		ep, ok := t.eps[id]
		if ok && sameSerial(ep.Serial, &w.sp) {
			continue
		}
		w.cancel()
		stopped = append(stopped, w)
		delete(t.workers, id)
	}
	for id, ep := range t.eps {
		if _, ok := t.workers[id]; ok {
			continue
		}
		var after <-chan struct{}
		for _, old := range stopped {
			if old.id == id {
				after = old.done
			}
		}
		w := newWorker(t, ep, after)
		t.workers[id] = w
		go w.run()
	}
	return stopped
}

func (t *Transport) waitStopped(ws []*worker) {
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
			t.logf(LogWarn, "device %s: the worker of its old port has not stopped after 5s; continuing", w.id)
		}
	}
}

func sameSerial(a, b *transports.SerialPort) bool {
	eq := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Path == b.Path && a.USBVendor == b.USBVendor && a.USBProduct == b.USBProduct &&
		a.USBSerial == b.USBSerial && a.Baud == b.Baud && a.DataBits == b.DataBits &&
		a.Parity == b.Parity && a.StopBits == b.StopBits && eq(a.DTR, b.DTR) && eq(a.RTS, b.RTS)
}

// Send implements transports.Transport: it sends cmd to dev in a link DATA
// frame and returns when the device's link has ACKed it. ErrOffline when
// the device has not said hello on an open port (or the link goes down
// before the ACK), ErrTooLarge when the command does not fit the device's
// frame size, ErrUnknownDevice, ErrClosed, or ctx's error.
func (t *Transport) Send(ctx context.Context, dev string, cmd *wire.Command) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cmd == nil {
		return errors.New("serial: nil command")
	}
	t.mu.Lock()
	closed, started, w := t.closed, t.started, t.workers[dev]
	_, known := t.eps[dev]
	t.mu.Unlock()
	switch {
	case closed:
		return transports.ErrClosed
	case w == nil && known && !started:
		return fmt.Errorf("%w: %s: the transport is not started", transports.ErrOffline, dev)
	case w == nil:
		return fmt.Errorf("%w: %s is not a device of the serial transport", transports.ErrUnknownDevice, dev)
	}
	l, why := w.sendLink()
	if l == nil {
		return fmt.Errorf("%w: %s: %s", transports.ErrOffline, dev, why)
	}
	c := *cmd
	if c.Device == "" {
		c.Device = dev
	}
	err := l.Send(ctx, &wire.Envelope{Kind: wire.KindCommand, Command: &c})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return err
	case errors.Is(err, link.ErrTooLarge):
		return fmt.Errorf("%w: %s: %v", transports.ErrTooLarge, dev, err)
	case errors.Is(err, link.ErrLinkDown):
		return fmt.Errorf("%w: %s: %v", transports.ErrOffline, dev, err)
	case errors.Is(err, link.ErrRejected):
		return fmt.Errorf("serial: %s rejected the command's frame as invalid: %w", dev, err)
	}
	return fmt.Errorf("serial: %s: %w", dev, err)
}

// Close implements transports.Transport: it stops every worker (closing
// the ports) and waits for them.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	started := t.started
	if t.cancel != nil {
		t.cancel()
	}
	ws := make([]*worker, 0, len(t.workers))
	for _, w := range t.workers {
		ws = append(ws, w)
	}
	t.workers = map[string]*worker{}
	t.mu.Unlock()
	for _, w := range ws {
		<-w.done
	}
	if started {
		t.sink.Link(t.o.Name, false, "serial transport closed")
	}
	return nil
}

// PortStatus describes one device's port, for diagnostics and tests.
type PortStatus struct {
	DeviceID  string
	Path      string // device node of the open port ("" when closed)
	Fd        int    // its descriptor (-1 when closed)
	Open      bool
	Online    bool
	Opens     uint64 // successful opens so far
	LastError string // why the port last closed or failed to open
	Hello     *wire.Hello
	// Link sums the link counters over every session of this port.
	Link link.Stats
}

// Status returns the state of dev's port.
func (t *Transport) Status(dev string) (PortStatus, bool) {
	t.mu.Lock()
	w := t.workers[dev]
	t.mu.Unlock()
	if w == nil {
		return PortStatus{}, false
	}
	return w.status(), true
}

func (t *Transport) nextSeq() uint64 { return t.presSeq.Add(1) }

// ---- worker: one port ----

type worker struct {
	t      *Transport
	id     string
	sp     transports.SerialPort
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	after  <-chan struct{} // predecessor's done, or nil

	mu       sync.Mutex
	link     *link.Link
	path     string
	fd       int
	online   bool
	stateOff bool // the device said State offline
	hello    *wire.Hello
	opens    uint64
	lastErr  string
	past     link.Stats // counters of finished sessions
	quiet    bool       // the previous session failed: log opens and closes at debug level

	dropMu     sync.Mutex
	dropAt     time.Time
	dropsSince int
}

func newWorker(t *Transport, ep transports.Endpoint, after <-chan struct{}) *worker {
	ctx, cancel := context.WithCancel(t.ctx)
	return &worker{t: t, id: ep.DeviceID, sp: *ep.Serial, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), after: after, fd: -1, past: link.Stats{Drops: map[string]uint64{}}}
}

func (w *worker) logf(level LogLevel, format string, args ...any) {
	w.t.logf(level, "device "+w.id+": "+format, args...)
}

func (w *worker) portName() string {
	if w.sp.Path != "" {
		return w.sp.Path
	}
	s := "USB " + w.sp.USBVendor + ":" + w.sp.USBProduct
	if w.sp.USBSerial != "" {
		s += " serial " + w.sp.USBSerial
	}
	return s
}

func (w *worker) run() {
	defer close(w.done)
	defer func() {
		if r := recover(); r != nil {
			w.logf(LogError, "panic in the port worker (recovered; the port is not served until the next reload): %v\n%s", r, debug.Stack())
		}
	}()
	if w.after != nil {
		select {
		case <-w.after:
		case <-w.ctx.Done():
			return
		}
	}
	backoff := w.t.o.ReconnectMin
	failures := 0
	lastMsg := ""
	for w.ctx.Err() == nil {
		w.mu.Lock()
		w.quiet = failures > 0
		w.mu.Unlock()
		up, err := w.sessionSafe()
		if w.ctx.Err() != nil {
			return
		}
		if up {
			backoff = w.t.o.ReconnectMin
			failures = 0
			lastMsg = ""
		}
		if err != nil && !up {
			failures++
			msg := err.Error()
			if msg != lastMsg {
				w.logf(LogWarn, "%v; retrying every %v up to %v", err, w.t.o.ReconnectMin, w.t.o.ReconnectMax)
				lastMsg = msg
			} else {
				w.logf(LogDebug, "still failing (%d times): %v", failures, err)
			}
		}
		tm := time.NewTimer(backoff)
		select {
		case <-tm.C:
		case <-w.ctx.Done():
			tm.Stop()
			return
		}
		if !up {
			backoff = min(2*backoff, w.t.o.ReconnectMax)
		}
	}
}

// sessionSafe runs one session; a panic is logged and ends the session.
func (w *worker) sessionSafe() (up bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.logf(LogError, "panic (recovered; the port will be reopened): %v\n%s", r, debug.Stack())
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return w.session()
}

// session opens the port once and runs the link until the port fails. up
// says whether the device said hello during it.
func (w *worker) session() (up bool, err error) {
	o := &w.t.o
	w.t.fault("serial.worker")
	path, err := resolve(&w.sp, o.sysRoot, o.devRoot)
	if err != nil {
		w.setErr(err)
		return false, err
	}
	port, err := OpenPort(path, PortConfig{Baud: w.sp.Baud, DataBits: w.sp.DataBits, Parity: w.sp.Parity,
		StopBits: w.sp.StopBits, DTR: w.sp.DTR, RTS: w.sp.RTS, WriteTimeout: o.WriteTimeout})
	if err != nil {
		w.setErr(err)
		return false, err
	}
	shown := path
	if path != w.portName() {
		shown = w.portName() + " → " + path
	}
	w.mu.Lock()
	level := LogInfo
	if w.quiet {
		level = LogDebug
	}
	w.mu.Unlock()
	w.logf(level, "opened %s (fd %d, %d baud); waiting for the device's hello", shown, port.Fd(), port.Baud())
	for _, warn := range port.Warnings() {
		w.logf(LogDebug, "%s: %s", path, warn)
	}
	retries := o.Retries
	if retries == 0 {
		retries = -1 // link: 0 means its default, negative none
	}
	var sawUp atomic.Bool
	var l *link.Link
	l = link.New(port, link.Options{
		Role:         link.Bridge,
		AckTimeout:   o.AckTimeout,
		Retries:      retries,
		Heartbeat:    o.Heartbeat,
		Silence:      o.Silence,
		WriteTimeout: 2 * o.WriteTimeout, // the port's own timeout fires first
		MaxFrame:     o.MaxFrame,
		Baud:         port.Baud(),
		Logf:         func(f string, a ...any) { w.logf(LogWarn, f, a...) },
		Fault:        w.linkFault(),
		OnEnvelope:   w.onEnvelope,
		OnDrop:       w.onDrop,
		OnUp: func(h *wire.Hello) {
			if w.onUp(l, h, path) {
				sawUp.Store(true)
			}
		},
		OnDown: func(reason error) { w.onDown(l, reason) },
	})
	w.mu.Lock()
	w.link, w.path, w.fd = l, path, port.Fd()
	w.opens++
	w.mu.Unlock()

	runErr := l.Run(w.ctx)

	st := l.Stats()
	w.mu.Lock()
	wasOnline := w.online
	w.link, w.path, w.fd, w.online = nil, "", -1, false
	w.past = addStats(w.past, st)
	if w.ctx.Err() == nil {
		w.lastErr = "port closed: " + runErr.Error()
	}
	w.mu.Unlock()
	if w.ctx.Err() != nil {
		return sawUp.Load(), nil
	}
	reason := "port closed: " + describe(runErr)
	if wasOnline || sawUp.Load() {
		level = LogInfo
	}
	w.logf(level, "%s: %s", path, reason)
	if wasOnline {
		w.t.sink.Presence(w.id, transports.Presence{Online: false, Seq: w.t.nextSeq(), Reason: reason, At: time.Now()})
	}
	return sawUp.Load(), fmt.Errorf("%s: %s", path, reason)
}

func describe(err error) string {
	switch {
	case err == nil:
		return "closed"
	case isGone(err):
		return "device gone (unplugged?): " + err.Error()
	}
	return err.Error()
}

func (w *worker) setErr(err error) {
	w.mu.Lock()
	w.lastErr = err.Error()
	w.mu.Unlock()
}

// sendLink returns the link to send on, or why there is none.
func (w *worker) sendLink() (*link.Link, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.link == nil && w.lastErr != "":
		return nil, "port not open: " + w.lastErr
	case w.link == nil:
		return nil, "port not open yet"
	case !w.online:
		return nil, "no hello from the device on " + w.path + " yet"
	case w.stateOff:
		return nil, "the device reported itself offline"
	}
	return w.link, ""
}

func (w *worker) status() PortStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := PortStatus{DeviceID: w.id, Path: w.path, Fd: w.fd, Open: w.link != nil, Online: w.online,
		Opens: w.opens, LastError: w.lastErr, Hello: w.hello, Link: w.past}
	if w.link != nil {
		s.Link = addStats(w.past, w.link.Stats())
	}
	return s
}

// onUp: the device said hello. It must be the device devices.yaml puts on
// this port.
func (w *worker) onUp(l *link.Link, h *wire.Hello, path string) bool {
	if h.Device != w.id {
		err := fmt.Errorf("hello on %s is from device %q, but devices.yaml puts device %q on this port; ignoring it until the right device says hello",
			path, h.Device, w.id)
		w.logf(LogWarn, "%v", err)
		w.t.sink.Dropped(w.id, err)
		w.mu.Lock()
		if w.link == l {
			w.online = false
		}
		w.mu.Unlock()
		return false
	}
	w.mu.Lock()
	if w.link != l {
		w.mu.Unlock()
		return false
	}
	w.online, w.stateOff, w.hello = true, false, h
	w.mu.Unlock()
	w.logf(LogInfo, "online on %s (firmware %q, profile %q %s, boot %d)", path, h.Firmware, h.Profile, h.ProfileVersion, h.Boot)
	w.t.sink.Presence(w.id, transports.Presence{Online: true, Seq: w.t.nextSeq(), Boot: h.Boot,
		Firmware: h.Firmware, Profile: h.Profile, ProfileVersion: h.ProfileVersion,
		Reason: "hello on " + path, At: time.Now()})
	return true
}

func (w *worker) onDown(l *link.Link, reason error) {
	if errors.Is(reason, link.ErrStopped) {
		return // Run is returning: the session reports "port closed: ..." (or nothing, when closing)
	}
	w.mu.Lock()
	was := w.online && w.link == l
	if w.link == l {
		w.online = false
	}
	w.mu.Unlock()
	if !was {
		return
	}
	r := "link down: " + reason.Error()
	w.logf(LogInfo, "offline (%s)", r)
	w.t.sink.Presence(w.id, transports.Presence{Online: false, Seq: w.t.nextSeq(), Reason: r, At: time.Now()})
}

// linkFault passes the link's fault points on as serial.reader and
// serial.writer (nil without Options.Fault).
func (w *worker) linkFault() func(string) {
	if w.t.o.Fault == nil {
		return nil
	}
	return func(p string) { w.t.fault("serial." + p) }
}

// onEnvelope attributes what the device sent to the endpoint's device id.
func (w *worker) onEnvelope(env *wire.Envelope) {
	w.t.fault("serial.callback")
	w.mu.Lock()
	online := w.online
	w.mu.Unlock()
	if !online {
		w.t.sink.Dropped(w.id, fmt.Errorf("%s from a device that has not identified itself with the right hello", env.Kind))
		return
	}
	if claimed := env.DeviceID(); claimed != "" && claimed != w.id {
		w.t.sink.Dropped(w.id, fmt.Errorf("%s claims to be from device %q on the port of device %q; dropped", env.Kind, claimed, w.id))
		return
	}
	switch env.Kind {
	case wire.KindReply:
		r := *env.Reply
		r.Device = w.id
		w.t.sink.Reply(w.id, &r)
	case wire.KindTelemetry:
		tm := *env.Telemetry
		tm.Device = w.id
		w.t.sink.Telemetry(w.id, &tm)
	case wire.KindState:
		s := env.State
		w.mu.Lock()
		w.stateOff = !s.Online
		w.mu.Unlock()
		w.t.sink.Presence(w.id, transports.Presence{Online: s.Online, Seq: w.t.nextSeq(), Firmware: s.Firmware,
			Profile: s.Profile, ProfileVersion: s.ProfileVersion, Reason: "state from the device", At: time.Now()})
	default:
		w.t.sink.Dropped(w.id, fmt.Errorf("a device does not send %s envelopes; dropped", env.Kind))
	}
}

// onDrop: frame-level trouble (line noise, torn frames, bad CRC). Counted in
// the link stats; reported to the Sink at most once a second per port.
func (w *worker) onDrop(reason error) {
	w.dropMu.Lock()
	w.dropsSince++
	now := time.Now()
	if now.Sub(w.dropAt) < time.Second {
		w.dropMu.Unlock()
		return
	}
	n := w.dropsSince
	w.dropsSince = 0
	w.dropAt = now
	w.dropMu.Unlock()
	w.logf(LogDebug, "%v", reason)
	msg := reason.Error()
	if n > 1 {
		msg = fmt.Sprintf("%d frames dropped since the last report, the latest: %s", n, msg)
	}
	w.t.sink.Dropped(w.id, errors.New(msg))
}

func addStats(a, b link.Stats) link.Stats {
	a.BytesIn += b.BytesIn
	a.BytesOut += b.BytesOut
	a.FramesIn += b.FramesIn
	a.FramesOut += b.FramesOut
	a.DataIn += b.DataIn
	a.DataOut += b.DataOut
	a.Delivered += b.Delivered
	a.Sent += b.Sent
	a.AcksIn += b.AcksIn
	a.AcksOut += b.AcksOut
	a.NacksIn += b.NacksIn
	a.NacksOut += b.NacksOut
	a.ResetsIn += b.ResetsIn
	a.ResetsOut += b.ResetsOut
	a.HeartbeatsIn += b.HeartbeatsIn
	a.HeartbeatsOut += b.HeartbeatsOut
	a.Retransmits += b.Retransmits
	a.Duplicates += b.Duplicates
	a.Ups += b.Ups
	a.Downs += b.Downs
	d := make(map[string]uint64, len(a.Drops)+len(b.Drops))
	for k, v := range a.Drops {
		d[k] += v
	}
	for k, v := range b.Drops {
		d[k] += v
	}
	a.Drops = d
	return a
}

// String for logs.
func (s PortStatus) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: open=%v online=%v path=%s fd=%d opens=%d", s.DeviceID, s.Open, s.Online, s.Path, s.Fd, s.Opens)
	if s.LastError != "" {
		fmt.Fprintf(&b, " last error: %s", s.LastError)
	}
	return b.String()
}
