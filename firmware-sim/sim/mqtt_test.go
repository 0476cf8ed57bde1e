package sim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt"
)

const replyTopic = prefix + "/bridge/b1/reply/robot1"

func TestMQTTRoverCommands(t *testing.T) {
	s := startSim(t, Scenario{Seed: 1, TimeScale: 4, Devices: []DeviceSpec{
		{ID: "robot1", Type: TypeRover, Transport: TransportMQTT},
	}})
	tc := newClient(t, s.BrokerURL(), prefix+"/bridge/b1/reply/+", prefix+"/dev/+/reply")
	const wait = 5 * time.Second
	cmd := func(id uint64, key, verb string, args map[string]any) *wire.Command {
		return &wire.Command{ID: id, Device: "robot1", Verb: verb, Args: args, IdemKey: key, ReplyTo: "b1"}
	}

	// Disarmed: move fails with not_allowed, "motors disarmed".
	tc.send("robot1", cmd(1, "k1", "move", map[string]any{"distance": 50.0}))
	r := tc.reply(replyTopic, 1, wait)
	if r.Outcome != wire.OutcomeFailed || wire.ReplyCode(r.Code) != wire.ReplyNotAllowed || r.Text != "motors disarmed" {
		t.Fatalf("move while disarmed: %+v", r)
	}
	tc.send("robot1", cmd(2, "k2", "arm", nil))
	if r := tc.reply(replyTopic, 2, wait); r.Outcome != wire.OutcomeDone {
		t.Fatalf("arm: %+v", r)
	}

	// move 50 cm at full speed: 0.5 s (0.125 s at time scale 4): accepted, then done.
	tc.send("robot1", cmd(3, "k3", "move", map[string]any{"distance": int64(50), "speed": 1.0}))
	if r := tc.reply(replyTopic, 3, wait); r.Outcome != wire.OutcomeAccepted {
		t.Fatalf("move: first reply %+v, want accepted", r)
	}
	r = tc.reply(replyTopic, 3, wait)
	if r.Outcome != wire.OutcomeDone || r.Result["odometry"] != 0.5 {
		t.Fatalf("move: terminal reply %+v, want done with odometry 0.5", r)
	}

	// A repeat of k3 is answered from the cache with the new ID, not run again.
	tc.send("robot1", cmd(4, "k3", "move", map[string]any{"distance": int64(50), "speed": 1.0}))
	r = tc.reply(replyTopic, 4, wait)
	if r.Outcome != wire.OutcomeDone || r.Result["odometry"] != 0.5 {
		t.Fatalf("repeat: %+v, want the cached done", r)
	}
	if n := countKey(s.Executions(), "k3"); n != 1 {
		t.Fatalf("k3 executed %d times, want 1", n)
	}

	// A repeat of a command still running gets accepted again; the terminal
	// reply goes to the newest ID.
	tc.send("robot1", cmd(5, "k5", "move", map[string]any{"distance": 200.0, "speed": 0.5}))
	if r := tc.reply(replyTopic, 5, wait); r.Outcome != wire.OutcomeAccepted {
		t.Fatalf("long move: %+v", r)
	}
	tc.send("robot1", cmd(6, "k5", "move", map[string]any{"distance": 200.0, "speed": 0.5}))
	if r := tc.reply(replyTopic, 6, wait); r.Outcome != wire.OutcomeAccepted {
		t.Fatalf("repeat of running move: %+v, want accepted", r)
	}
	if r := tc.reply(replyTopic, 6, wait); r.Outcome != wire.OutcomeDone {
		t.Fatalf("repeat of running move: terminal %+v, want done to #6", r)
	}
	if n := countKey(s.Executions(), "k5"); n != 1 {
		t.Fatalf("k5 executed %d times, want 1", n)
	}

	// stop interrupts a move.
	tc.send("robot1", cmd(7, "k7", "move", map[string]any{"distance": -300.0, "speed": 0.2}))
	tc.reply(replyTopic, 7, wait) // accepted
	tc.send("robot1", cmd(8, "k8", "stop", nil))
	r = tc.reply(replyTopic, 7, wait)
	if r.Outcome != wire.OutcomeFailed || wire.ReplyCode(r.Code) != wire.ReplyNotAllowed || !strings.Contains(r.Text, "interrupted by stop") {
		t.Fatalf("interrupted move: %+v", r)
	}
	if r := tc.reply(replyTopic, 8, wait); r.Outcome != wire.OutcomeDone {
		t.Fatalf("stop: %+v", r)
	}

	// Refusals: not executed, not remembered. Without reply-to the reply
	// goes to the device's reply topic.
	devReply := prefix + "/dev/robot1/reply"
	for _, c := range []struct {
		cmd  *wire.Command
		code wire.ReplyCode
	}{
		{&wire.Command{ID: 20, Verb: "fly", IdemKey: "r1"}, wire.ReplyUnknownVerb},
		{&wire.Command{ID: 21, Verb: "move", Args: map[string]any{"distance": 9000.0}, IdemKey: "r2"}, wire.ReplyBadArgument},
		{&wire.Command{ID: 22, Verb: "move", IdemKey: "r3"}, wire.ReplyBadArgument},
		{&wire.Command{ID: 23, Verb: "move", Args: map[string]any{"distance": 1.0, "color": "red"}, IdemKey: "r4"}, wire.ReplyBadArgument},
		{&wire.Command{ID: 24, Verb: "mode", Args: map[string]any{"mode": int64(3)}, IdemKey: "r5"}, wire.ReplyBadArgument},
		{&wire.Command{ID: 25, Verb: "move", Args: map[string]any{"distance": 1.0}, Deadline: time.Now().Add(-time.Second).UnixMilli(), IdemKey: "r6"}, wire.ReplyExpired},
	} {
		tc.send("robot1", c.cmd)
		r := tc.reply(devReply, c.cmd.ID, wait)
		if r.Outcome != wire.OutcomeFailed || wire.ReplyCode(r.Code) != c.code || r.Text == "" {
			t.Errorf("%s #%d: %+v, want failed %s", c.cmd.Verb, c.cmd.ID, r, c.code)
		}
		if n := countKey(s.Executions(), c.cmd.IdemKey); n != 0 {
			t.Errorf("refused #%d was recorded as executed", c.cmd.ID)
		}
	}
	// A command naming another device is dropped.
	tc.send("robot1", &wire.Command{ID: 30, Device: "robot2", Verb: "stop"})
	time.Sleep(100 * time.Millisecond)
	if st := s.Device("robot1").State(); st.Counters.BadIn != 1 {
		t.Errorf("bad input %d, want 1 (command naming another device)", st.Counters.BadIn)
	}
	// Executed: k1 (failed disarmed), k2, k3, k5, k7, k8.
	if n := len(s.Executions()); n != 6 {
		t.Errorf("%d executions, want 6: %+v", n, s.Executions())
	}
}

