package module

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/memory"
)

func contains(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("got %q, want it to contain %q", got, want)
	}
}

func TestPassesOtherTraffic(t *testing.T) {
	e := newEnv(t)
	for _, p := range []Params{{ID: 1, From: "alice", To: "bob"}, {ID: 2, From: "alice", To: "x", GroupID: 99}} {
		if r := e.m.OnMessage(&p, []byte("hello")); r != Pass {
			t.Fatalf("%+v: got %d, want PASS", p, r)
		}
	}
	p := Params{ID: 3, From: "alice", To: "bob"}
	allocs := testing.AllocsPerRun(1000, func() { e.m.OnMessage(&p, []byte("hello")) })
	if allocs != 0 {
		t.Fatalf("PASS path allocates %v times per message, want 0", allocs)
	}
}

func TestBridgePing(t *testing.T) {
	e := newEnv(t)
	id := e.say("alice", "iot", "ping")
	r := e.reply(id)
	contains(t, r.text, "pong mesibo-iot "+Version)
	if r.p.To != "alice" || r.p.From != "iot" || r.p.Flags&FlagDeliveryReceipt == 0 {
		t.Fatalf("reply params %+v", r.p)
	}
	id = e.say("carol", "iot", "devices")
	r = e.reply(id)
	contains(t, r.text, "robot1 — rover, offline (viewer)")
	contains(t, r.text, "env1 — envsensor")
	if strings.Contains(r.text, "robot2") {
		t.Fatalf("carol may not see robot2: %q", r.text)
	}
}

func TestCommandAllowedDone(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	id := e.say("bob", "robot1", "move 10cm speed=0.25")
	r := e.reply(id)
	contains(t, r.text, "move: done")
	if r.p.From != "robot1" || r.p.To != "bob" {
		t.Fatalf("reply params %+v", r.p)
	}
	cmds := dev.Commands()
	if len(cmds) != 1 || cmds[0].Verb != "move" || cmds[0].Args["distance"] != 10.0 || cmds[0].Args["speed"] != 0.25 {
		t.Fatalf("device got %+v", cmds)
	}
	if cmds[0].Device != "rover-1" || cmds[0].IdemKey == "" || cmds[0].Deadline <= time.Now().UnixMilli() {
		t.Fatalf("command envelope %+v", cmds[0])
	}
	if n := e.terminal(id); n != 1 {
		t.Fatalf("%d terminal replies, want 1", n)
	}
}

func TestDeviceFailureIsReported(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	dev.SetHandler(func(c *wire.Command) []wire.Reply {
		return []wire.Reply{{ID: c.ID, Outcome: wire.OutcomeFailed, Code: 6, Text: "motors disarmed"}}
	})
	id := e.say("bob", "robot1", "move 5")
	contains(t, e.reply(id).text, "motors disarmed")
}

func TestDenied(t *testing.T) {
	e := newEnv(t)
	e.mem.Device("rover-1").SetOnline(true, "test")
	contains(t, e.reply(e.say("mallory", "robot1", "move 10")).text, "not allowed to use robot1")
	contains(t, e.reply(e.say("carol", "robot1", "move 10")).text, "may watch robot1 but not command it")
	contains(t, e.reply(e.say("bob", "robot1", "arm")).text, "only an owner")
	if n := len(e.mem.Device("rover-1").Commands()); n != 0 {
		t.Fatalf("device received %d commands, want 0", n)
	}
}

func TestMalformed(t *testing.T) {
	e := newEnv(t)
	contains(t, e.reply(e.say("bob", "robot1", "mvoe 10")).text, "did you mean 'move'")
	contains(t, e.reply(e.say("bob", "robot1", "move 10 speed=3")).text, "speed must be between 0 and 1")
	contains(t, e.reply(e.say("bob", "robot1", "help")).text, "move <distance")
}

func TestOfflineQueuedThenRuns(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	id := e.say("bob", "robot1", "stop")
	note := e.waitMsg("queued note", func(s sentMsg) bool { return s.p.RefID == id && s.p.Flags&FlagTransient != 0 })
	contains(t, note.text, "robot1 is offline")
	dev.SetOnline(true, "test")
	contains(t, e.reply(id).text, "stop: done")
}

