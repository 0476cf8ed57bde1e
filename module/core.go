package module

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/devices"
	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt/rttrace"
)

// cmdState is where a command is in its lifecycle.
type cmdState uint8

const (
	stQueued    cmdState = iota + 1 // waiting: device offline, window full or link down
	stSending                       // handed to the device's sender goroutine
	stSent                          // the link took it (PUBACK, serial ack)
	stDelivered                     // the device acknowledged it (accepted)
	stDone                          // terminal
	stFailed                        // terminal
	stExpired                       // terminal
	stRejected                      // terminal (cancelled, device removed)
)

func (s cmdState) String() string {
	return [...]string{"?", "queued", "sending", "sent", "delivered", "done", "failed", "expired", "rejected"}[s]
}

func (s cmdState) terminal() bool { return s >= stDone }

// command is one accepted command.
type command struct {
	id       uint64 // wire id
	key      string // idempotency key: sender/message id
	dev      *devState
	req      Params // the person's message (cloned): To = device address, From = user
	inv      *schema.Invocation
	text     string // what the person typed (for logs and group summaries)
	machine  bool   // answer in the machine form (the command came as JSON)
	state    cmdState
	created  time.Time
	deadline time.Time
	ttl      time.Duration
	sentAt   time.Time
	tried    bool         // handed to the link at least once: the device may have it
	boot     uint64       // the device's boot counter when first handed to the link (0 unknown)
	stop     *atomic.Bool // set when the command ends: the sender skips it
	group    *groupRun
	wire     *wire.Command
	hidx     int // index in the timer heap
}

// devState is the core's view of one device.
type devState struct {
	cfg       *devices.Device
	tr        transports.Transport
	online    bool
	presSeq   uint64
	presKnown bool
	boot      uint64 // last boot counter the device reported (0 unknown)
	// unconfirmed: the transport's link went down since the device's state
	// was last seen, so the device may have restarted unseen; its commands
	// wait until its state is seen again (onPresence)
	unconfirmed bool
	lastSeen    time.Time
	reason      string
	firmware    string
	latest      map[string]any
	latestAt    time.Time
	queue       []*command
	inflight    map[uint64]*command
	sendq       chan sendJob
	retryAt     time.Time
	watchers    map[string]*watcher
	bucket      bucket
	removed     bool
}

type sendJob struct {
	cmdID    uint64
	stop     *atomic.Bool
	devID    string
	cmd      *wire.Command
	deadline time.Time
	tr       transports.Transport
}

// groupRun aggregates one group command.
type groupRun struct {
	name    string
	req     Params
	verb    string
	total   int
	pending int
	results []string // "robot2: offline"
	done    int
}

type pendingConfirm struct {
	dev      *devState
	req      Params
	inv      *schema.Invocation
	text     string
	machine  bool
	deadline time.Time
}

// core is all mutable state; only the core goroutine touches it.
type core struct {
	m        *Module
	devs     *devices.Config
	byAddr   map[string]*devState
	byID     map[string]*devState
	cmds     map[uint64]*command
	timers   cmdHeap
	idem     map[string]time.Time
	idemFIFO []idemEntry
	confirms map[string]*pendingConfirm // user + "\x00" + device address
	online   map[string]bool            // users online
	users    map[string]*bucket
	sent     map[uint64]sentMessage
	admins   map[string]bool
	drops    map[string]*dropLog
}

type idemEntry struct {
	key string
	exp time.Time
}

type sentMessage struct {
	to   string
	kind string
}

func newCore(m *Module, devs *devices.Config) *core {
	c := &core{
		m:        m,
		cmds:     map[uint64]*command{},
		idem:     map[string]time.Time{},
		confirms: map[string]*pendingConfirm{},
		online:   map[string]bool{},
		users:    map[string]*bucket{},
		sent:     map[uint64]sentMessage{},
		admins:   map[string]bool{},
		drops:    map[string]*dropLog{},
	}
	for _, a := range m.cfg.Admins {
		c.admins[a] = true
	}
	c.apply(devs)
	return c
}

