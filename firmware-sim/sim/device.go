package sim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// Firmware is the firmware version simulated devices announce.
const Firmware = "firmware-sim/1.0"

// IdemCacheSize is how many idempotency keys a device remembers (FIFO), as
// docs/protocol.md §4 requires.
const IdemCacheSize = 32

// acceptedAfter: a command whose run time is at least this gets an
// accepted reply first (docs/protocol.md §4).
const acceptedAfter = 100 * time.Millisecond

// Execution is one command a device executed (started), for audits: a
// repeat answered from the idempotency cache is not an execution.
type Execution struct {
	Device  string
	CmdID   uint64
	IdemKey string
	Verb    string
	Args    map[string]any // validated, defaults filled in
	At      time.Time
	Boot    uint64 // the device's boot counter when it ran
}

// DeviceState is a snapshot of a device for views and tests.
type DeviceState struct {
	ID, Type, Transport string
	Online              bool   // MQTT: connected and online state published; serial: link up (a bridge took the hello)
	Plugged             bool   // serial: the pty exists (always true for MQTT)
	Boot                uint64 // boot counter (hello key 17; high half of the state seq)
	Link                string // serial: the stable symlink
	Pty                 string // serial: the pty slave the symlink points to
	Faults              Faults
	LastCommand         string // "move #42"
	LastOutcome         string // accepted, done, failed bad_argument, cached, busy...
	LastAt              time.Time
	Activity            time.Time // last command, reply, state change or injection
	Running             []string  // verbs running now
	Values              map[string]any
	Summary             string
	Counters            Counters
}

// Counters count what a device did. They only grow (across reboots too).
type Counters struct {
	Commands  uint64 // commands received (decoded, addressed to this device)
	Executed  uint64 // commands executed (see Execution)
	Repeats   uint64 // answered from the idempotency cache
	Refused   uint64 // failed before running: unknown verb, bad argument, busy, expired
	Replies   uint64 // replies sent
	Telemetry uint64 // telemetry messages sent
	Dropped   uint64 // messages not sent: offline, queue full, DropAck
	Garbage   uint64 // garbage bursts sent
	Malformed uint64 // malformed messages sent
	BadIn     uint64 // input that did not decode, was not a command or named another device
	Boots     uint64 // boots in this run (1 after Start)
}

// Device is one simulated device. Its methods are safe for concurrent use.
type Device struct {
	s    *Sim
	spec DeviceSpec
	prof *schema.Profile
	tr   transport
	hash uint64

	outbox chan outMsg

	mu         sync.Mutex
	power      uint64 // boots in this run, seeds the model
	bootBase   uint64 // added to power for the boot counter (MQTT: recovered from the retained state)
	model      model
	frng       *rand.Rand
	faults     Faults
	idem       idemCache
	active     *job
	jobs       map[*job]struct{}
	telSeq     uint64
	bootCtx    context.Context
	bootCancel context.CancelFunc
	alerting   map[string]bool
	online     bool
	changed    chan struct{}
	st         Counters
	lastCmd    string
	lastOut    string
	lastAt     time.Time
	activity   time.Time
	periodKick chan struct{}
	flooding   bool
}

type job struct {
	id      uint64
	replyTo string
	key     string
	verb    string
	power   uint64
	finish  func(now time.Time, interrupted string) outcome
	ended   bool
	stop    chan struct{}
}

type idemEntry struct {
	key      string
	job      *job
	latestID uint64
	replyTo  string
	final    *wire.Reply // terminal reply once finished
}

// idemCache remembers the last IdemCacheSize keys, oldest first out.
type idemCache struct {
	order []string
	m     map[string]*idemEntry
}

func (c *idemCache) get(k string) *idemEntry { return c.m[k] }

func (c *idemCache) put(e *idemEntry) {
	if c.m == nil {
		c.m = map[string]*idemEntry{}
	}
	if _, ok := c.m[e.key]; !ok {
		c.order = append(c.order, e.key)
	}
	c.m[e.key] = e
	for len(c.order) > IdemCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
}