func TestOfflineExpires(t *testing.T) {
	e := newEnv(t, ConfigItem{"command_ttl", "1s"})
	id := e.say("bob", "robot1", "stop")
	r := e.reply(id)
	contains(t, r.text, "robot1 is offline; stop expired after 1 s")
	e.mem.Device("rover-1").SetOnline(true, "test")
	e.settle()
	time.Sleep(50 * time.Millisecond)
	if n := len(e.mem.Device("rover-1").Commands()); n != 0 {
		t.Fatalf("expired command was sent %d times", n)
	}
	if n := e.terminal(id); n != 1 {
		t.Fatalf("%d terminal replies, want 1", n)
	}
}

func TestMessageExpiryBoundsTTL(t *testing.T) {
	e := newEnv(t)
	e.id++
	p := Params{ID: e.id, From: "bob", To: "robot1", Expiry: 1}
	e.m.OnMessage(&p, []byte("stop"))
	contains(t, e.reply(p.ID).text, "expired after 1 s")
}

func TestNoAnswerExpires(t *testing.T) {
	e := newEnv(t, ConfigItem{"command_ttl", "1s"})
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	dev.SetHandler(func(c *wire.Command) []wire.Reply { return nil })
	contains(t, e.reply(e.say("bob", "robot1", "stop")).text, "no answer from robot1 within 1 s")
}

func TestSentTwiceRunsOnce(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	p := Params{ID: 77, From: "bob", To: "robot1"}
	e.m.OnMessage(&p, []byte("stop"))
	e.m.OnMessage(&p, []byte("stop"))
	e.reply(77)
	e.settle()
	if n := len(dev.Commands()); n != 1 {
		t.Fatalf("device got %d commands, want 1", n)
	}
	if n := e.terminal(77); n != 1 {
		t.Fatalf("%d terminal replies, want 1", n)
	}
}

func TestResendAfterReconnectRunsOnce(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	// the device takes the command but goes away before answering
	dev.SetHandler(func(c *wire.Command) []wire.Reply { return nil })
	id := e.say("bob", "robot1", "stop")
	e.waitUntil("the device got the command", func() bool { return len(dev.Commands()) == 1 })
	dev.SetOnline(false, "unplugged")
	dev.SetHandler(func(c *wire.Command) []wire.Reply { return nil })
	dev.SetOnline(true, "replugged")
	e.waitUntil("the resend", func() bool { return len(dev.Commands()) == 2 })
	cmds := dev.Commands()
	if cmds[0].IdemKey != cmds[1].IdemKey || cmds[0].ID != cmds[1].ID {
		t.Fatalf("resend changed identity: %+v vs %+v", cmds[0], cmds[1])
	}
	if runs := dev.Runs(cmds[0].IdemKey); runs != 1 {
		t.Fatalf("ran %d times", runs)
	}
	_ = id
}

func TestDangerousConfirm(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	id := e.say("alice", "robot1", "arm")
	ask := e.waitMsg("confirmation", func(s sentMsg) bool { return s.p.RefID == id })
	contains(t, ask.text, `Reply "yes"`)
	e.say("alice", "robot1", "yes")
	contains(t, e.reply(id).text, "arm: done")

	id = e.say("alice", "robot1", "arm")
	e.waitMsg("confirmation", func(s sentMsg) bool { return s.p.RefID == id })
	e.say("alice", "robot1", "no")
	contains(t, e.reply(id).text, "arm cancelled")
	e.settle()
	if n := len(dev.Commands()); n != 1 {
		t.Fatalf("device got %d commands, want 1 (only the confirmed arm)", n)
	}
}

func TestDangerousTimesOut(t *testing.T) {
	e := newEnv(t, ConfigItem{"confirm_timeout", "1s"})
	id := e.say("alice", "robot1", "arm")
	contains(t, e.reply(id).text, "not confirmed within 1 s")
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, ConfigItem{"rate_user", "2/1m"})
	e.mem.Device("rover-1").SetOnline(true, "test")
	e.reply(e.say("bob", "robot1", "stop"))
	e.reply(e.say("bob", "robot1", "stop"))
	contains(t, e.reply(e.say("bob", "robot1", "stop")).text, "Too many commands; try again in")
}