// apply installs a devices configuration, keeping the state of devices that
// stay (same address, id and transport).
func (c *core) apply(devs *devices.Config) {
	old := c.byAddr
	c.devs = devs
	c.byAddr = make(map[string]*devState, len(devs.Devices))
	c.byID = make(map[string]*devState, len(devs.Devices))
	for _, d := range devs.Devices {
		st, ok := old[d.Address]
		if ok && st.cfg.ID == d.ID && st.cfg.Transport == d.Transport {
			st.cfg = d
		} else {
			st = &devState{cfg: d, inflight: map[uint64]*command{}, watchers: map[string]*watcher{}}
		}
		st.tr = c.m.transports[d.Transport]
		c.byAddr[d.Address] = st
		c.byID[d.ID] = st
	}
	for addr, st := range old {
		if cur, ok := c.byAddr[addr]; ok && cur == st {
			continue
		}
		st.removed = true
		for _, cmd := range c.openCommands(st) {
			c.finish(cmd, stRejected, fmt.Sprintf("%s was removed from the configuration; command cancelled", addr), nil)
		}
	}
	// standing subscriptions from the file replace the previous ones, and a
	// watch ends when the new lists no longer make its user a viewer
	for _, st := range c.byAddr {
		for u, w := range st.watchers {
			if w.standing {
				delete(st.watchers, u)
			} else if c.role(st, u) < devices.RoleViewer {
				delete(st.watchers, u)
				c.m.logf(LevelInfo, "iot: %s may no longer view %s; their watch ended", u, st.cfg.Address)
			}
		}
	}
	for _, s := range devs.Subscriptions {
		st := c.byAddr[s.Device.Address]
		if st == nil {
			continue
		}
		st.watchers[s.User] = &watcher{user: s.User, cond: s.Condition, standing: true}
	}
	if c.m.transports != nil {
		c.watchersChanged()
	}
}