// keepFinished drops the entries of commands that were still running (a
// reboot lost them).
func (c *idemCache) keepFinished() {
	var order []string
	for _, k := range c.order {
		if c.m[k].final != nil {
			order = append(order, k)
		} else {
			delete(c.m, k)
		}
	}
	c.order = order
}

// outMsg is one message waiting in a device's outbox.
type outMsg struct {
	env       *wire.Envelope
	raw       []byte // injected bytes: serial, written as they are; MQTT, the payload
	topic     string // MQTT topic
	qos       byte
	notBefore time.Time
	power     uint64
	what      string // reply, telemetry, garbage, malformed
}

var errOffline = errors.New("device offline")

func newDevice(s *Sim, spec DeviceSpec, prof *schema.Profile) *Device {
	h := fnv.New64a()
	h.Write([]byte(spec.ID))
	d := &Device{
		s:          s,
		spec:       spec,
		prof:       prof,
		hash:       h.Sum64(),
		outbox:     make(chan outMsg, 256),
		faults:     spec.Faults,
		jobs:       map[*job]struct{}{},
		changed:    make(chan struct{}),
		periodKick: make(chan struct{}, 1),
	}
	d.frng = rand.New(rand.NewPCG(mix(uint64(s.sc.Seed)^0x5eed_fa17), mix(d.hash^0xfa17_fa17)))
	return d
}

// mix is splitmix64's finaliser: seeds from similar ids (robot1, robot2)
// give unrelated sources.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// ID returns the device id.
func (d *Device) ID() string { return d.spec.ID }

// Spec returns the device's spec (defaults filled in).
func (d *Device) Spec() DeviceSpec { return d.spec }

// Profile returns the device's profile.
func (d *Device) Profile() *schema.Profile { return d.prof }

// Boot returns the device's boot counter.
func (d *Device) Boot() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bootLocked()
}

func (d *Device) bootLocked() uint64 { return d.bootBase + d.power }

// Online reports whether the device is online (see DeviceState.Online).
func (d *Device) Online() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.online
}

// powerOnLocked boots the device: a fresh model seeded from the scenario
// seed, the id and the boot number; telemetry from sequence 0.
func (d *Device) powerOnLocked() {
	d.power++
	d.st.Boots++
	rng := rand.New(rand.NewPCG(mix(uint64(d.s.sc.Seed)^mix(d.hash)), mix(d.hash+d.power*0x9e3779b97f4a7c15)))
	d.model = newModel(d.spec.Type, rng, d.s.sc.TimeScale, d.spec)
	d.telSeq = 0
	d.alerting = map[string]bool{}
	if !d.spec.PersistIdempotency {
		d.idem = idemCache{}
	} else {
		d.idem.keepFinished()
	}
	d.bootCtx, d.bootCancel = context.WithCancel(d.s.ctx)
	d.activity = time.Now()
	d.notifyLocked()
	ctx := d.bootCtx
	d.s.goSafe(d.spec.ID+" telemetry", func() { d.telemetryLoop(ctx) })
}

// powerOffLocked stops everything the current boot runs: commands in
// progress are lost (no reply), queued messages are not sent.
func (d *Device) powerOffLocked() {
	if d.bootCancel != nil {
		d.bootCancel()
	}
	for j := range d.jobs {
		j.ended = true
		close(j.stop)
	}
	d.jobs = map[*job]struct{}{}
	d.active = nil
}

func (d *Device) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *Device) setOnline(on bool) {
	d.mu.Lock()
	if d.online == on {
		d.mu.Unlock()
		return
	}
	d.online = on
	d.activity = time.Now()
	boot := d.bootLocked()
	d.notifyLocked()
	d.mu.Unlock()
	if on {
		d.s.logf("%s online (boot %d)", d.spec.ID, boot)
	} else {
		d.s.logf("%s offline", d.spec.ID)
	}
}

// Wait blocks until cond holds for the device's state, or ctx ends.
func (d *Device) Wait(ctx context.Context, cond func(DeviceState) bool) error {
	for {
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		if cond(d.State()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", d.spec.ID, ctx.Err())
		}
	}
}

// WaitOnline blocks until the device is online. A serial device is online
// only once a bridge has opened its pty and taken its hello.
func (d *Device) WaitOnline(ctx context.Context) error {
	return d.Wait(ctx, func(st DeviceState) bool { return st.Online })
}

