package itest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// conversation is a person-level test through the whole product: simulated
// devices over MQTT (and serial), mesibo-host, the real .so.
type conversation struct {
	t  *testing.T
	st *stack.Stack
	h  *hostproc.Host
	id *atomic.Uint64
}

// in returns the conversation reporting to t (a subtest).
func (c *conversation) in(t *testing.T) *conversation {
	cc := *c
	cc.t = t
	return &cc
}

// run runs a subtest of the conversation.
func (c *conversation) run(name string, f func(t *testing.T, c *conversation)) {
	c.t.Run(name, func(t *testing.T) { f(t, c.in(t)) })
}

const convDevices = `
version: 1
profiles: ["{{profiles}}/*.yaml"]
devices:
  - {address: robot1, id: rover-001, profile: rover, transport: mqtt, owners: [alice], operators: [bob], viewers: [carol]}
  - {address: robot2, id: rover-002, profile: rover, transport: mqtt, owners: [alice], operators: [bob]}
  - {address: env1, id: envsensor-001, profile: envsensor, transport: mqtt, owners: [alice], viewers: ["*"]}
groups:
  - {name: rovers, group_id: 4001, members: [robot1, robot2]}
`

func convScenario() sim.Scenario {
	return sim.Scenario{Seed: 7, TimeScale: 20, Devices: []sim.DeviceSpec{
		{ID: "rover-001", Type: "rover", Transport: "mqtt", Armed: true},
		{ID: "rover-002", Type: "rover", Transport: "mqtt", Armed: true},
		{ID: "envsensor-001", Type: "envsensor", Transport: "mqtt", Telemetry: time.Hour},
	}}
}

func startConversation(t *testing.T, abi string, devs string, sc sim.Scenario, conf ...string) *conversation {
	t.Helper()
	buildDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"admins = root", "log_level = debug", "reload_interval = off", "confirm_timeout = 3s", "watch_interval = 200ms"}
	st, err := stack.Start(ctx, stack.Options{ABI: abi, Scenario: sc, Devices: devs, Conf: append(base, conf...), Filter: true, LogLevel: 3})
	if err != nil {
		t.Fatal(err)
	}
	c := &conversation{t: t, st: st, h: st.Host, id: new(atomic.Uint64)}
	c.id.Store(1000)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host transcript:\n%s", st.Host.Transcript())
		}
		if err := st.Close(); err != nil {
			t.Errorf("closing the stack: %v", err)
		}
	})
	// the module sees the devices online (retained state over MQTT)
	c.waitLog("devices online", func(s string) bool { return strings.Contains(s, "robot1 (rover-001) is online") })
	return c
}

func (c *conversation) say(from, to, text string, extra ...string) uint64 {
	id := c.id.Add(1)
	if err := c.h.Msg(from, to, id, text, extra...); err != nil {
		c.t.Fatal(err)
	}
	return id
}