func TestMQTTLastWillAndOnline(t *testing.T) {
	s := startSim(t, Scenario{Seed: 2, Devices: []DeviceSpec{{ID: "robot1", Type: TypeRover}}})
	d := s.Device("robot1")
	tc := newClient(t, s.BrokerURL(), prefix+"/dev/robot1/state")
	const boot1 = uint64(1) << 32
	// the embedded broker may pass a state on live and then again as the
	// retained copy to a client that has just subscribed: a state with the
	// seq of the previous one is that copy
	last := ^uint64(0)
	state := func() *wire.State {
		m := tc.next(5*time.Second, func(m mqttMsg) bool {
			return m.env != nil && m.env.State != nil && m.env.State.Seq != last
		})
		last = m.env.State.Seq
		return m.env.State
	}
	if st := state(); !st.Online || st.Seq != boot1 || st.Profile != "rover" || st.ProfileVersion != "1.2" || st.Firmware != Firmware {
		t.Fatalf("retained online state: %+v", st)
	}
	if err := d.GoOffline(); err != nil {
		t.Fatal(err)
	}
	if st := state(); st.Online || st.Seq != boot1+1 {
		t.Fatalf("last will: %+v, want offline with seq boot<<32|1", st)
	}
	if err := d.WaitOffline(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := d.GoOnline(); err != nil {
		t.Fatal(err)
	}
	if st := state(); !st.Online || st.Seq != boot1+2 {
		t.Fatalf("back online: %+v, want online with seq boot<<32|2", st)
	}
	if err := d.WaitOnline(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestMQTTRebootClearsState(t *testing.T) {
	s := startSim(t, Scenario{Seed: 3, TimeScale: 10, Devices: []DeviceSpec{{ID: "robot1", Type: TypeRover}}})
	d := s.Device("robot1")
	tc := newClient(t, s.BrokerURL(), prefix+"/bridge/b1/reply/+", prefix+"/dev/robot1/state")
	const wait = 5 * time.Second
	send := func(id uint64, key, verb string, args map[string]any) {
		tc.send("robot1", &wire.Command{ID: id, Verb: verb, Args: args, IdemKey: key, ReplyTo: "b1"})
	}
	terminal := func(id uint64) *wire.Reply {
		for {
			r := tc.reply(replyTopic, id, wait)
			if r.Outcome.Terminal() {
				return r
			}
		}
	}
	send(1, "a", "arm", nil)
	terminal(1)
	send(2, "m", "move", map[string]any{"distance": 100.0, "speed": 1.0})
	if r := terminal(2); r.Outcome != wire.OutcomeDone {
		t.Fatalf("move: %+v", r)
	}
	if odo := d.State().Values["odometry"]; odo != 1.0 {
		t.Fatalf("odometry %v, want 1", odo)
	}
	if err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	// The old connection's will, then the new boot's online state.
	m := tc.next(wait, func(m mqttMsg) bool {
		return m.env != nil && m.env.State != nil && m.env.State.Online && m.env.State.Seq>>32 == 2
	})
	if m.env.State.Seq != 2<<32 {
		t.Fatalf("online state after reboot: seq %#x, want 2<<32", m.env.State.Seq)
	}
	if err := d.WaitOnline(within(t, wait)); err != nil {
		t.Fatal(err)
	}
	st := d.State()
	if st.Boot != 2 || st.Values["odometry"] != 0.0 || st.Counters.Boots != 2 {
		t.Fatalf("after reboot: boot %d odometry %v boots %d", st.Boot, st.Values["odometry"], st.Counters.Boots)
	}
	// A command meant for boot 1 (key 17, a bridge's resend) is not run:
	// boot 1 may have run it already (docs/protocol.md §4).
	tc.send("robot1", &wire.Command{ID: 4, Verb: "arm", IdemKey: "late", ReplyTo: "b1", Boot: 1})
	if r := terminal(4); wire.ReplyCode(r.Code) != wire.ReplyRestarted {
		t.Fatalf("a command meant for boot 1, in boot 2: %+v, want failed restarted", r)
	}
	// Disarmed again, and the idempotency cache is empty: key m runs again,
	// meant for this boot or for none.
	send(3, "m", "move", map[string]any{"distance": 100.0, "speed": 1.0})
	if r := terminal(3); wire.ReplyCode(r.Code) != wire.ReplyNotAllowed || r.Text != "motors disarmed" {
		t.Fatalf("move after reboot: %+v, want motors disarmed", r)
	}
	var boots []uint64
	for _, e := range s.Executions() {
		if e.IdemKey == "m" {
			boots = append(boots, e.Boot)
		}
	}
	if len(boots) != 2 || boots[0] != 1 || boots[1] != 2 {
		t.Fatalf("executions of key m by boot: %v, want [1 2]", boots)
	}
	tc.send("robot1", &wire.Command{ID: 5, Verb: "arm", IdemKey: "now", ReplyTo: "b1", Boot: 2})
	if r := terminal(5); r.Outcome != wire.OutcomeDone {
		t.Fatalf("arm meant for boot 2, in boot 2: %+v, want done", r)
	}
	for _, e := range s.Executions() {
		if e.IdemKey == "late" {
			t.Fatalf("the command meant for boot 1 ran: %+v", e)
		}
	}
}

func TestMQTTFaultsDropAckThenCache(t *testing.T) {
	s := startSim(t, Scenario{Seed: 4, Devices: []DeviceSpec{
		{ID: "relay9", Type: TypeRelay, Faults: Faults{DropAck: 1}},
	}})
	d := s.Device("relay9")
	tc := newClient(t, s.BrokerURL(), prefix+"/dev/relay9/reply")
	topic := prefix + "/dev/relay9/reply"
	tc.send("relay9", &wire.Command{ID: 1, Verb: "on", Args: map[string]any{"channel": int64(2)}, IdemKey: "x"})
	time.Sleep(300 * time.Millisecond)
	select {
	case m := <-tc.msgs:
		t.Fatalf("reply with drop_ack=1: %+v", m.env)
	default:
	}
	if _, err := s.Exec("faults relay9 none"); err != nil {
		t.Fatal(err)
	}
	// The bridge resends with the same key: answered from the cache.
	tc.send("relay9", &wire.Command{ID: 2, Verb: "on", Args: map[string]any{"channel": int64(2)}, IdemKey: "x"})
	r := tc.reply(topic, 2, 5*time.Second)
	if r.Outcome != wire.OutcomeDone || r.Result["state"] != true || r.Result["channel"] != int64(2) {
		t.Fatalf("cached reply: %+v", r)
	}
	if n := countKey(s.Executions(), "x"); n != 1 {
		t.Fatalf("executed %d times", n)
	}
	if v := d.State().Values["ch2"]; v != true {
		t.Fatalf("ch2 = %v", v)
	}
	// One at a time: a switch while a pulse runs is busy.
	tc.send("relay9", &wire.Command{ID: 3, Verb: "pulse", Args: map[string]any{"channel": int64(1), "duration": int64(1000)}})
	if r := tc.reply(topic, 3, 5*time.Second); r.Outcome != wire.OutcomeAccepted {
		t.Fatalf("pulse: %+v", r)
	}
	tc.send("relay9", &wire.Command{ID: 4, Verb: "off", Args: map[string]any{"channel": int64(2)}})
	if r := tc.reply(topic, 4, 5*time.Second); wire.ReplyCode(r.Code) != wire.ReplyBusy {
		t.Fatalf("off during pulse: %+v, want busy", r)
	}
	if r := tc.reply(topic, 3, 5*time.Second); r.Outcome != wire.OutcomeDone || r.Result["state"] != false {
		t.Fatalf("pulse end: %+v", r)
	}
}

func TestMQTTEnvSensor(t *testing.T) {
	s := startSim(t, Scenario{Seed: 5, Devices: []DeviceSpec{{ID: "env1", Type: TypeEnvSensor, Telemetry: time.Hour}}})
	d := s.Device("env1")
	tc := newClient(t, s.BrokerURL(), prefix+"/dev/env1/reply", prefix+"/dev/env1/telemetry")
	topic := prefix + "/dev/env1/reply"
	tc.send("env1", &wire.Command{ID: 1, Verb: "calibrate", Args: map[string]any{"offset": -0.5}})
	if r := tc.reply(topic, 1, 5*time.Second); r.Outcome != wire.OutcomeDone || r.Result["offset"] != -0.5 {
		t.Fatalf("calibrate: %+v", r)
	}
	if err := d.Set("temp", 35); err != nil {
		t.Fatal(err)
	}
	tc.send("env1", &wire.Command{ID: 2, Verb: "read"})
	if r := tc.reply(topic, 2, 5*time.Second); r.Outcome != wire.OutcomeDone || r.Result["temp"] != 35.0 {
		t.Fatalf("read: %+v, want temp 35", r)
	}
	// Crossing the profile's alert threshold (above 30) is sent with QoS 1;
	// the value is what Set forced, give or take the random walk.
	if err := d.EmitTelemetry(); err != nil {
		t.Fatal(err)
	}
	m := tc.next(5*time.Second, func(m mqttMsg) bool { return m.env != nil && m.env.Telemetry != nil })
	if temp := m.env.Telemetry.Values["temp"].(float64); temp < 34 || temp > 36 {
		t.Fatalf("telemetry temp %v, want about 35", temp)
	}
	// set_interval changes the telemetry period (time scale 1: 1 s).
	tc.send("env1", &wire.Command{ID: 3, Verb: "set_interval", Args: map[string]any{"interval": int64(1)}})
	if r := tc.reply(topic, 3, 5*time.Second); r.Outcome != wire.OutcomeDone {
		t.Fatalf("set_interval: %+v", r)
	}
	start := time.Now()
	tc.next(3*time.Second, func(m mqttMsg) bool { return m.env != nil && m.env.Telemetry != nil })
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("telemetry after %v with interval 1s", el)
	}
}

func TestDeterministicTelemetry(t *testing.T) {
	const n = 8
	collect := func(seed int64) []map[string]any {
		s := startSim(t, Scenario{Seed: seed, TimeScale: 100, Devices: []DeviceSpec{
			{ID: "env1", Type: TypeEnvSensor}, {ID: "robot1", Type: TypeRover},
		}})
		tc := newClient(t, s.BrokerURL(), prefix+"/dev/env1/telemetry")
		got := map[uint64]map[string]any{}
		for len(got) < n+2 {
			m := tc.next(10*time.Second, func(m mqttMsg) bool { return m.env != nil && m.env.Telemetry != nil })
			got[m.env.Telemetry.Seq] = m.env.Telemetry.Values
		}
		_ = s.Close()
		var out []map[string]any
		for seq := uint64(0); len(out) < n; seq++ {
			if v, ok := got[seq]; ok {
				out = append(out, v)
			} else if seq > n+10 {
				t.Fatalf("missing telemetry seqs: %v", got)
			}
		}
		return out
	}
	a, b, c := collect(42), collect(42), collect(43)
	same := func(x, y []map[string]any) bool {
		for i := range x {
			for k, v := range x[i] {
				if y[i][k] != v {
					return false
				}
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatalf("same seed, different telemetry:\n%v\n%v", a, b)
	}
	if same(a, c) {
		t.Fatalf("different seeds, same telemetry: %v", a)
	}
}

func TestMQTTMalformedAndGarbageRefused(t *testing.T) {
	s := startSim(t, Scenario{Seed: 6, Devices: []DeviceSpec{{ID: "robot1", Type: TypeRover, Telemetry: time.Hour}}})
	d := s.Device("robot1")
	tc := newClient(t, s.BrokerURL(), prefix+"/dev/robot1/telemetry")
	for i := 0; i < 10; i++ {
		name, err := d.SendMalformed()
		if err != nil {
			t.Fatal(err)
		}
		m := tc.next(5*time.Second, nil)
		if m.err == nil {
			t.Fatalf("malformed %s decoded: %+v", name, m.env)
		}
		if err := d.SendGarbage(40); err != nil {
			t.Fatal(err)
		}
		if m := tc.next(5*time.Second, nil); m.err == nil {
			t.Fatalf("garbage decoded: %x", m.raw)
		}
	}
	st := d.State()
	if st.Counters.Garbage != 10 || st.Counters.Malformed != 10 {
		t.Fatalf("counters %+v", st.Counters)
	}
	// With the faults on, every message is preceded by injections, and the
	// real telemetry still gets through.
	if err := d.SetFaults(Faults{Garbage: 1, Malformed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.EmitTelemetry(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for {
		m := tc.next(5*time.Second, nil)
		if m.err == nil {
			break
		}
		bad++
	}
	if bad != 2 {
		t.Fatalf("%d refused messages before the telemetry, want 2", bad)
	}
}

func TestExternalBrokerCleanCloseAndBootRecovery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := mqtt.StartBroker(ctx, mqtt.BrokerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	url := "tcp://" + b.Addr()
	sc := Scenario{Seed: 8, Broker: url, TopicPrefix: prefix, Devices: []DeviceSpec{{ID: "robot1", Type: TypeRover}}}

	s1, err := Start(ctx, sc, Options{Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.WaitReady(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s1.BrokerURL() != url {
		t.Fatalf("broker URL %s", s1.BrokerURL())
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// A clean stop leaves the retained offline state with seq s+1.
	tc := newClient(t, url, prefix+"/dev/robot1/state")
	m := tc.next(5*time.Second, func(m mqttMsg) bool { return m.env != nil && m.env.State != nil })
	if st := m.env.State; st.Online || st.Seq != 1<<32|1 || !m.retained {
		t.Fatalf("retained state after Close: %+v retained=%v", st, m.retained)
	}
	// The next run continues the boot counter from the retained state, so
	// that its states are not taken for stale ones.
	s2, err := Start(ctx, sc, Options{Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.WaitReady(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if boot := s2.Device("robot1").Boot(); boot != 2 {
		t.Fatalf("boot %d after a previous run with boot 1, want 2", boot)
	}
	m = tc.next(5*time.Second, func(m mqttMsg) bool { return m.env != nil && m.env.State != nil && m.env.State.Online })
	if m.env.State.Seq != 2<<32 {
		t.Fatalf("online state seq %#x, want 2<<32", m.env.State.Seq)
	}
}