// WaitOffline blocks until the device is offline.
func (d *Device) WaitOffline(ctx context.Context) error {
	return d.Wait(ctx, func(st DeviceState) bool { return !st.Online })
}

// State returns a snapshot of the device.
func (d *Device) State() DeviceState {
	now := time.Now()
	d.mu.Lock()
	st := DeviceState{
		ID: d.spec.ID, Type: d.spec.Type, Transport: d.spec.Transport,
		Online: d.online, Boot: d.bootLocked(), Faults: d.faults,
		LastCommand: d.lastCmd, LastOutcome: d.lastOut, LastAt: d.lastAt, Activity: d.activity,
		Counters: d.st,
	}
	if d.model != nil {
		st.Values = d.model.peek(now)
		st.Summary = d.model.summary(now)
	}
	for j := range d.jobs {
		st.Running = append(st.Running, j.verb)
	}
	d.mu.Unlock()
	sort.Strings(st.Running)
	st.Plugged, st.Link, st.Pty = d.tr.where()
	return st
}

// Executions returns the commands this device executed.
func (d *Device) Executions() []Execution {
	var out []Execution
	for _, e := range d.s.Executions() {
		if e.Device == d.spec.ID {
			out = append(out, e)
		}
	}
	return out
}

// SetFaults replaces the device's faults.
func (d *Device) SetFaults(f Faults) error {
	if err := f.check(); err != nil {
		return err
	}
	d.mu.Lock()
	d.faults = f
	d.activity = time.Now()
	d.mu.Unlock()
	d.s.logf("%s faults: %s", d.spec.ID, f)
	return nil
}

// Faults returns the device's faults.
func (d *Device) Faults() Faults {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.faults
}

// Set forces a telemetry value (e.g. temp above its alert threshold). The
// value is reported from the next telemetry on; a random walk continues
// around it. Relay channels (ch1..ch8) take 0 or 1.
func (d *Device) Set(field string, v float64) error {
	d.mu.Lock()
	err := d.model.set(field, v)
	d.activity = time.Now()
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", d.spec.ID, err)
	}
	d.s.logf("%s set %s = %v", d.spec.ID, field, v)
	return nil
}

// EmitTelemetry sends one telemetry message now (if the device is online).
func (d *Device) EmitTelemetry() error {
	now := time.Now()
	d.mu.Lock()
	if !d.online {
		d.mu.Unlock()
		return fmt.Errorf("%s: %w", d.spec.ID, errOffline)
	}
	vals := d.model.sample(now)
	seq := d.telSeq
	d.telSeq++
	alert := false
	for _, f := range d.prof.Telemetry {
		x, ok := vals[f.Name].(float64)
		if !ok || (f.Below == nil && f.Above == nil) {
			continue
		}
		beyond := (f.Below != nil && x < *f.Below) || (f.Above != nil && x > *f.Above)
		if beyond != d.alerting[f.Name] {
			alert = true
			d.alerting[f.Name] = beyond
		}
	}
	var qos byte
	if alert {
		qos = 1 // docs/protocol.md §6.2: QoS 1 for telemetry whose loss matters
	}
	env := &wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{
		Device: d.spec.ID, Seq: seq, TS: now.UnixMilli(), Values: vals,
	}}
	d.sendLocked(outMsg{env: env, topic: d.topic("telemetry"), qos: qos, what: "telemetry"})
	d.mu.Unlock()
	return nil
}

// FloodTelemetry sends telemetry at rate messages per second for dur (in
// the background; it stops early on reboot or Close).
func (d *Device) FloodTelemetry(rate float64, dur time.Duration) error {
	if rate <= 0 || dur <= 0 {
		return errors.New("flood: rate and duration must be positive")
	}
	d.mu.Lock()
	ctx := d.bootCtx
	d.mu.Unlock()
	interval := time.Duration(float64(time.Second) / rate)
	interval = max(interval, 100*time.Microsecond)
	d.s.logf("%s flooding telemetry at %.0f/s for %v", d.spec.ID, rate, dur)
	d.s.goSafe(d.spec.ID+" flood", func() {
		end := time.NewTimer(dur)
		defer end.Stop()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-end.C:
				return
			case <-tick.C:
				_ = d.EmitTelemetry()
			}
		}
	})
	return nil
}

