package itest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	gosync "sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// Fault kinds the soak injects.
const (
	fBrokerKill = "broker-kill" // SIGKILL Mosquitto, restart 1-3 s later
	fBrokerStop = "broker-stop" // SIGTERM Mosquitto (clean, saves), restart 1-3 s later
	fUnplug     = "unplug"      // serial: pull the cable (pty closed), replug 0.3-2 s later
	fReboot     = "reboot"      // a device reboots (state and idempotency cache lost)
	fOffline    = "offline"     // MQTT: connection dropped (last will), back 1-3 s later
	fGarbage    = "garbage"     // random bytes from a device
	fMalformed  = "malformed"   // an envelope or frame the protocol refuses (wire.Cases)
	fFlood      = "flood"       // telemetry at 100/s for 2 s
	fLogout     = "logout"      // a user logs out, back 1-4 s later
	fReload     = "reload"      // devices.yaml rewritten: the watcher reloads it
	fSpoof      = "spoof"       // a rogue MQTT client: cross-device replies and telemetry, unknown devices, oversized payloads
	// while the broker is down, up to 3 MQTT devices running a command
	// reboot: the bridge, cut off, cannot see it, and the broker may keep
	// their earlier boot's retained state
	fOutageReboot = "reboot-in-outage"
)

// spoofMarker is in every value a spoofer sends: it must never reach a user.
const spoofMarker = 987654

var allFaults = []string{fUnplug, fReboot, fOffline, fGarbage, fMalformed, fFlood, fLogout, fReload, fSpoof}

type faulter struct {
	w      *soakWorld
	st     *stack.Stack
	sh     *soakHost
	broker *soakBroker
	rng    *rand.Rand
	logf   func(format string, args ...any)

	mu       gosync.Mutex
	busy     map[string]bool // devices with a restoration pending
	counts   map[string]int  // injected, by kind
	failures map[string]int  // could not inject (device offline ...), by kind
	restore  gosync.WaitGroup
	quit     chan struct{} // closed by close: pending restorations are skipped
	spoofN   int
}

func newFaulter(w *soakWorld, st *stack.Stack, sh *soakHost, b *soakBroker, seed uint64, logf func(string, ...any)) *faulter {
	return &faulter{w: w, st: st, sh: sh, broker: b, rng: rand.New(rand.NewPCG(seed, 0xfa17)), logf: logf,
		busy: map[string]bool{}, counts: map[string]int{}, failures: map[string]int{}, quit: make(chan struct{})}
}

func (f *faulter) count(kind string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.failures[kind]++
		return
	}
	f.counts[kind]++
}

// later runs fn after d, in the background (settle waits for it), unless
// close comes first.
func (f *faulter) later(d time.Duration, fn func()) {
	f.restore.Add(1)
	go func() {
		defer f.restore.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fn()
		case <-f.quit:
		}
	}()
}

// close drops pending restorations (a test that fails early) and waits for
// their goroutines.
func (f *faulter) close() {
	f.mu.Lock()
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	f.mu.Unlock()
	f.restore.Wait()
}

func (f *faulter) jitter(lo, hi time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)+1))
}

func (f *faulter) intn(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.IntN(n)
}

// device picks a device of the transport ("" = any) with no restoration
// pending, and marks it busy when hold is set. Half of the time it prefers
// a device that is running a command (the fault then hits it mid-command).
func (f *faulter) device(transport string, hold bool) *soakDevice {
	f.mu.Lock()
	defer f.mu.Unlock()
	running := f.rng.IntN(2) == 0
	for i := range 100 {
		d := f.w.devices[f.rng.IntN(len(f.w.devices))]
		if (transport != "" && d.transport != transport) || f.busy[d.addr] {
			continue
		}
		if running && i < 80 && len(f.st.Sim.Device(d.addr).State().Running) == 0 {
			continue
		}
		if hold {
			f.busy[d.addr] = true
		}
		return d
	}
	return nil
}

// rebootRunning reboots up to n MQTT devices that are running a command
// (the bridge holds it unfinished and sends it again when it is back).
func (f *faulter) rebootRunning(n int) {
	f.mu.Lock()
	var picked []string
	for _, i := range f.rng.Perm(len(f.w.devices)) {
		d := f.w.devices[i]
		if len(picked) == n {
			break
		}
		if d.transport == sim.TransportMQTT && !f.busy[d.addr] && len(f.st.Sim.Device(d.addr).State().Running) > 0 {
			picked = append(picked, d.addr)
		}
	}
	f.mu.Unlock()
	for _, a := range picked {
		f.count(fOutageReboot, f.st.Sim.Device(a).Reboot())
	}
}

