package module

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/memory"
)

// TestRevokedViewerGetsNoTelemetry: a reload that takes a user off a
// device's access lists ends the user's watch: no telemetry, alert or
// presence notice reaches them afterwards (docs/security.md).
func TestRevokedViewerGetsNoTelemetry(t *testing.T) {
	e := newEnv(t, ConfigItem{"watch_interval", "100ms"})
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	e.m.OnLogin("carol", true)
	contains(t, e.reply(e.say("carol", "robot1", "watch")).text, "Watching robot1")
	dev.Telemetry(map[string]any{"battery": 50.0})
	e.waitMsg("telemetry to carol", func(s sentMsg) bool { return s.p.To == "carol" && s.p.RefID == 0 })

	path := e.m.cfg.DevicesFile
	writeFile(t, path, strings.Replace(readFile(t, path), "operators: [bob], viewers: [carol]}", "operators: [bob]}", 1))
	contains(t, e.reply(e.say("root", "iot", "reload")).text, "reloaded")
	e.settle()
	before := len(e.host.messages())
	time.Sleep(150 * time.Millisecond)
	dev.Telemetry(map[string]any{"battery": 10.0})
	dev.SetOnline(false, "test")
	dev.SetOnline(true, "test")
	time.Sleep(300 * time.Millisecond)
	e.settle()
	for _, s := range e.host.messages()[before:] {
		if s.p.To == "carol" {
			t.Fatalf("carol, no longer a viewer of robot1, got %q", s.text)
		}
	}
	contains(t, e.reply(e.say("carol", "robot1", "status")).text, "not allowed")
}

// TestOversizedMessageRefusedWithoutCopy: a chat message over max_message
// is answered "Message too long" and on_message does not copy it (no large
// allocation on mesibo's thread).
func TestOversizedMessageRefusedWithoutCopy(t *testing.T) {
	e := newEnv(t)
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = 'x'
	}
	p := Params{ID: 4242, From: "bob", To: "robot1"}
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	for i := 0; i < 10; i++ {
		p.ID = uint64(4242 + i)
		if r := e.m.OnMessage(&p, big); r != Consumed {
			t.Fatalf("result %d, want CONSUMED", r)
		}
	}
	runtime.ReadMemStats(&b)
	if d := b.TotalAlloc - a.TotalAlloc; d > 1<<20 {
		t.Fatalf("10 oversized messages of 8 MiB allocated %d bytes in on_message", d)
	}
	contains(t, e.reply(4242).text, "Message too long: at most 4096 bytes are read.")
	if n := e.terminal(4242); n != 1 {
		t.Fatalf("%d answers", n)
	}
}