func (d *Device) telemetryLoop(ctx context.Context) {
	for {
		d.mu.Lock()
		p := d.model.period()
		d.mu.Unlock()
		if p == 0 {
			p = d.spec.Telemetry
		}
		if p == 0 {
			p = defaultPeriod(d.spec.Type)
		}
		p = max(scaled(p, d.s.sc.TimeScale), time.Millisecond)
		t := time.NewTimer(p)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.periodKick:
			t.Stop()
		case <-t.C:
			_ = d.EmitTelemetry()
		}
	}
}

// topic returns the MQTT topic for kind (telemetry, state, cmd, reply).
func (d *Device) topic(kind string) string {
	return d.s.sc.TopicPrefix + "/dev/" + d.spec.ID + "/" + kind
}

func (d *Device) replyTopic(replyTo string) string {
	if replyTo != "" && ValidID(replyTo) {
		return d.s.sc.TopicPrefix + "/bridge/" + replyTo + "/reply/" + d.spec.ID
	}
	return d.topic("reply")
}

// onCommand runs a command that arrived (decoded, addressed to this device).
func (d *Device) onCommand(cmd *wire.Command) {
	now := time.Now()
	if d.spec.Transport == TransportSerial {
		cmd.ReplyTo = "" // serial has no reply-to
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Commands++
	d.lastCmd = cmd.Verb + " #" + strconv.FormatUint(cmd.ID, 10)
	d.lastAt, d.activity = now, now

	// Idempotency (docs/protocol.md §4): a known key is never run again.
	if cmd.IdemKey != "" {
		if e := d.idem.get(cmd.IdemKey); e != nil {
			d.st.Repeats++
			if e.final != nil {
				r := *e.final
				r.ID = cmd.ID
				d.lastOut = "cached " + outcomeText(&r)
				d.s.logf("%s %s key %q: repeat, answered from the cache (%s)", d.spec.ID, d.lastCmd, cmd.IdemKey, outcomeText(&r))
				d.replyLocked(&r, cmd.ReplyTo)
			} else {
				e.latestID, e.replyTo = cmd.ID, cmd.ReplyTo
				d.lastOut = "accepted (repeat)"
				d.s.logf("%s %s key %q: repeat of a running command, accepted again", d.spec.ID, d.lastCmd, cmd.IdemKey)
				d.replyLocked(&wire.Reply{ID: cmd.ID, Device: d.spec.ID, Outcome: wire.OutcomeAccepted}, cmd.ReplyTo)
			}
			return
		}
	}
	// A command meant for an earlier boot (docs/protocol.md §4): that boot
	// may have run it, and this one cannot tell (its idempotency cache is
	// new), so it is not run. A repeat of a key this boot knows was answered
	// above.
	if boot := d.bootLocked(); cmd.Boot != 0 && cmd.Boot != boot {
		d.refuseLocked(cmd, failed(wire.ReplyRestarted, "sent to boot %d, this is boot %d: not run", cmd.Boot, boot))
		return
	}
	if cmd.Deadline != 0 && now.UnixMilli() > cmd.Deadline {
		late := time.Duration(now.UnixMilli()-cmd.Deadline) * time.Millisecond
		d.refuseLocked(cmd, failed(wire.ReplyExpired, "deadline passed %v ago", late))
		return
	}
	_, args, bad := validate(d.prof, cmd.Verb, cmd.Args)
	if bad != nil {
		d.refuseLocked(cmd, *bad)
		return
	}
	if a := d.active; a != nil {
		if !d.model.interrupts(cmd.Verb) {
			d.refuseLocked(cmd, failed(wire.ReplyBusy, "busy: %s #%d is running", a.verb, a.id))
			return
		}
		d.interruptLocked(a, cmd.Verb, now)
	}

	// Execute.
	boot := d.bootLocked()
	d.s.record(Execution{Device: d.spec.ID, CmdID: cmd.ID, IdemKey: cmd.IdemKey, Verb: cmd.Verb,
		Args: args, At: now, Boot: boot})
	d.st.Executed++
	j := &job{id: cmd.ID, replyTo: cmd.ReplyTo, key: cmd.IdemKey, verb: cmd.Verb, power: d.power, stop: make(chan struct{})}
	if cmd.IdemKey != "" {
		d.idem.put(&idemEntry{key: cmd.IdemKey, job: j, latestID: cmd.ID, replyTo: cmd.ReplyTo})
	}
	d.s.logf("%s %s %s", d.spec.ID, d.lastCmd, fmtArgs(args))
	if d.faults.ErrorRate > 0 && d.frng.Float64() < d.faults.ErrorRate {
		d.endLocked(j, failed(wire.ReplyInternal, "injected fault: the device failed"))
		return
	}
	act := d.model.begin(cmd.Verb, args, now)
	slow := d.faults.SlowCommands
	if act.finish == nil && act.run == 0 && slow == 0 {
		d.endLocked(j, act.outcome)
		return
	}
	j.finish = act.finish
	if j.finish == nil {
		o := act.outcome
		j.finish = func(time.Time, string) outcome { return o }
	}
	run := scaled(act.run+slow, d.s.sc.TimeScale)
	if act.exclusive {
		d.active = j
	}
	d.jobs[j] = struct{}{}
	if run >= acceptedAfter {
		d.lastOut = "accepted"
		d.replyLocked(&wire.Reply{ID: cmd.ID, Device: d.spec.ID, Outcome: wire.OutcomeAccepted}, cmd.ReplyTo)
	}
	ctx := d.bootCtx
	d.s.goSafe(d.spec.ID+" "+cmd.Verb, func() {
		t := time.NewTimer(run)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-j.stop:
		case <-t.C:
			d.complete(j)
		}
	})
}