func TestGroupCommand(t *testing.T) {
	e := newEnv(t, ConfigItem{"command_ttl", "1s"})
	e.mem.Device("rover-1").SetOnline(true, "test")
	id := e.sayGroup("bob", 4001, "stop")
	r := e.reply(id)
	contains(t, r.text, "rovers stop: 1/2 done; robot2: offline")
}

func TestWatchOnlineOffline(t *testing.T) {
	e := newEnv(t, ConfigItem{"watch_interval", "100ms"})
	dev := e.mem.Device("env-1")
	dev.SetOnline(true, "test")
	e.m.OnLogin("carol", true)
	contains(t, e.reply(e.say("carol", "env1", "watch")).text, "Watching env1")
	dev.Telemetry(map[string]any{"temp": 21.5, "humidity": 40.0})
	tel := e.waitMsg("telemetry", func(s sentMsg) bool { return s.p.To == "carol" && strings.Contains(s.text, "temp") })
	contains(t, tel.text, "21.5")
	// offline: held, then an alert still goes out with an expiry
	e.m.OnLogin("carol", false)
	e.settle()
	before := len(e.host.messages())
	dev.Telemetry(map[string]any{"temp": 35.0})
	alert := e.waitMsg("alert", func(s sentMsg) bool { return s.p.To == "carol" && strings.Contains(s.text, "env1 alert:") })
	if alert.p.Expiry == 0 {
		t.Fatalf("alert without expiry: %+v", alert.p)
	}
	e.settle()
	for _, s := range e.host.messages()[before:] {
		if s.p.To == "carol" && !strings.Contains(s.text, "env1 alert:") {
			t.Fatalf("telemetry sent to an offline user: %q", s.text)
		}
	}
	e.m.OnLogin("carol", true)
	e.waitMsg("held telemetry on login", func(s sentMsg) bool {
		return s.p.To == "carol" && strings.Contains(s.text, "35") && !strings.Contains(s.text, "env1 alert:")
	})
}

func TestWatchCondition(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("env-1")
	dev.SetOnline(true, "test")
	contains(t, e.reply(e.say("carol", "env1", "watch temp > 30")).text, "alert when temp > 30")
	dev.Telemetry(map[string]any{"temp": 25.0})
	dev.Telemetry(map[string]any{"temp": 31.0})
	dev.Telemetry(map[string]any{"temp": 32.0}) // still true: no second alert
	e.settle()
	n := 0
	for _, s := range e.host.messages() {
		if s.p.To == "carol" && strings.Contains(s.text, "env1 alert:") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d alerts, want 1", n)
	}
	contains(t, e.reply(e.say("carol", "env1", "watch tmp > 30")).text, "temp")
}

func TestStatusShowsPresenceAndTelemetry(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("env-1")
	dev.SetOnline(true, "test")
	dev.Telemetry(map[string]any{"temp": 21.5})
	e.settle()
	r := e.reply(e.say("carol", "env1", "status"))
	contains(t, r.text, "env1 is online")
	contains(t, r.text, "21.5")
}

func TestStalePresenceIgnored(t *testing.T) {
	e := newEnv(t)
	e.m.post(event{kind: evPresence, dev: "rover-1", presence: presence(true, 5)})
	e.m.post(event{kind: evPresence, dev: "rover-1", presence: presence(false, 3)})
	e.settle()
	contains(t, e.reply(e.say("bob", "robot1", "status")).text, "robot1 is online")
}

func TestSpoofedReplyDropped(t *testing.T) {
	e := newEnv(t)
	a := e.mem.Device("rover-1")
	a.SetOnline(true, "test")
	a.SetHandler(func(c *wire.Command) []wire.Reply { return nil })
	id := e.say("bob", "robot1", "stop")
	e.waitUntil("the device got the command", func() bool { return len(a.Commands()) == 1 })
	cmd := a.Commands()[0]
	e.mem.Device("rover-2").Reply(wire.Reply{ID: cmd.ID, Outcome: wire.OutcomeDone})
	e.settle()
	if n := e.terminal(id); n != 0 {
		t.Fatalf("a reply from another device finished the command")
	}
}

