package sim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

func serialScenario(t *testing.T, specs ...DeviceSpec) Scenario {
	return Scenario{Seed: 7, TimeScale: 4, PtyDir: t.TempDir(), Devices: specs}
}

func TestSerialRelayHelloAndCommand(t *testing.T) {
	s := startSim(t, serialScenario(t, DeviceSpec{ID: "relay1", Type: TypeRelay, Transport: TransportSerial, Telemetry: 400 * time.Millisecond}))
	d := s.Device("relay1")
	path := filepath.Join(s.Scenario().PtyDir, "relay1")
	if d.LinkPath() != path {
		t.Fatalf("link path %q, want %q", d.LinkPath(), path)
	}
	if target, err := os.Readlink(path); err != nil || target != d.PtyPath() {
		t.Fatalf("symlink %s -> %q (%v), want %q", path, target, err, d.PtyPath())
	}
	b := openBridge(t, path)
	h := b.hello(t, 5*time.Second)
	if h.Device != "relay1" || h.Boot != 1 || h.Profile != "relay" || h.Firmware != Firmware || h.MaxFrame != wire.MaxFramePayload {
		t.Fatalf("hello %+v", h)
	}
	if err := d.WaitOnline(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	b.send(t, &wire.Command{ID: 11, Verb: "on", Args: map[string]any{"channel": int64(3)}, IdemKey: "s1"})
	if r := b.reply(t, 11, 5*time.Second); r.Outcome != wire.OutcomeDone || r.Result["state"] != true || r.Device != "relay1" {
		t.Fatalf("reply %+v", r)
	}
	b.send(t, &wire.Command{ID: 12, Verb: "on", Args: map[string]any{"channel": int64(3)}, IdemKey: "s1"})
	if r := b.reply(t, 12, 5*time.Second); r.Outcome != wire.OutcomeDone {
		t.Fatalf("repeat %+v", r)
	}
	if n := countKey(s.Executions(), "s1"); n != 1 {
		t.Fatalf("s1 executed %d times", n)
	}
	// Telemetry shows the channel closed.
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case e := <-b.envs:
			if e.Telemetry != nil {
				if e.Telemetry.Values["ch3"] != true {
					t.Fatalf("telemetry %v, want ch3 true", e.Telemetry.Values)
				}
				got = true
			}
		case <-deadline:
			t.Fatal("no telemetry")
		}
	}
	// Garbage and malformed frames are dropped by the bridge's decoder; the
	// link stays up and nothing is delivered from them.
	for len(b.drops) > 0 {
		<-b.drops
	}
	before := b.l.Stats()
	for i := 0; i < 8; i++ {
		if err := d.SendGarbage(64); err != nil {
			t.Fatal(err)
		}
		if _, err := d.SendMalformed(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	after := b.l.Stats()
	if drops := after.DropsTotal() - before.DropsTotal(); drops < 16 {
		t.Fatalf("bridge dropped %d frames for 8 garbage bursts and 8 malformed, want >= 16 (%v)", drops, after.Drops)
	}
	if !b.l.Up() {
		t.Fatal("link went down")
	}
	b.send(t, &wire.Command{ID: 13, Verb: "toggle", Args: map[string]any{"channel": int64(3)}})
	if r := b.reply(t, 13, 5*time.Second); r.Outcome != wire.OutcomeDone || r.Result["state"] != false {
		t.Fatalf("after faults %+v", r)
	}
}

func TestSerialUnplugReplugReboot(t *testing.T) {
	s := startSim(t, serialScenario(t,
		DeviceSpec{ID: "relay1", Type: TypeRelay, Transport: TransportSerial, Telemetry: time.Hour},
		DeviceSpec{ID: "relay2", Type: TypeRelay, Transport: TransportSerial, Link: "usb-relay2", Telemetry: time.Hour, UnplugPowersOff: true, Faults: Faults{BootBanner: true}},
	))
	d := s.Device("relay1")
	path := d.LinkPath()
	b := openBridge(t, path)
	b.hello(t, 5*time.Second)
	b.send(t, &wire.Command{ID: 1, Verb: "on", Args: map[string]any{"channel": int64(1)}, IdemKey: "u1"})
	b.reply(t, 1, 5*time.Second)

	if err := d.Unplug(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err == nil {
			t.Fatal("bridge link ended without an error after unplug")
		}
		t.Logf("bridge after unplug: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("bridge link still running after unplug")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("symlink after unplug: %v", err)
	}
	if err := d.Replug(); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(path); err != nil || target != d.PtyPath() {
		t.Fatalf("symlink after replug -> %q (%v), want %q", target, err, d.PtyPath())
	}
	b2 := openBridge(t, path)
	if h := b2.hello(t, 5*time.Second); h.Device != "relay1" || h.Boot != 1 {
		t.Fatalf("hello after replug: %+v (self-powered: same boot)", h)
	}
	// Same power: the idempotency cache survived the cable.
	b2.send(t, &wire.Command{ID: 2, Verb: "on", Args: map[string]any{"channel": int64(1)}, IdemKey: "u1"})
	if r := b2.reply(t, 2, 5*time.Second); r.Outcome != wire.OutcomeDone {
		t.Fatalf("repeat after replug: %+v", r)
	}
	if n := countKey(s.Executions(), "u1"); n != 1 {
		t.Fatalf("u1 executed %d times", n)
	}

	// Reboot: a new hello with the next boot counter, state lost.
	if err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	if h := b2.hello(t, 5*time.Second); h.Boot != 2 {
		t.Fatalf("hello after reboot: %+v", h)
	}
	if st := d.State(); st.Values["ch1"] != false || st.Boot != 2 {
		t.Fatalf("after reboot: %+v", st)
	}
	b2.send(t, &wire.Command{ID: 3, Verb: "on", Args: map[string]any{"channel": int64(1)}, IdemKey: "u1"})
	b2.reply(t, 3, 5*time.Second)
	if n := countKey(s.Executions(), "u1"); n != 2 {
		t.Fatalf("u1 executed %d times after reboot, want 2 (cache lost)", n)
	}

	// A bus-powered device boots again when replugged, banner first.
	d2 := s.Device("relay2")
	if filepath.Base(d2.LinkPath()) != "usb-relay2" {
		t.Fatalf("link %s", d2.LinkPath())
	}
	b3 := openBridge(t, d2.LinkPath())
	if h := b3.hello(t, 5*time.Second); h.Boot != 1 {
		t.Fatalf("relay2 hello %+v", h)
	}
	old := d2.PtyPath()
	if err := d2.Replug(); err != nil {
		t.Fatal(err)
	}
	if d2.PtyPath() == old {
		t.Fatalf("replug kept the pty %s", old)
	}
	<-b3.done
	b4 := openBridge(t, d2.LinkPath())
	if h := b4.hello(t, 5*time.Second); h.Boot != 2 {
		t.Fatalf("relay2 hello after power cycle %+v, want boot 2", h)
	}
}

func TestSerialOfflineOnline(t *testing.T) {
	s := startSim(t, serialScenario(t, DeviceSpec{ID: "rv", Type: TypeRover, Transport: TransportSerial, Baud: 115200, Armed: true}))
	d := s.Device("rv")
	b := openBridge(t, d.LinkPath())
	b.hello(t, 5*time.Second)
	b.send(t, &wire.Command{ID: 1, Verb: "move", Args: map[string]any{"distance": 20.0, "speed": 1.0}})
	if r := b.reply(t, 1, 5*time.Second); r.Outcome != wire.OutcomeDone {
		t.Fatalf("paced move: %+v", r)
	}
	if err := d.GoOffline(); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitOffline(within(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The bridge notices the silence (3 s) and goes down.
	deadline := time.Now().Add(6 * time.Second)
	for b.l.Up() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if b.l.Up() {
		t.Fatal("bridge link still up after the device went silent")
	}
	if err := d.GoOnline(); err != nil {
		t.Fatal(err)
	}
	if h := b.hello(t, 5*time.Second); h.Boot != 1 {
		t.Fatalf("hello after online: %+v", h)
	}
}