func (d *Device) complete(j *job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if j.ended || j.power != d.power {
		return
	}
	d.endLocked(j, j.finish(time.Now(), ""))
}

func (d *Device) interruptLocked(j *job, cause string, now time.Time) {
	if j.ended {
		return
	}
	d.endLocked(j, j.finish(now, cause))
}

// endLocked sends a job's terminal reply, to the newest command ID of its
// idempotency key, and remembers it for repeats.
func (d *Device) endLocked(j *job, o outcome) {
	if !j.ended {
		j.ended = true
		close(j.stop)
	}
	delete(d.jobs, j)
	if d.active == j {
		d.active = nil
	}
	r := &wire.Reply{ID: j.id, Device: d.spec.ID, Outcome: wire.OutcomeDone, Result: o.result}
	if o.code != 0 {
		r.Outcome, r.Code, r.Text, r.Result = wire.OutcomeFailed, int64(o.code), o.text, nil
	}
	replyTo := j.replyTo
	if j.key != "" {
		if e := d.idem.get(j.key); e != nil && e.job == j {
			r.ID, replyTo = e.latestID, e.replyTo
			fin := *r
			e.final = &fin
		}
	}
	d.lastOut = outcomeText(r)
	d.activity = time.Now()
	d.s.logf("%s %s #%d → %s", d.spec.ID, j.verb, r.ID, outcomeText(r))
	d.replyLocked(r, replyTo)
	select {
	case d.periodKick <- struct{}{}: // set_interval may have changed the period
	default:
	}
}

// refuseLocked answers a command that does not run: not executed, not
// remembered under its idempotency key.
func (d *Device) refuseLocked(cmd *wire.Command, o outcome) {
	d.st.Refused++
	r := &wire.Reply{ID: cmd.ID, Device: d.spec.ID, Outcome: wire.OutcomeFailed, Code: int64(o.code), Text: o.text}
	d.lastOut = outcomeText(r)
	d.s.logf("%s %s #%d refused: %s", d.spec.ID, cmd.Verb, cmd.ID, outcomeText(r))
	d.replyLocked(r, cmd.ReplyTo)
}

func outcomeText(r *wire.Reply) string {
	if r.Outcome == wire.OutcomeFailed {
		s := "failed " + wire.ReplyCode(r.Code).String()
		if r.Text != "" {
			s += ": " + r.Text
		}
		return s
	}
	return r.Outcome.String()
}