func (f *faulter) release(addr string) {
	f.mu.Lock()
	delete(f.busy, addr)
	f.mu.Unlock()
}

// run injects one fault every `every` until ctx ends: first each kind once,
// then at random; the broker is restarted at the given times.
func (f *faulter) run(ctx context.Context, every time.Duration, brokerAt []time.Duration) {
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	i := 0
	nextBroker := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if nextBroker < len(brokerAt) && time.Since(start) >= brokerAt[nextBroker] {
			kind := fBrokerKill
			if nextBroker%2 == 1 {
				kind = fBrokerStop
			}
			nextBroker++
			f.inject(kind)
			continue
		}
		kind := allFaults[i%len(allFaults)]
		if i >= len(allFaults) {
			kind = allFaults[f.intn(len(allFaults))]
		}
		i++
		f.inject(kind)
	}
}

func (f *faulter) inject(kind string) {
	switch kind {
	case fBrokerKill, fBrokerStop:
		sig := syscall.SIGKILL
		if kind == fBrokerStop {
			sig = syscall.SIGTERM
		}
		err := f.broker.Stop(sig)
		f.count(kind, err)
		if err == nil {
			f.rebootRunning(3)
		}
		f.later(f.jitter(time.Second, 3*time.Second), func() {
			if err := f.broker.Start(); err != nil {
				f.logf("soak: restarting mosquitto: %v", err)
			}
		})
	case fUnplug:
		d := f.device(sim.TransportSerial, true)
		if d == nil {
			return
		}
		dev := f.st.Sim.Device(d.addr)
		err := dev.Unplug()
		f.count(kind, err)
		f.later(f.jitter(300*time.Millisecond, 2*time.Second), func() {
			if err := dev.Replug(); err != nil {
				f.logf("soak: replug %s: %v", d.addr, err)
			}
			f.release(d.addr)
		})
	case fReboot:
		if d := f.device("", false); d != nil {
			f.count(kind, f.st.Sim.Device(d.addr).Reboot())
		}
	case fOffline:
		d := f.device(sim.TransportMQTT, true)
		if d == nil {
			return
		}
		dev := f.st.Sim.Device(d.addr)
		f.count(kind, dev.GoOffline())
		f.later(f.jitter(time.Second, 3*time.Second), func() {
			_ = dev.GoOnline()
			f.release(d.addr)
		})
	case fGarbage:
		if d := f.device("", false); d != nil {
			f.count(kind, f.st.Sim.Device(d.addr).SendGarbage(8+f.intn(250)))
		}
	case fMalformed:
		if d := f.device("", false); d != nil {
			_, err := f.st.Sim.Device(d.addr).SendMalformed()
			f.count(kind, err)
		}
	case fFlood:
		if d := f.device("", false); d != nil {
			f.count(kind, f.st.Sim.Device(d.addr).FloodTelemetry(100, 2*time.Second))
		}
	case fLogout:
		u := f.w.users[f.intn(len(f.w.users))]
		if !f.sh.isOnline(u.name) {
			return
		}
		f.sh.login(u.name, false)
		f.count(kind, nil)
		f.later(f.jitter(time.Second, 4*time.Second), func() { f.sh.login(u.name, true) })
	case fReload:
		b, err := os.ReadFile(f.st.DevicesFile)
		if err == nil {
			err = os.WriteFile(f.st.DevicesFile, b, 0o644)
		}
		f.count(kind, err)
	case fSpoof:
		f.count(kind, f.spoof())
	}
}

var acceptedRE = regexp.MustCompile(`^iot: command (\d+) "([^"]+)" from (\S+) to (\S+) accepted \(ttl [^,]+, key (\S+)\)`)