func (c *core) openCommands(st *devState) []*command {
	var out []*command
	out = append(out, st.queue...)
	for _, cmd := range st.inflight {
		out = append(out, cmd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (c *core) handle(ev event) {
	c.m.fault("worker")
	switch ev.kind {
	case evChat:
		if rttrace.On() {
			rttrace.StampAt(rttrace.BrAccept, ev.p.ID, rttrace.Mono(ev.at))
			rttrace.Stamp(rttrace.BrCoreIn, ev.p.ID)
		}
		c.onChat(&ev.p, string(ev.body), ev.at)
	case evTooLong:
		c.m.metrics.commands.WithLabelValues("none", "rejected").Inc()
		c.say(&ev.p, fmt.Sprintf("Message too long: at most %d bytes are read.", c.m.cfg.MaxMessage), 0)
	case evStatus:
		c.onStatus(&ev.p)
	case evLogin:
		c.onLogin(ev.p.From, ev.online, ev.at)
	case evReply:
		c.onReply(ev.dev, ev.reply, ev.at)
	case evTelemetry:
		c.onTelemetry(ev.dev, ev.telemetry, ev.at)
	case evPresence:
		c.onPresence(ev.dev, ev.presence, ev.at)
	case evDropped:
		c.onDropped(ev)
	case evLink:
		c.onLink(ev.transport, ev.online, ev.detail)
	case evSendResult:
		c.onSendResult(ev.cmdID, ev.err, ev.at)
	case evReload:
		c.onReload(ev)
	case evShutdown:
		for _, st := range c.byAddr {
			for _, cmd := range c.openCommands(st) {
				c.finish(cmd, stFailed, "the bridge is shutting down; command not completed", nil)
			}
		}
	}
}

// onDropped logs bad device data at most once per device per 10 s, with the
// number of drops in between (the metric counts each one).
func (c *core) onDropped(ev event) {
	key := ev.transport + "/" + ev.dev
	now := c.m.now()
	d := c.drops[key]
	if d == nil {
		if len(c.drops) > 10000 {
			c.drops = map[string]*dropLog{}
		}
		d = &dropLog{}
		c.drops[key] = d
	}
	d.n++
	if now.Sub(d.last) < 10*time.Second {
		return
	}
	more := ""
	if d.n > 1 {
		more = fmt.Sprintf(" (%d dropped since the last report)", d.n)
	}
	c.m.logf(LevelWarn, "iot: dropped data from device %q via %s: %v%s", ev.dev, ev.transport, ev.err, more)
	d.last, d.n = now, 0
}

type dropLog struct {
	last time.Time
	n    int
}

func (c *core) onStatus(p *Params) {
	s, ok := c.sent[p.ID]
	name := statusName(p.Status)
	c.m.metrics.messageStatus.WithLabelValues(statusLabel(p.Status)).Inc()
	if c.m.cfg.LogLevel >= LevelDebug { // per message: no formatting or boxing when off
		if !ok {
			c.m.logf(LevelDebug, "iot: status %s for message %d (not tracked)", name, p.ID)
		} else {
			c.m.logf(LevelDebug, "iot: message %d (%s) to %s: %s", p.ID, s.kind, s.to, name)
		}
	}
	if !ok {
		return
	}
	// The module asks for delivery receipts only (never READRECEIPT), so
	// nothing follows DELIVERED: forget the message then, or the map would
	// only shrink at its bound.
	if p.Status == StatusDelivered || p.Status == StatusRead || p.Status >= StatusFail {
		delete(c.sent, p.ID)
	}
}

// say answers p with text (see Module.sendText) and tracks the message.
func (c *core) say(p *Params, text string, extra uint64) {
	kind := "reply"
	if extra&FlagTransient != 0 {
		kind = "progress"
	}
	c.track(c.m.sendText(p, text, extra), p.From, kind)
}

// track remembers a message the module sent, for on_message_status.
func (c *core) track(id uint64, to, kind string) {
	if id == 0 {
		return
	}
	if len(c.sent) >= 100000 {
		for k := range c.sent { // bounded: forget an arbitrary old one
			delete(c.sent, k)
			break
		}
	}
	c.sent[id] = sentMessage{to: to, kind: kind}
}

func (c *core) onLogin(user string, online bool, now time.Time) {
	if online {
		c.online[user] = true
	} else {
		delete(c.online, user)
	}
	c.m.metrics.usersOnline.Set(float64(len(c.online)))
	c.m.logf(LevelDebug, "iot: %s is %s", user, onlineWord(online))
	if online {
		c.flushWatchersOf(user, now)
	}
}

func onlineWord(b bool) string {
	if b {
		return "online"
	}
	return "offline"
}

// ---- commands ---------------------------------------------------------------

// ttlFor is the command's time to live: the message's own expiry (bounded by
// max_ttl) when it is set and shorter than the device's default.
func (c *core) ttlFor(st *devState, p *Params) time.Duration {
	ttl := st.cfg.CommandTTL
	if ttl <= 0 {
		ttl = c.m.cfg.CommandTTL
	}
	if p.Expiry > 0 {
		e := time.Duration(p.Expiry) * time.Second
		if e > c.m.cfg.MaxTTL {
			e = c.m.cfg.MaxTTL
		}
		if e < ttl {
			ttl = e
		}
	}
	return ttl
}

func (c *core) queueSize(st *devState) int {
	if st.cfg.QueueSize > 0 {
		return st.cfg.QueueSize
	}
	return c.m.cfg.QueueSize
}

// submit accepts a command for st. It returns false (and answers the person)
// when the device's queue is full.
func (c *core) submit(st *devState, req *Params, inv *schema.Invocation, text string, machine bool, g *groupRun, now time.Time) bool {
	waiting := len(st.queue)
	if waiting >= c.queueSize(st) {
		msg := fmt.Sprintf("%s has %d commands waiting, the most it keeps; try again later.", st.cfg.Address, waiting)
		c.m.metrics.commands.WithLabelValues(st.cfg.Profile.Name, "rejected").Inc()
		if g != nil {
			c.groupResult(g, st.cfg.Address+": queue full")
		} else {
			c.answer(req, st.cfg.Address, msg, machine, "rejected", 0, nil)
		}
		return false
	}
	ttl := c.ttlFor(st, req)
	cmd := &command{
		id:       c.m.nextCmdID.Add(1),
		key:      req.From + "/" + fmt.Sprint(req.ID),
		dev:      st,
		req:      *req,
		inv:      inv,
		text:     text,
		machine:  machine,
		state:    stQueued,
		created:  now,
		deadline: now.Add(ttl),
		ttl:      ttl,
		group:    g,
		stop:     new(atomic.Bool),
	}
	if g != nil {
		cmd.key += "/" + st.cfg.Address
	}
	cmd.wire = &wire.Command{
		ID:       cmd.id,
		Device:   st.cfg.ID,
		Verb:     inv.Verb,
		Args:     inv.Args,
		Deadline: cmd.deadline.UnixMilli(),
		IdemKey:  cmd.key,
	}
	c.cmds[cmd.id] = cmd
	rttrace.StampAt(rttrace.BrMap, cmd.id, int64(req.ID))
	heap.Push(&c.timers, cmd)
	st.queue = append(st.queue, cmd)
	c.m.metrics.commandsAccepted.WithLabelValues(st.cfg.Profile.Name).Inc()
	if c.m.cfg.LogLevel >= LevelInfo { // per command: no formatting or boxing when off
		c.m.logf(LevelInfo, "iot: command %d %q from %s to %s accepted (ttl %s, key %s)", cmd.id, inv.Verb, req.From, st.cfg.Address, shortDuration(ttl), cmd.key)
	}
	if !st.online && g == nil {
		c.progress(cmd, fmt.Sprintf("%s is offline; %s is queued and runs when it is back (expires in %s).", st.cfg.Address, inv.Verb, humanDuration(ttl)), true)
	}
	c.pump(st, now)
	return true
}

// window is how many commands may be in flight at once (0 = no limit).
func window(st *devState) int { return st.cfg.MaxInFlight }

// pump hands queued commands to the device's sender while the device is
// online and its window has room.
func (c *core) pump(st *devState, now time.Time) {
	if st.removed || !st.online || st.unconfirmed || st.tr == nil || now.Before(st.retryAt) {
		return
	}
	for len(st.queue) > 0 {
		if w := window(st); w > 0 && len(st.inflight) >= w {
			return
		}
		cmd := st.queue[0]
		if !c.dispatch(st, cmd) {
			return
		}
		st.queue = st.queue[1:]
	}
}

// dispatch gives cmd to the device's sender goroutine; false if its queue is full.
func (c *core) dispatch(st *devState, cmd *command) bool {
	if st.sendq == nil {
		st.sendq = make(chan sendJob, c.queueSize(st)+16)
		q := st.sendq
		c.m.goSafe("sender", func() { c.m.sender(q) })
	}
	rttrace.Stamp(rttrace.BrDispatch, cmd.id)
	if !cmd.tried {
		// the boot it is meant for, set before the sender can see it: a
		// device in another boot does not run it (docs/protocol.md §4)
		cmd.wire.Boot = st.boot
	}
	job := sendJob{cmdID: cmd.id, stop: cmd.stop, devID: st.cfg.ID, cmd: cmd.wire, deadline: cmd.deadline, tr: st.tr}
	select {
	case st.sendq <- job:
	default:
		return false
	}
	if !cmd.tried {
		cmd.tried, cmd.boot = true, st.boot
	}
	cmd.state = stSending
	st.inflight[cmd.id] = cmd
	c.m.metrics.inflight.Inc()
	return true
}

// sender is a device's sender goroutine: it calls Transport.Send in order so
// the core never waits on the network. The hop costs little: the core parks
// right after a dispatch and its thread runs the sender next (rttrace: about
// 5 µs p50 at 200 commands/s). The core may not publish itself: paho's
// Publish hands the packet over unbuffered channels to paho's writer
// goroutine and blocks, up to mqtt_publish_timeout, while that writer is
// stuck on a full socket (a frozen broker). Every job it takes gets a send
// result, a failure if the send panicked (so that its command still ends),
// except jobs of commands that have ended meanwhile, which it skips.
func (m *Module) sender(q chan sendJob) {
	for {
		select {
		case <-m.ctx.Done():
			return
		case job := <-q:
			if job.stop.Load() {
				continue
			}
			rttrace.Stamp(rttrace.BrSender, job.cmdID)
			err := errSendPanicked
			m.safely("sender", func() {
				m.fault("sender")
				ctx, cancel := context.WithDeadline(m.ctx, job.deadline)
				defer cancel()
				err = job.tr.Send(ctx, job.devID, job.cmd)
			})
			m.postWait(event{kind: evSendResult, cmdID: job.cmdID, err: err, at: m.now()})
		}
	}
}

var errSendPanicked = errors.New("internal error (recovered panic while sending)")

func (c *core) onSendResult(id uint64, err error, now time.Time) {
	cmd, ok := c.cmds[id]
	if !ok || cmd.state.terminal() {
		return
	}
	st := cmd.dev
	if cmd.boot != 0 && st.boot != cmd.boot {
		// the device restarted since the command was first handed to the
		// link: it may have run it before it lost its state
		c.finish(cmd, stFailed, lostText(st, cmd), nil)
		return
	}
	switch {
	case err == nil:
		if cmd.state == stSending {
			cmd.state = stSent
			cmd.sentAt = now
			c.m.metrics.latency.WithLabelValues("sent").Observe(now.Sub(cmd.created).Seconds())
			c.progress(cmd, fmt.Sprintf("%s: sent to %s", cmd.inv.Verb, st.cfg.Address), false)
		}
	case errors.Is(err, transports.ErrOffline), errors.Is(err, context.Canceled):
		// back to the front of the queue; retried when the link or device is back
		delete(st.inflight, id)
		c.m.metrics.inflight.Dec()
		cmd.state = stQueued
		st.queue = append([]*command{cmd}, st.queue...)
		st.retryAt = now.Add(time.Second)
		c.m.logf(LevelDebug, "iot: command %d to %s not sent (%v); queued again", id, st.cfg.Address, err)
	case errors.Is(err, context.DeadlineExceeded):
		c.expire(cmd)
	default:
		c.finish(cmd, stFailed, fmt.Sprintf("%s could not be sent to %s: %v", cmd.inv.Verb, st.cfg.Address, err), nil)
	}
}

func (c *core) onReply(devID string, r *wire.Reply, now time.Time) {
	cmd, ok := c.cmds[r.ID]
	if !ok {
		c.m.metrics.strayReplies.Inc()
		c.m.logf(LevelDebug, "iot: reply for unknown or finished command %d from %s ignored", r.ID, devID)
		return
	}
	if cmd.dev.cfg.ID != devID {
		c.m.metrics.spoofed.Inc()
		c.m.logf(LevelWarn, "iot: device %q answered command %d of %q; dropped", devID, r.ID, cmd.dev.cfg.ID)
		return
	}
	rttrace.Stamp(rttrace.BrCoreReply, r.ID)
	st := cmd.dev
	st.lastSeen = now
	switch r.Outcome {
	case wire.OutcomeAccepted:
		if cmd.state == stSending || cmd.state == stSent || cmd.state == stQueued {
			if cmd.state == stQueued { // answered a resend before its send result
				c.removeQueued(st, cmd)
				st.inflight[cmd.id] = cmd
				c.m.metrics.inflight.Inc()
			}
			cmd.state = stDelivered
			c.m.metrics.latency.WithLabelValues("delivered").Observe(now.Sub(cmd.created).Seconds())
			c.progress(cmd, fmt.Sprintf("%s: %s accepted it", cmd.inv.Verb, st.cfg.Address), false)
		}
	case wire.OutcomeDone:
		c.m.metrics.latency.WithLabelValues("done").Observe(now.Sub(cmd.created).Seconds())
		c.finish(cmd, stDone, "", r)
	case wire.OutcomeFailed:
		text := ""
		if wire.ReplyCode(r.Code) == wire.ReplyRestarted {
			// the device is in another boot than the command was meant
			// for: not run now, but the earlier boot may have run it
			text = lostText(st, cmd)
		}
		c.finish(cmd, stFailed, text, r)
	}
}

func (c *core) removeQueued(st *devState, cmd *command) {
	for i, q := range st.queue {
		if q == cmd {
			st.queue = append(st.queue[:i], st.queue[i+1:]...)
			return
		}
	}
}

func (c *core) expire(cmd *command) {
	st := cmd.dev
	var text string
	switch {
	case cmd.state == stQueued && !st.online:
		text = fmt.Sprintf("%s is offline; %s expired after %s.", st.cfg.Address, cmd.inv.Verb, humanDuration(cmd.ttl))
	case cmd.state == stQueued && st.unconfirmed:
		text = fmt.Sprintf("%s has not been heard from since the bridge's %s link came back; %s expired after %s.", st.cfg.Address, st.cfg.Transport, cmd.inv.Verb, humanDuration(cmd.ttl))
	case cmd.state == stQueued:
		text = fmt.Sprintf("%s expired after %s waiting for %s.", cmd.inv.Verb, humanDuration(cmd.ttl), st.cfg.Address)
	default:
		text = fmt.Sprintf("no answer from %s within %s; %s expired.", st.cfg.Address, humanDuration(cmd.ttl), cmd.inv.Verb)
	}
	c.finish(cmd, stExpired, text, nil)
}

// finish moves cmd to a terminal state exactly once and answers the person.
func (c *core) finish(cmd *command, state cmdState, text string, r *wire.Reply) {
	if cmd.state.terminal() {
		return
	}
	st := cmd.dev
	if _, ok := st.inflight[cmd.id]; ok {
		delete(st.inflight, cmd.id)
		c.m.metrics.inflight.Dec()
	} else {
		c.removeQueued(st, cmd)
	}
	cmd.state = state
	cmd.stop.Store(true)
	delete(c.cmds, cmd.id)
	if cmd.hidx >= 0 && cmd.hidx < len(c.timers) && c.timers[cmd.hidx] == cmd {
		heap.Remove(&c.timers, cmd.hidx)
	}
	outcome := state.String()
	c.m.metrics.commands.WithLabelValues(st.cfg.Profile.Name, outcome).Inc()

	var code int64
	var result map[string]any
	if r != nil {
		code = r.Code
		result = r.Result
		if text == "" {
			text = replyText(st, cmd, r)
		}
	}
	if c.m.cfg.LogLevel >= LevelInfo {
		c.m.logf(LevelInfo, "iot: command %d %q to %s: %s %s", cmd.id, cmd.inv.Verb, st.cfg.Address, outcome, text)
	}
	if cmd.group != nil {
		short := outcome
		if state == stExpired && !st.online {
			short = "offline"
		} else if state == stFailed && r != nil && r.Text != "" {
			short = "failed (" + r.Text + ")"
		}
		c.groupResult(cmd.group, st.cfg.Address+": "+short)
	} else {
		rttrace.Stamp(rttrace.BrAnswer, cmd.id)
		c.answer(&cmd.req, st.cfg.Address, text, cmd.machine, outcome, code, result)
	}
	c.pump(st, c.m.now())
}

func replyText(st *devState, cmd *command, r *wire.Reply) string {
	switch r.Outcome {
	case wire.OutcomeDone:
		s := cmd.inv.Verb + ": done"
		if len(r.Result) > 0 {
			s += " — " + schema.RenderValues(r.Result)
		}
		if r.Text != "" {
			s += " (" + r.Text + ")"
		}
		return s
	default:
		code := wire.ReplyCode(r.Code)
		if code == wire.ReplyOK {
			code = wire.ReplyInternal // a failure without a code
		}
		s := fmt.Sprintf("%s failed on %s: %s", cmd.inv.Verb, st.cfg.Address, code)
		if r.Text != "" {
			s += ": " + r.Text
		}
		return s
	}
}

// answer sends the terminal reply: text for people, or the machine form
// (docs/chat.md) when the command came as JSON.
func (c *core) answer(req *Params, from, text string, machine bool, outcome string, code int64, result map[string]any) {
	out := Params{AID: req.AID, RefID: req.ID, Flags: FlagDeliveryReceipt, To: req.From, From: from}
	body := text
	if machine {
		out.Type = TypeResult
		b, err := schema.MachineJSON(map[string]any{"id": req.ID, "state": outcome, "code": code, "text": text, "result": result})
		if err == nil {
			body = string(b)
		}
	}
	id := c.m.send(out, body)
	c.track(id, req.From, "result")
}

// progress sends an intermediate state as a TRANSIENT message (always when
// always is set, else only when progress_updates is on).
func (c *core) progress(cmd *command, text string, always bool) {
	if !always && !c.m.cfg.ProgressUpdates {
		return
	}
	if cmd.group != nil {
		return
	}
	out := Params{AID: cmd.req.AID, RefID: cmd.req.ID, Flags: FlagTransient, To: cmd.req.From, From: cmd.dev.cfg.Address}
	body := text
	if cmd.machine {
		out.Type = TypeProgress
		if b, err := schema.MachineJSON(map[string]any{"id": cmd.req.ID, "state": cmd.state.String(), "text": text}); err == nil {
			body = string(b)
		}
	}
	c.m.send(out, body)
}

func (c *core) groupResult(g *groupRun, line string) {
	g.pending--
	if strings.HasSuffix(line, ": done") {
		g.done++
	} else {
		g.results = append(g.results, line)
	}
	if g.pending > 0 {
		return
	}
	text := fmt.Sprintf("%s %s: %d/%d done", g.name, g.verb, g.done, g.total)
	if len(g.results) > 0 {
		text += "; " + strings.Join(g.results, "; ")
	}
	out := Params{AID: g.req.AID, RefID: g.req.ID, Flags: FlagDeliveryReceipt, To: g.req.From, From: c.m.cfg.Address}
	id := c.m.send(out, text)
	c.track(id, g.req.From, "group result")
}

// ---- presence and links -----------------------------------------------------

func (c *core) onPresence(devID string, p transports.Presence, now time.Time) {
	st := c.byID[devID]
	if st == nil {
		c.m.logf(LevelDebug, "iot: presence of unknown device %q ignored", devID)
		return
	}
	if st.presKnown && p.Seq == st.presSeq && st.unconfirmed {
		// the same state seen again after the link came back (a retained
		// state on resubscribing): the device has not restarted meanwhile
		st.unconfirmed = false
		st.lastSeen = now
		c.m.logf(LevelDebug, "iot: %s confirmed %s after the link came back", st.cfg.Address, onlineWord(st.online))
		if st.online {
			c.resume(st, now)
		}
		return
	}
	if st.presKnown && p.Seq <= st.presSeq {
		if p.Seq < st.presSeq {
			c.m.metrics.stalePresence.Inc()
		}
		return // late or repeated event: cannot flip presence
	}
	st.presKnown = true
	st.unconfirmed = false
	st.presSeq = p.Seq
	if p.Online && p.Boot != 0 {
		old := st.boot
		st.boot = p.Boot
		if old != 0 && old != p.Boot {
			c.restarted(st, old)
		}
	}
	if p.Firmware != "" {
		st.firmware = p.Firmware
	}
	was := st.online
	st.online = p.Online
	st.reason = p.Reason
	st.lastSeen = now
	if was != p.Online {
		if p.Online {
			c.m.metrics.devicesOnline.Inc()
		} else {
			c.m.metrics.devicesOnline.Dec()
		}
		c.m.logf(LevelInfo, "iot: %s (%s) is %s (%s)", st.cfg.Address, devID, onlineWord(p.Online), p.Reason)
		c.notifyPresence(st, now)
	}
	if p.Online {
		// back, a new connection, or seen again after the link came back
		c.resume(st, now)
	}
}

// restarted: the device came back with another boot counter, so it lost its
// state, its idempotency cache included (docs/protocol.md §8.1). A command
// handed to the link before may have run, or not: sending it again could run
// it twice, so it ends failed, "may or may not have run" (at most once).
// Commands never handed to the link are sent as usual.
func (c *core) restarted(st *devState, oldBoot uint64) {
	n := 0
	for _, cmd := range c.openCommands(st) {
		if cmd.tried && cmd.boot != st.boot {
			c.finish(cmd, stFailed, lostText(st, cmd), nil)
			n++
		}
	}
	c.m.logf(LevelInfo, "iot: %s restarted (boot %d, was %d); %d unfinished commands reported lost", st.cfg.Address, st.boot, oldBoot, n)
}

func lostText(st *devState, cmd *command) string {
	return fmt.Sprintf("%s restarted while %s was pending; it may or may not have run. Send it again if it is still needed.", st.cfg.Address, cmd.inv.Verb)
}

// resume sends a device's commands after it or its link came back: first
// again those it may have lost with their replies, then its queue.
func (c *core) resume(st *devState, now time.Time) {
	st.retryAt = time.Time{}
	c.resend(st, now)
	c.pump(st, now)
}

// resend gives the device again every command it may have lost (sent or
// delivered but not finished); its idempotency key keeps it from running twice.
func (c *core) resend(st *devState, now time.Time) {
	var again []*command
	for id, cmd := range st.inflight {
		if cmd.state == stSent || cmd.state == stDelivered {
			delete(st.inflight, id)
			c.m.metrics.inflight.Dec()
			cmd.state = stQueued
			again = append(again, cmd)
		}
	}
	if len(again) == 0 {
		return
	}
	sort.Slice(again, func(i, j int) bool { return again[i].id < again[j].id })
	st.queue = append(again, st.queue...)
	c.m.metrics.resends.Add(float64(len(again)))
	c.m.logf(LevelInfo, "iot: resending %d unfinished commands to %s", len(again), st.cfg.Address)
	c.pump(st, now)
}

func (c *core) onLink(transport string, up bool, detail string) {
	if up {
		c.m.logf(LevelInfo, "iot: %s link up (%s)", transport, detail)
	} else {
		c.m.logf(LevelWarn, "iot: %s link down (%s); commands stay queued within their TTL", transport, detail)
	}
	now := c.m.now()
	for _, st := range c.byAddr {
		if st.tr == nil || st.tr.Name() != transport {
			continue
		}
		if !up {
			// cut off, the bridge cannot see a device restart; a command
			// resent to a device that restarted meanwhile could run twice
			// (its idempotency cache is gone), so its commands wait until
			// its state is seen again
			st.unconfirmed = true
			continue
		}
		if st.online && !st.unconfirmed {
			c.resume(st, now)
		}
	}
}

// ---- timers -----------------------------------------------------------------

func (c *core) tick(now time.Time) {
	c.m.fault("timers")
	for len(c.timers) > 0 && !c.timers[0].deadline.After(now) {
		cmd := heap.Pop(&c.timers).(*command)
		c.expire(cmd)
	}
	for k, pc := range c.confirms {
		if now.After(pc.deadline) {
			delete(c.confirms, k)
			c.m.metrics.commands.WithLabelValues(pc.dev.cfg.Profile.Name, "rejected").Inc()
			c.answer(&pc.req, pc.dev.cfg.Address, fmt.Sprintf("%s not confirmed within %s; cancelled.", pc.inv.Verb, humanDuration(c.m.cfg.ConfirmTimeout)), pc.machine, "rejected", 0, nil)
		}
	}
	for len(c.idemFIFO) > 0 && now.After(c.idemFIFO[0].exp) {
		e := c.idemFIFO[0]
		if exp, ok := c.idem[e.key]; ok && !exp.After(now) {
			delete(c.idem, e.key)
		}
		c.idemFIFO = c.idemFIFO[1:]
	}
	for _, st := range c.byAddr {
		if !st.retryAt.IsZero() && !now.Before(st.retryAt) {
			st.retryAt = time.Time{}
			c.pump(st, now)
		}
	}
	c.flushWatchers(now)
	c.m.metrics.commandsOpen.Set(float64(len(c.cmds)))
}

// seen reports whether (sender, message id) was already handled, and
// remembers it otherwise.
func (c *core) seen(p *Params, now time.Time) bool {
	key := p.From + "/" + fmt.Sprint(p.ID) + "/" + p.To + "/" + fmt.Sprint(p.GroupID)
	if exp, ok := c.idem[key]; ok && now.Before(exp) {
		return true
	}
	if len(c.idem) >= 1000000 {
		return false
	}
	exp := now.Add(c.m.cfg.IdemWindow)
	c.idem[key] = exp
	c.idemFIFO = append(c.idemFIFO, idemEntry{key: key, exp: exp})
	return false
}

// cmdHeap orders open commands by deadline.
type cmdHeap []*command

func (h cmdHeap) Len() int           { return len(h) }
func (h cmdHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h cmdHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *cmdHeap) Push(x any) {
	c := x.(*command)
	c.hidx = len(*h)
	*h = append(*h, c)
}
func (h *cmdHeap) Pop() any {
	old := *h
	n := len(old)
	c := old[n-1]
	old[n-1] = nil
	c.hidx = -1
	*h = old[:n-1]
	return c
}

// ago says how long ago something happened: "just now", "12 s ago".
func ago(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return humanDuration(d.Truncate(time.Second)) + " ago"
}

// humanDuration prints durations the way people write them: 10 min, 30 s, 2 h.
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	case d >= time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d/time.Millisecond)
}