func fmtArgs(args map[string]any) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%v", k, args[k])
	}
	return s
}

// replyLocked sends a reply through the reply faults.
func (d *Device) replyLocked(r *wire.Reply, replyTo string) {
	f := d.faults
	if f.DropAck > 0 && d.frng.Float64() < f.DropAck {
		d.st.Dropped++
		d.s.logf("%s fault: dropped reply %s #%d", d.spec.ID, r.Outcome, r.ID)
		return
	}
	m := outMsg{env: &wire.Envelope{Kind: wire.KindReply, Reply: r}, topic: d.replyTopic(replyTo), qos: 1, what: "reply"}
	if f.DelayAck > 0 {
		m.notBefore = time.Now().Add(f.DelayAck)
	}
	d.sendLocked(m)
	if f.DuplicateReply > 0 && d.frng.Float64() < f.DuplicateReply {
		d.s.logf("%s fault: duplicated reply %s #%d", d.spec.ID, r.Outcome, r.ID)
		d.sendLocked(m)
	}
}

// sendLocked queues m, preceded by the garbage and malformed faults.
func (d *Device) sendLocked(m outMsg) {
	f := d.faults
	if f.Garbage > 0 && d.frng.Float64() < f.Garbage {
		d.queueLocked(outMsg{raw: d.garbageLocked(16 + d.frng.IntN(48)), topic: d.topic("telemetry"), what: "garbage"})
	}
	if f.Malformed > 0 && d.frng.Float64() < f.Malformed {
		name, b := d.malformedLocked()
		d.queueLocked(outMsg{raw: b, topic: d.topic("telemetry"), what: "malformed " + name})
	}
	d.queueLocked(m)
}

func (d *Device) queueLocked(m outMsg) {
	m.power = d.power
	select {
	case d.outbox <- m:
	default:
		d.st.Dropped++
	}
}

func (d *Device) garbageLocked(n int) []byte {
	return garbage(d.frng, n, d.spec.Transport == TransportSerial)
}

func (d *Device) malformedLocked() (string, []byte) {
	if st, ok := d.tr.(*serialTr); ok {
		return st.malformed(d.frng)
	}
	return malformedPayload(d.frng, 1<<20)
}

// sender delivers the outbox in order.
func (d *Device) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-d.outbox:
			if w := time.Until(m.notBefore); w > 0 {
				t := time.NewTimer(w)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			d.mu.Lock()
			stale := m.power != d.power
			d.mu.Unlock()
			if stale {
				continue // sent before a reboot: the device lost it
			}
			err := d.tr.deliver(ctx, m)
			d.mu.Lock()
			switch {
			case err != nil:
				d.st.Dropped++
			case m.what == "reply":
				d.st.Replies++
			case m.what == "telemetry":
				d.st.Telemetry++
			case m.what == "garbage":
				d.st.Garbage++
			default:
				d.st.Malformed++
			}
			if m.what != "telemetry" {
				d.activity = time.Now()
			}
			d.mu.Unlock()
			if err != nil && m.what != "telemetry" && ctx.Err() == nil {
				d.s.logf("%s could not send %s: %v", d.spec.ID, m.what, err)
			}
		}
	}
}

// SendGarbage sends n random bytes that are not a message (serial: line
// noise followed by 0x00; MQTT: a payload on the telemetry topic), now.
func (d *Device) SendGarbage(n int) error {
	if n <= 0 {
		n = 32
	}
	n = min(n, 1<<16)
	d.mu.Lock()
	b := d.garbageLocked(n)
	d.mu.Unlock()
	err := d.tr.deliver(d.s.ctx, outMsg{raw: b, topic: d.topic("telemetry"), what: "garbage"})
	d.mu.Lock()
	if err == nil {
		d.st.Garbage++
	}
	d.activity = time.Now()
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: garbage: %w", d.spec.ID, err)
	}
	d.s.logf("%s sent %d bytes of garbage", d.spec.ID, len(b))
	return nil
}