func TestReloadGoodAndBad(t *testing.T) {
	e := newEnv(t)
	path := e.m.cfg.DevicesFile
	good := strings.Replace(readFile(t, path), "operators: [bob], viewers: [carol]}", "operators: [bob, dave], viewers: [carol]}", 1)
	writeFile(t, path, good)
	contains(t, e.reply(e.say("root", "iot", "reload")).text, "reloaded")
	e.mem.Device("rover-1").SetOnline(true, "test")
	contains(t, e.reply(e.say("dave", "robot1", "stop")).text, "stop: done")

	writeFile(t, path, good+"\n  - {address: robot1, id: dup, profile: rover, transport: memory}\n")
	r := e.reply(e.say("root", "iot", "reload"))
	contains(t, r.text, "reload refused, nothing changed")
	contains(t, r.text, "devices.yaml:")
	contains(t, e.reply(e.say("dave", "robot1", "stop")).text, "stop: done")
	contains(t, e.reply(e.say("bob", "iot", "reload")).text, "Only an admin")
}

func TestOneCommandAtATimeInOrder(t *testing.T) {
	e := newEnv(t) // the rover profile has max_in_flight 1
	dev := e.mem.Device("rover-1")
	dev.SetOnline(true, "test")
	var mu sync.Mutex
	var got []string
	var at []time.Time
	dev.SetDelay(60 * time.Millisecond)
	dev.SetHandler(func(c *wire.Command) []wire.Reply {
		mu.Lock()
		got = append(got, fmt.Sprint(c.Args["angle"]))
		at = append(at, time.Now())
		mu.Unlock()
		return memory.Done(c)
	})
	ids := []uint64{e.say("bob", "robot1", "turn 10deg"), e.say("bob", "robot1", "turn 20deg"), e.say("bob", "robot1", "turn 30deg")}
	for _, id := range ids {
		contains(t, e.reply(id).text, "turn: done")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "10,20,30" {
		t.Fatalf("order %v", got)
	}
	for i := 1; i < len(at); i++ {
		// the next command leaves only after the previous one's two delayed replies
		if gap := at[i].Sub(at[i-1]); gap < 100*time.Millisecond {
			t.Fatalf("command %d sent %v after the previous one: the window of 1 was not kept", i+1, gap)
		}
	}
}

func TestStandingSubscription(t *testing.T) {
	e := newEnv(t)
	dev := e.mem.Device("env-1")
	dev.SetOnline(true, "test")
	dev.Telemetry(map[string]any{"humidity": 50.0})
	dev.Telemetry(map[string]any{"humidity": 95.0})
	a := e.waitMsg("dora's alert", func(s sentMsg) bool { return s.p.To == "dora" })
	contains(t, a.text, "env1 alert: humidity > 90")
	if a.p.Expiry == 0 {
		t.Fatal("alert without expiry")
	}
}

func TestReloadOnFileChange(t *testing.T) {
	e := newEnv(t, ConfigItem{"reload_interval", "200ms"})
	e.mem.Device("rover-1").SetOnline(true, "test")
	contains(t, e.reply(e.say("dave", "robot1", "stop")).text, "not allowed")
	path := e.m.cfg.DevicesFile
	writeFile(t, path, strings.Replace(readFile(t, path), "operators: [bob], viewers: [carol]}", "operators: [bob, dave], viewers: [carol]}", 1))
	e.waitUntil("the reload", func() bool { return strings.Contains(e.host.logText(), "reloaded") })
	contains(t, e.reply(e.say("dave", "robot1", "stop")).text, "stop: done")
	// a broken file changes nothing and says why in the log
	writeFile(t, path, "devices: [")
	e.waitUntil("the refusal", func() bool { return strings.Contains(e.host.logText(), "reload refused, nothing changed") })
	contains(t, e.reply(e.say("dave", "robot1", "stop")).text, "stop: done")
}
