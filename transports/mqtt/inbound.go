package mqtt

import (
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt/rttrace"
)

// inbound is a message from the broker (a reply is processed in its handler,
// anything else waits for a worker).
type inbound struct {
	kind     inKind
	dev      string // device id from the topic
	bridge   string // bridge id from the topic
	payload  []byte
	retained bool
	at       int64 // rttrace: when the handler ran (0 when the trace is off)
}

// onMessage is paho's handler for every subscription (paho runs it in a new
// goroutine per message since OrderMatters is off). It classifies the topic;
// a reply it decodes and hands to the Sink itself, anything else it queues
// for a worker: telemetry is dropped when the worker's queue is full,
// everything else waits for room (the broker then waits for our PUBACK:
// backpressure) or for Close.
func (t *Transport) onMessage(_ paho.Client, m paho.Message) {
	var at int64
	if rttrace.On() {
		at = rttrace.Now()
	}
	defer t.log.recoverLog("message handler")
	t.fault("mqtt.handler")
	kind, dev, bridge, ok := t.tp.parse(m.Topic())
	if !ok {
		t.log.printf(LevelDebug, "ignoring a message on %q", m.Topic())
		return
	}
	in := inbound{kind: kind, dev: dev, bridge: bridge, payload: m.Payload(), retained: m.Retained(), at: at}
	if kind == inReply {
		// A reply is taken here, in paho's goroutine for this message: a
		// worker would add a hand-off (a thread to wake) to every command's
		// round trip and no ordering (OrderMatters is off, so messages
		// reach the handlers in any order anyway). Replies are QoS 1, so
		// the broker's in-flight window bounds how many handlers wait in
		// Sink.Reply for the core; their PUBACK waits with them.
		t.process(in)
		// The core goroutine was just made runnable on this thread: yield
		// so that it runs here at once, rather than after paho's PUBACK
		// for this message or on another thread that must be woken first
		// (measured with rttrace: 30 µs p50 between the decode and the
		// core on an idle bridge).
		runtime.Gosched()
		return
	}
	key := dev
	if kind == inBridgeState {
		key = bridge
	}
	q := t.shards[shardOf(key)]
	if kind == inTelemetry || kind == inForwarded {
		select {
		case q <- in:
		default:
			t.dropped(dev, fmt.Errorf("%w: telemetry of %q dropped (%d waiting)", ErrQueueFull, dev, cap(q)))
		}
		return
	}
	select {
	case q <- in:
	case <-t.ctx.Done():
	}
}

func shardOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % numShards)
}

func (t *Transport) worker(q chan inbound) {
	defer t.wg.Done()
	defer t.log.recoverLog("inbound worker")
	for {
		select {
		case <-t.ctx.Done():
			return
		case in := <-q:
			t.process(in)
		}
	}
}

func (t *Transport) process(in inbound) {
	defer t.log.recoverLog("processing " + in.kind.String())
	t.fault("mqtt.worker")
	switch in.kind {
	case inReply:
		env, err := t.decode(in, wire.KindReply)
		if err != nil {
			t.dropped(in.dev, err)
			return
		}
		if rttrace.On() {
			rttrace.StampAt(rttrace.BrHandler, env.Reply.ID, in.at)
			rttrace.Stamp(rttrace.BrWorker, env.Reply.ID)
		}
		t.callSink("Reply", func(s transports.Sink) { s.Reply(in.dev, env.Reply) })
	case inTelemetry, inForwarded:
		env, err := t.decode(in, wire.KindTelemetry)
		if err != nil {
			t.dropped(in.dev, err)
			return
		}
		t.callSink("Telemetry", func(s transports.Sink) { s.Telemetry(in.dev, env.Telemetry) })
		if in.kind == inTelemetry && t.tp.share != "" {
			t.forward(in.dev, in.payload)
		}
	case inState:
		if len(in.payload) == 0 {
			t.log.printf(LevelDebug, "retained state of %q cleared", in.dev)
			return
		}
		env, err := t.decode(in, wire.KindState)
		if err != nil {
			if in.retained && isNotEndpoint(err) {
				// a device not (or no longer) in the devices file: its live
				// publications were reported when they came
				t.log.printf(LevelDebug, "retained state of %q ignored: %v", in.dev, err)
				return
			}
			t.dropped(in.dev, err)
			return
		}
		t.presence(in.dev, env.State, in.retained)
	case inBridgeState:
		t.bridgeState(in)
	case inInterest:
		t.interestMessage(in)
	}
}

// decode checks and decodes a device's message: size (before decoding),
// the device being one of ours, the envelope, its kind, and its device
// field against the topic.
func (t *Transport) decode(in inbound, want wire.Kind) (*wire.Envelope, error) {
	if n := len(in.payload); n > t.opts.MaxMessage {
		return nil, fmt.Errorf("%w: %s of %q is %d bytes, over mqtt_max_message %d", wire.ErrTooLarge, in.kind, in.dev, n, t.opts.MaxMessage)
	}
	t.mu.Lock()
	known := t.endpoints[in.dev]
	t.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("%w: %s from %q", ErrNotEndpoint, in.kind, in.dev)
	}
	env, err := t.codec.Unmarshal(in.payload)
	if err != nil {
		return nil, fmt.Errorf("undecodable %s from %q: %w", in.kind, in.dev, err)
	}
	if env.Kind != want {
		return nil, fmt.Errorf("%w: a %s envelope on the %s topic of %q", ErrWrongKind, env.Kind, in.kind, in.dev)
	}
	if claim := env.DeviceID(); claim != "" && claim != in.dev {
		if len(claim) > 64 {
			claim = claim[:64] + "…"
		}
		return nil, fmt.Errorf("%w: %s on the topic of %q claims device %q", ErrSpoofed, in.kind, in.dev, claim)
	}
	return env, nil
}