func (c *conversation) wait(what string, pred func(hostproc.Event) bool) hostproc.Event {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ev, err := c.h.WaitFor(ctx, pred)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

func (c *conversation) waitLog(what string, pred func(string) bool) {
	c.t.Helper()
	c.wait(what, func(e hostproc.Event) bool { return e.Kind == "log" && pred(e.Text) })
}

// answer waits for the final (non-transient) reply to message id; the
// message must have been delivered or queued for the user.
func (c *conversation) answer(id uint64) hostproc.Event {
	c.t.Helper()
	return c.wait(fmt.Sprintf("the answer to %d", id), func(e hostproc.Event) bool {
		return e.Kind == "send" && e.Arg(0) == "iot" && e.Field("refid") == fmt.Sprint(id) && flags(e)&4 == 0
	})
}

func (c *conversation) finals(id uint64) int {
	n := 0
	for _, e := range c.h.Events() {
		if e.Kind == "send" && e.Arg(0) == "iot" && e.Field("refid") == fmt.Sprint(id) && flags(e)&4 == 0 {
			n++
		}
	}
	return n
}

func flags(e hostproc.Event) int {
	var f int
	fmt.Sscan(e.Field("flags"), &f)
	return f
}

func want(t *testing.T, e hostproc.Event, sub string) {
	t.Helper()
	if !strings.Contains(e.Text, sub) {
		t.Fatalf("got %q, want it to contain %q", e.Text, sub)
	}
}

func (c *conversation) executions(dev, verb string) int {
	n := 0
	for _, x := range c.st.Sim.Executions() {
		if x.Device == dev && x.Verb == verb {
			n++
		}
	}
	return n
}

func TestConversations(t *testing.T) {
	abi := "doc"
	c := startConversation(t, abi, convDevices, convScenario())
	for _, u := range []string{"alice", "bob", "carol", "mallory", "root"} {
		c.h.Login(u)
	}

	c.run("allowed command runs on the device", func(t *testing.T, c *conversation) {
		id := c.say("bob", "robot1", "move 10cm speed=0.5")
		a := c.answer(id)
		want(t, a, "move: done")
		if a.Field("from") != "robot1" || a.Field("to") != "bob" {
			t.Fatalf("answer %q", a.Raw)
		}
		c.wait("delivered to bob", func(e hostproc.Event) bool {
			return e.Kind == "deliver" && e.Arg(0) == "bob" && e.Field("refid") == fmt.Sprint(id)
		})
		if n := c.executions("rover-001", "move"); n != 1 {
			t.Fatalf("the rover executed move %d times", n)
		}
	})
	c.run("denied", func(t *testing.T, c *conversation) {
		want(t, c.answer(c.say("mallory", "robot1", "move 10")), "not allowed to use robot1")
		want(t, c.answer(c.say("carol", "robot1", "move 10")), "may watch robot1 but not command it")
		want(t, c.answer(c.say("bob", "robot1", "arm")), "only an owner")
	})
	c.run("malformed and misspelt", func(t *testing.T, c *conversation) {
		want(t, c.answer(c.say("bob", "robot1", "mvoe 10cm")), "did you mean 'move'")
		want(t, c.answer(c.say("bob", "robot1", "move 10cm speed=3")), "speed must be between 0 and 1; usage: move <distance")
		want(t, c.answer(c.say("bob", "robot1", "move 10deg")), "distance")
	})
	c.run("the same message twice runs once", func(t *testing.T, c *conversation) {
		before := c.executions("rover-001", "turn")
		id := c.id.Add(1)
		c.h.Msg("bob", "robot1", id, "turn 90deg")
		c.h.Msg("bob", "robot1", id, "turn 90deg")
		want(t, c.answer(id), "turn: done")
		sync(t, c.h)
		time.Sleep(200 * time.Millisecond)
		if n := c.executions("rover-001", "turn") - before; n != 1 {
			t.Fatalf("ran %d times", n)
		}
		if n := c.finals(id); n != 1 {
			t.Fatalf("%d final answers", n)
		}
	})
	c.run("dangerous needs confirmation", func(t *testing.T, c *conversation) {
		id := c.say("alice", "robot1", "arm")
		c.wait("the question", func(e hostproc.Event) bool {
			return e.Kind == "send" && e.Field("refid") == fmt.Sprint(id) && strings.Contains(e.Text, `Reply "yes"`)
		})
		c.say("alice", "robot1", "yes")
		want(t, c.answer(id), "arm: done")
		id = c.say("alice", "robot1", "arm")
		c.wait("the question", func(e hostproc.Event) bool {
			return e.Kind == "send" && e.Field("refid") == fmt.Sprint(id) && strings.Contains(e.Text, `Reply "yes"`)
		})
		c.say("alice", "robot1", "no")
		want(t, c.answer(id), "arm cancelled")
		id = c.say("alice", "robot1", "arm")
		want(t, c.answer(id), "not confirmed within 3 s")
		if n := c.executions("rover-001", "arm"); n != 1 {
			t.Fatalf("arm ran %d times, want 1", n)
		}
	})
	c.run("offline device: command waits, then expires", func(t *testing.T, c *conversation) {
		if err := c.st.Sim.Device("rover-002").GoOffline(); err != nil {
			t.Fatal(err)
		}
		c.waitLog("robot2 offline", func(s string) bool { return strings.Contains(s, "robot2 (rover-002) is offline") })
		id := c.say("bob", "robot2", "stop", "expiry=2")
		c.wait("queued note", func(e hostproc.Event) bool {
			return e.Kind == "send" && e.Field("refid") == fmt.Sprint(id) && flags(e)&4 != 0 && strings.Contains(e.Text, "robot2 is offline")
		})
		want(t, c.answer(id), "robot2 is offline; stop expired after 2 s")
	})
	c.run("group command reports one combined outcome", func(t *testing.T, c *conversation) {
		id := c.say("bob", "rovers", "stop", "group=4001", "expiry=2")
		a := c.answer(id)
		want(t, a, "rovers stop: 1/2 done; robot2: offline")
		if a.Field("from") != "iot" {
			t.Fatalf("group answer from %s", a.Field("from"))
		}
	})
	c.run("offline device: command runs when it is back", func(t *testing.T, c *conversation) {
		id := c.say("bob", "robot2", "stop")
		c.wait("queued note", func(e hostproc.Event) bool {
			return e.Kind == "send" && e.Field("refid") == fmt.Sprint(id) && flags(e)&4 != 0
		})
		if err := c.st.Sim.Device("rover-002").GoOnline(); err != nil {
			t.Fatal(err)
		}
		want(t, c.answer(id), "stop: done")
	})
	c.run("watch while online and offline", func(t *testing.T, c *conversation) {
		env := c.st.Sim.Device("envsensor-001")
		want(t, c.answer(c.say("carol", "env1", "watch")), "Watching env1")
		env.EmitTelemetry()
		c.wait("telemetry to carol", func(e hostproc.Event) bool {
			return e.Kind == "deliver" && e.Arg(0) == "carol" && e.Field("from") == "env1" && strings.Contains(e.Text, "temp")
		})
		c.h.Logout("carol")
		sync(t, c.h)
		mark := c.h.Len()
		env.Set("temp", 35)
		env.EmitTelemetry()
		alert := c.wait("alert queued for offline carol", func(e hostproc.Event) bool {
			return e.Kind == "queued" && e.Arg(0) == "carol" && e.Field("from") == "env1"
		})
		sync(t, c.h)
		time.Sleep(300 * time.Millisecond)
		for _, e := range c.h.Since(mark) {
			if e.Kind == "send" && e.Field("to") == "carol" && !strings.Contains(e.Text, "alert") {
				t.Fatalf("telemetry sent to offline carol: %q", e.Raw)
			}
		}
		c.h.Login("carol")
		d := c.wait("the alert on login", func(e hostproc.Event) bool {
			return e.Kind == "deliver" && e.Arg(0) == "carol" && e.Field("id") == alert.Field("id")
		})
		want(t, d, "env1 alert: temp")
		if d.Field("expiry") == "0" {
			t.Fatalf("alert without expiry: %q", d.Raw)
		}
		want(t, c.answer(c.say("carol", "env1", "unwatch")), "Stopped watching env1")
	})
	c.run("status and devices", func(t *testing.T, c *conversation) {
		a := c.answer(c.say("carol", "env1", "status"))
		want(t, a, "env1 is online")
		want(t, a, "temp")
		want(t, c.answer(c.say("carol", "iot", "devices")), "robot1 — rover, online")
	})
	c.run("reload: good file, bad file", func(t *testing.T, c *conversation) {
		good := strings.Replace(readFile(t, c.st.DevicesFile), "operators: [bob]}", "operators: [bob, dave]}", 1)
		writeFile(t, c.st.DevicesFile, good)
		want(t, c.answer(c.say("root", "iot", "reload")), "reloaded")
		c.h.Login("dave")
		want(t, c.answer(c.say("dave", "robot2", "stop")), "stop: done")
		writeFile(t, c.st.DevicesFile, good+"  - {address: robot9, id: rover-009, profile: nosuch, transport: mqtt}\n")
		a := c.answer(c.say("root", "iot", "reload"))
		want(t, a, "reload refused, nothing changed")
		want(t, a, "devices.yaml:")
		want(t, c.answer(c.say("dave", "robot2", "stop")), "stop: done")
	})
	c.run("metrics count the outcomes", func(t *testing.T, c *conversation) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		url, err := c.st.MetricsURL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(url, "http://127.0.0.1:") {
			t.Fatalf("metrics not on loopback: %s", url)
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range []string{`mesibo_iot_commands_total{outcome="done",profile="rover"}`, `mesibo_iot_commands_total{outcome="expired",profile="rover"}`,
			`mesibo_iot_commands_total{outcome="rejected",profile="rover"}`, `mesibo_iot_link_up{transport="mqtt"} 1`, `mesibo_iot_devices_online 3`} {
			if !strings.Contains(string(b), w) {
				t.Fatalf("metrics lack %s:\n%s", w, b)
			}
		}
	})
	c.run("every command got exactly one final answer", func(t *testing.T, c *conversation) {
		sync(t, c.h)
		seen := map[string]int{}
		for _, e := range c.h.Events() {
			if e.Kind == "send" && e.Arg(0) == "iot" && e.Field("refid") != "0" && flags(e)&4 == 0 && e.Field("from") != "iot" {
				seen[e.Field("to")+"/"+e.Field("refid")]++
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("message %s got %d final answers", k, n)
			}
		}
	})
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, s string) {
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