// SendMalformed sends, now, one message the protocol refuses: an invalid
// envelope from wire.Cases (serial: in a DATA frame with seq 0, which the
// link never uses for data; or a frame with a bad CRC, version or type).
// It returns the case's name.
func (d *Device) SendMalformed() (string, error) {
	d.mu.Lock()
	name, b := d.malformedLocked()
	d.mu.Unlock()
	err := d.tr.deliver(d.s.ctx, outMsg{raw: b, topic: d.topic("telemetry"), what: "malformed"})
	d.mu.Lock()
	if err == nil {
		d.st.Malformed++
	}
	d.activity = time.Now()
	d.mu.Unlock()
	if err != nil {
		return name, fmt.Errorf("%s: malformed: %w", d.spec.ID, err)
	}
	d.s.logf("%s sent malformed %s", d.spec.ID, name)
	return name, nil
}

// Reboot restarts the device: commands in progress are lost (no reply),
// position, mode, arming, relay states and calibration are reset, the
// idempotency cache is emptied (unless PersistIdempotency), telemetry
// starts again at seq 0 and the boot counter goes up by one. After a boot
// delay the device says hello (serial) or publishes its online state (MQTT;
// the old connection is dropped without DISCONNECT, so its last will fires).
func (d *Device) Reboot() error {
	if d.s.isClosed() {
		return errClosed
	}
	d.mu.Lock()
	d.powerOffLocked()
	d.powerOnLocked()
	boot := d.bootLocked()
	d.mu.Unlock()
	d.s.logf("%s rebooting (boot %d)", d.spec.ID, boot)
	d.tr.reboot()
	return nil
}

// GoOffline takes the device off the network. MQTT: the connection is
// dropped without DISCONNECT so the broker publishes the last will; serial:
// the device stops talking (the bridge sees silence). It stays offline
// until GoOnline.
func (d *Device) GoOffline() error {
	if d.s.isClosed() {
		return errClosed
	}
	d.s.logf("%s going offline", d.spec.ID)
	d.tr.goOffline()
	return nil
}

// GoOnline undoes GoOffline: MQTT reconnects (next state seq), serial sends
// RESET and hello again (same boot counter).
func (d *Device) GoOnline() error {
	if d.s.isClosed() {
		return errClosed
	}
	d.s.logf("%s going online", d.spec.ID)
	d.tr.goOnline()
	return nil
}

// Unplug pulls a serial device's cable: the pty is closed (the bridge's
// reads fail with EIO) and the symlink removed. With UnplugPowersOff the
// device also loses power.
func (d *Device) Unplug() error {
	st, ok := d.tr.(*serialTr)
	if !ok {
		return fmt.Errorf("%s: unplug: not a serial device (use offline)", d.spec.ID)
	}
	return st.unplug()
}

// Replug plugs the cable back in: a new pty, the symlink re-pointed to it
// atomically, then RESET and hello. With UnplugPowersOff the device boots
// (boot counter + 1). Replug on a plugged device unplugs it first.
func (d *Device) Replug() error {
	st, ok := d.tr.(*serialTr)
	if !ok {
		return fmt.Errorf("%s: replug: not a serial device (use online)", d.spec.ID)
	}
	return st.replug()
}

// LinkPath returns a serial device's stable symlink ("" for MQTT).
func (d *Device) LinkPath() string {
	_, l, _ := d.tr.where()
	return l
}

// PtyPath returns the pty slave a serial device's symlink points to now
// ("" for MQTT or while unplugged).
func (d *Device) PtyPath() string {
	_, _, p := d.tr.where()
	return p
}

func (d *Device) hello() *wire.Hello {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &wire.Hello{Device: d.spec.ID, Firmware: Firmware, Profile: d.prof.Name,
		ProfileVersion: d.prof.Version, Boot: d.bootLocked(), MaxFrame: wire.MaxFramePayload}
}

func (d *Device) badInput(format string, args ...any) {
	d.mu.Lock()
	d.st.BadIn++
	d.mu.Unlock()
	d.s.logf("%s dropped input: "+format, append([]any{d.spec.ID}, args...)...)
}

// transport is a device's link to the bridge.
type transport interface {
	start(ctx context.Context) error
	deliver(ctx context.Context, m outMsg) error
	goOffline()
	goOnline()
	reboot()
	close()
	where() (plugged bool, link, pty string)
}