// spoof connects a rogue client and publishes what a compromised device on
// an open broker might: a reply on its own topic to another device's
// command, a reply and telemetry that claim another device, telemetry of a
// device not in devices.yaml and a payload over mqtt_max_message. Every
// value carries spoofMarker.
func (f *faulter) spoof() error {
	f.mu.Lock()
	f.spoofN++
	n := f.spoofN
	f.mu.Unlock()
	a := f.device(sim.TransportMQTT, false)
	b := f.device("", false)
	if a == nil || b == nil || a == b {
		return fmt.Errorf("no devices to spoof")
	}
	// a command of another device, open if possible, from the transcript
	var victim uint64
	ended := map[string]bool{}
	evs := f.st.Host.Since(max(0, f.st.Host.Len()-3000))
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind != "log" {
			continue
		}
		if m := terminalRE.FindStringSubmatch(evs[i].Text); m != nil {
			ended[m[1]] = true
		}
		if m := acceptedRE.FindStringSubmatch(evs[i].Text); m != nil && m[4] != a.addr {
			if victim == 0 || !ended[m[1]] {
				victim, _ = strconv.ParseUint(m[1], 10, 64)
			}
			if !ended[m[1]] {
				break
			}
		}
	}
	opts := paho.NewClientOptions().AddBroker(f.broker.URL()).SetClientID(fmt.Sprintf("soak-spoofer-%d", n)).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(2 * time.Second).
		SetWriteTimeout(2 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("spoofer cannot connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	prefix := sim.DefaultTopicPrefix
	marker := map[string]any{"odometry": float64(spoofMarker) + 0.25, "temp": float64(spoofMarker), "spoof": int64(spoofMarker)}
	var msgs []struct {
		topic   string
		payload []byte
	}
	add := func(topic string, env *wire.Envelope) {
		if p, err := wire.Marshal(env); err == nil {
			msgs = append(msgs, struct {
				topic   string
				payload []byte
			}{topic, p})
		}
	}
	if victim != 0 {
		// a's own reply topics, b's command: attributed to a, refused by the core
		add(prefix+"/bridge/stack/reply/"+a.addr, &wire.Envelope{Kind: wire.KindReply, Reply: &wire.Reply{ID: victim, Outcome: wire.OutcomeDone, Result: marker}})
		add(prefix+"/dev/"+a.addr+"/reply", &wire.Envelope{Kind: wire.KindReply, Reply: &wire.Reply{ID: victim, Outcome: wire.OutcomeDone, Result: marker}})
		// claiming b on a's topic: refused by the transport
		add(prefix+"/bridge/stack/reply/"+a.addr, &wire.Envelope{Kind: wire.KindReply, Reply: &wire.Reply{ID: victim, Device: b.addr, Outcome: wire.OutcomeDone, Result: marker}})
	}
	add(prefix+"/dev/"+a.addr+"/telemetry", &wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{Device: b.addr, Seq: 1, Values: marker}})
	add(prefix+"/dev/ghost-"+strconv.Itoa(n)+"/telemetry", &wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{Device: "ghost-" + strconv.Itoa(n), Seq: 1, Values: marker}})
	// over mqtt_max_message (8 KiB in the soak) but under the broker's limit
	big := make([]byte, 20000)
	for i := range big {
		big[i] = byte('0' + i%10)
	}
	msgs = append(msgs, struct {
		topic   string
		payload []byte
	}{prefix + "/dev/" + a.addr + "/telemetry", big})
	for _, m := range msgs {
		t := c.Publish(m.topic, 1, false, m.payload)
		if !t.WaitTimeout(3*time.Second) || t.Error() != nil {
			return fmt.Errorf("spoofer publish: %v", t.Error())
		}
	}
	return nil
}

// settle undoes what is pending: the broker runs, every device is plugged
// in and online, every user logged in.
func (f *faulter) settle() error {
	f.restore.Wait()
	if !f.broker.Running() {
		if err := f.broker.Start(); err != nil {
			return err
		}
	}
	for _, d := range f.w.devices {
		dev := f.st.Sim.Device(d.addr)
		if d.transport == sim.TransportSerial && !dev.State().Plugged {
			if err := dev.Replug(); err != nil {
				return err
			}
		}
	}
	for _, u := range f.w.users {
		if !f.sh.isOnline(u.name) {
			f.sh.login(u.name, true)
		}
	}
	return nil
}

func (f *faulter) figures() (map[string]int, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := map[string]int{}
	for k, v := range f.counts {
		c[k] = v
	}
	e := map[string]int{}
	for k, v := range f.failures {
		e[k] = v
	}
	return c, e
}