func isNotEndpoint(err error) bool { return errors.Is(err, ErrNotEndpoint) }

// presence reports a device's state unless it is older than the last, or
// the last again live (a QoS 1 duplicate). The last again as a retained
// message (subscribing anew, after a reconnection) is reported: it tells the
// core that the device has not restarted while the bridge was cut off.
func (t *Transport) presence(dev string, s *wire.State, retained bool) {
	t.mu.Lock()
	last, known := t.presSeq[dev]
	if known && (s.Seq < last || s.Seq == last && !retained) {
		t.mu.Unlock()
		t.log.printf(LevelDebug, "state of %q with seq %d ignored (have %d)", dev, s.Seq, last)
		return
	}
	t.presSeq[dev] = s.Seq
	t.presOnline[dev] = s.Online
	t.mu.Unlock()
	reason := "state"
	switch {
	case s.Online && retained:
		reason = "retained state"
	case !s.Online && retained:
		reason = "retained offline state (last will or shutdown)"
	case !s.Online:
		reason = "offline state (last will or shutdown)"
	}
	p := transports.Presence{
		Online: s.Online, Seq: s.Seq, Firmware: s.Firmware, Profile: s.Profile,
		ProfileVersion: s.ProfileVersion, Reason: reason, At: time.Now(),
	}
	if s.Online {
		// docs/protocol.md §6.4: seq = boot counter << 32 | connection
		// counter; a new boot counter tells the core the device lost its
		// state (a device that numbers states by its clock changes it
		// only every ~25 days)
		p.Boot = s.Seq >> 32
	}
	t.callSink("Presence", func(sk transports.Sink) { sk.Presence(dev, p) })
}

// forward republishes telemetry this bridge took from the shared
// subscription to every other online bridge with watchers of dev.
func (t *Transport) forward(dev string, payload []byte) {
	t.mu.Lock()
	cn := t.conn
	var to []string
	for b, has := range t.remote[dev] {
		if !has || b == t.opts.BridgeID {
			continue
		}
		if info, ok := t.bridges[b]; ok && !info.online {
			continue // its last will (or goodbye) said offline
		}
		to = append(to, b)
	}
	t.mu.Unlock()
	if cn == nil {
		return
	}
	for _, b := range to {
		// QoS 0 like the device's telemetry; not waited for
		cn.c.Publish(t.tp.forward(b, dev), 0, false, payload)
	}
}

// bridgeState records another bridge's state; forwarding skips bridges
// whose newest state is offline.
func (t *Transport) bridgeState(in inbound) {
	if in.bridge == t.opts.BridgeID {
		return
	}
	if len(in.payload) == 0 {
		t.mu.Lock()
		delete(t.bridges, in.bridge)
		t.mu.Unlock()
		return
	}
	if len(in.payload) > t.opts.MaxMessage {
		t.log.printf(LevelWarn, "state of bridge %q is %d bytes: ignored", in.bridge, len(in.payload))
		return
	}
	env, err := t.codec.Unmarshal(in.payload)
	if err != nil || env.State == nil || (env.State.Device != "" && env.State.Device != in.bridge) {
		t.log.printf(LevelWarn, "state of bridge %q is not a valid state envelope for it: ignored (%v)", in.bridge, err)
		return
	}
	s := env.State
	t.mu.Lock()
	old, known := t.bridges[in.bridge]
	if known && s.Seq <= old.seq {
		t.mu.Unlock()
		return
	}
	t.bridges[in.bridge] = bridgeInfo{online: s.Online, seq: s.Seq}
	t.mu.Unlock()
	if !known || old.online != s.Online {
		if s.Online {
			t.log.printf(LevelInfo, "bridge %q is online", in.bridge)
		} else {
			t.log.printf(LevelInfo, "bridge %q is offline: no telemetry is forwarded to it", in.bridge)
		}
	}
}

// interestMessage records a bridge's interest in a device. For this
// bridge's own topics it notices interest left over from an earlier life.
func (t *Transport) interestMessage(in inbound) {
	has := len(in.payload) == 1 && in.payload[0] == 1
	t.mu.Lock()
	defer t.mu.Unlock()
	if in.bridge == t.opts.BridgeID {
		if has && !t.want[in.dev] {
			t.staleOwn[in.dev] = true
			notify(t.kick)
		}
		return
	}
	if has {
		m := t.remote[in.dev]
		if m == nil {
			m = map[string]bool{}
			t.remote[in.dev] = m
		}
		m[in.bridge] = true
		return
	}
	if m := t.remote[in.dev]; m != nil {
		delete(m, in.bridge)
		if len(m) == 0 {
			delete(t.remote, in.dev)
		}
	}
}