// TestMetricsLoopbackByDefault: without metrics_listen the endpoint is on
// 127.0.0.1:9469; it binds elsewhere only when configured.
func TestMetricsLoopbackByDefault(t *testing.T) {
	cfg, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(cfg.MetricsListen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("default metrics_listen %q is not loopback", cfg.MetricsListen)
	}
	m, err := New([]ConfigItem{{"metrics_listen", "127.0.0.1:0"}}, &fakeHost{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h, _, _ := net.SplitHostPort(m.MetricsAddr())
	if !net.ParseIP(h).IsLoopback() {
		t.Fatalf("metrics on %s", m.MetricsAddr())
	}
}

// TestRestartedDeviceCommandsReportedLost: a device that comes back with a
// new boot counter lost its state and its idempotency cache, so a command
// it may have received is not sent again (it could run twice): it ends
// failed, "may or may not have run". A command it never got runs as usual;
// after a reconnect without a reboot, commands are sent again (the device's
// cache answers them).
func TestRestartedDeviceCommandsReportedLost(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	seq := uint64(1000)
	pres := func(online bool, boot uint64) {
		seq++
		e.m.post(event{kind: evPresence, dev: "rover-1", presence: transports.Presence{Online: online, Seq: seq, Boot: boot, At: time.Now()}})
		e.settle()
	}
	pres(true, 1)
	dev.SetHandler(func(c *wire.Command) []wire.Reply { return nil }) // takes it, never answers
	id := e.say("bob", "robot1", "stop")
	e.waitUntil("the device got the command", func() bool { return len(dev.Commands()) == 1 })
	pres(false, 0)
	pres(true, 1) // same boot: sent again
	e.waitUntil("the resend", func() bool { return len(dev.Commands()) == 2 })
	pres(false, 0)
	pres(true, 2) // rebooted: reported lost, not sent again
	r := e.reply(id)
	contains(t, r.text, "robot1 restarted while stop was pending; it may or may not have run")
	time.Sleep(100 * time.Millisecond)
	e.settle()
	if n := len(dev.Commands()); n != 2 {
		t.Fatalf("the device got the command %d times after its reboot", n-2)
	}
	if n := e.terminal(id); n != 1 {
		t.Fatalf("%d final answers", n)
	}
	// a reboot while online (a new hello on serial) too
	id = e.say("bob", "robot1", "stop")
	e.waitUntil("the device got the second command", func() bool { return len(dev.Commands()) == 3 })
	pres(true, 3)
	contains(t, e.reply(id).text, "robot1 restarted while stop was pending")
	dev.SetHandler(memory.Done)
	contains(t, e.reply(e.say("bob", "robot1", "stop")).text, "stop: done")
}

// TestLinkDownHoldsCommandsUntilStateSeen: while the transport's link is
// down the bridge cannot see a device restart, and a command sent again to
// a device that restarted unseen would run twice (its idempotency cache is
// gone). So after the link comes back a device's commands wait until its
// state is seen again: the same state (a retained state on resubscribing)
// means no restart and they are sent again; a new boot counter means they
// are reported lost. Every command carries the boot it is meant for.
func TestLinkDownHoldsCommandsUntilStateSeen(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	seq := uint64(1000)
	pres := func(next bool, boot uint64) {
		if next {
			seq++
		}
		e.m.post(event{kind: evPresence, dev: "rover-1", presence: transports.Presence{Online: true, Seq: seq, Boot: boot, At: time.Now()}})
		e.settle()
	}
	link := func(up bool) {
		e.m.post(event{kind: evLink, transport: "memory", online: up, detail: "test"})
		e.settle()
	}
	dev.SetOnline(true, "test")
	pres(true, 7)
	idle := e.mem.Device("rover-2")
	idle.SetOnline(true, "test")
	dev.SetHandler(func(c *wire.Command) []wire.Reply { return nil }) // takes it, never answers
	first := e.say("bob", "robot1", "stop")
	e.waitUntil("the device got the command", func() bool { return len(dev.Commands()) == 1 })
	if b := dev.Commands()[0].Boot; b != 7 {
		t.Fatalf("the command is meant for boot %d, want 7 (the device's)", b)
	}

	link(false)
	link(true)
	second := e.say("bob", "robot1", "stop")
	other := e.say("bob", "robot2", "stop") // a device with nothing in flight: new commands wait too
	time.Sleep(100 * time.Millisecond)
	e.settle()
	if n, m := len(dev.Commands()), len(idle.Commands()); n != 1 || m != 0 {
		t.Fatalf("before their states were seen again the devices got %d and %d commands, want 1 and 0", n, m)
	}
	idle.SetOnline(true, "seen again")
	contains(t, e.reply(other).text, "stop: done")
	pres(false, 7) // the same retained state again: no restart
	e.waitUntil("the resend", func() bool { return len(dev.Commands()) == 2 })
	if c := dev.Commands()[1]; c.ID != dev.Commands()[0].ID || c.Boot != 7 {
		t.Fatalf("after the state was confirmed got %+v, want the first command again, for boot 7", c)
	}

	link(false)
	link(true)
	dev.SetHandler(memory.Done)
	pres(true, 8) // it restarted while the bridge was cut off
	contains(t, e.reply(first).text, "robot1 restarted while stop was pending; it may or may not have run")
	// the second (one command at a time) never went out: it runs, for boot 8
	contains(t, e.reply(second).text, "stop: done")
	cmds := dev.Commands()
	if len(cmds) != 3 || cmds[2].ID == cmds[0].ID || cmds[2].Boot != 8 {
		t.Fatalf("after the restart the device got %+v, want only the second command, for boot 8", cmds[2:])
	}
	for _, id := range []uint64{first, second} {
		if n := e.terminal(id); n != 1 {
			t.Fatalf("message %d: %d final answers", id, n)
		}
	}
}

// TestDeviceRefusingAnotherBootReportedLost: a device that gets a command
// meant for another of its boots answers failed, code 9 (restarted); the
// user learns that it may or may not have run, not a device error.
func TestDeviceRefusingAnotherBootReportedLost(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	e.m.post(event{kind: evPresence, dev: "rover-1", presence: transports.Presence{Online: true, Seq: 5000, Boot: 3, At: time.Now()}})
	dev.SetHandler(func(c *wire.Command) []wire.Reply {
		return []wire.Reply{{ID: c.ID, Outcome: wire.OutcomeFailed, Code: int64(wire.ReplyRestarted), Text: "sent to boot 3, this is boot 4: not run"}}
	})
	id := e.say("bob", "robot1", "stop")
	contains(t, e.reply(id).text, "robot1 restarted while stop was pending; it may or may not have run")
}

// TestUnconfirmedDeviceExpiryExplained: a command held because the device's
// state was not seen again after the link came back expires saying so.
func TestUnconfirmedDeviceExpiryExplained(t *testing.T) {
	e := newEnv(t, ConfigItem{"command_ttl", "1s"})
	e.mem.Device("rover-1").SetOnline(true, "test")
	e.m.post(event{kind: evLink, transport: "memory", online: false, detail: "test"})
	e.m.post(event{kind: evLink, transport: "memory", online: true, detail: "test"})
	contains(t, e.reply(e.say("bob", "robot1", "stop")).text,
		"robot1 has not been heard from since the bridge's memory link came back; stop expired after 1 s.")
}
