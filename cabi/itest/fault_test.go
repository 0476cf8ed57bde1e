package itest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// TestPanicsLeaveHostRunning loads the fault-injection build of the module
// (build/fault/mesibo_mod_iot.so, built with -tags faultinject) and makes
// each callback and goroutine panic in turn: the host must keep running and
// the module must log the recovered panic. The "on_message" point is the
// accept path's (Module.AcceptCopied): it now runs on the inbox's drainer
// goroutine (cabi/fastpath.go), not on mesibo's thread, and is logged as
// "recovered panic in on_message" there.
func TestPanicsLeaveHostRunning(t *testing.T) {
	faultDir := filepath.Join(buildDir(t), "fault")
	for _, point := range []string{"init", "on_message", "on_message_status", "on_login", "worker", "timers", "cleanup"} {
		t.Run(point, func(t *testing.T) {
			conf := "module iot {\n metrics_listen = off\n fault_inject = " + point + "\n}\n"
			h := start(t, "doc", conf, faultDir)
			h.Login("alice")
			h.Msg("alice", "iot", 1, "ping")
			h.Msg("alice", "bob", 2, "not for the module")
			sync(t, h)
			if point == "init" {
				wait(t, h, "load failed", func(e hostproc.Event) bool { return e.Kind == "load" && e.Arg(1) == "fail" })
			}
			if point != "cleanup" {
				wait(t, h, "recovered panic logged", func(e hostproc.Event) bool {
					return e.Kind == "log" && strings.Contains(e.Text, "recovered panic in "+point)
				})
			}
			// still alive and routing
			h.Login("bob")
			h.Msg("carol", "bob", 3, "still there?")
			sync(t, h)
			wait(t, h, "delivery after the panic", func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Field("id") == "3" })
			if !h.Alive() {
				t.Fatal("host died")
			}
			if point == "cleanup" {
				if err := quit(h); err != nil {
					t.Fatalf("host exit after a panic in cleanup: %v", err)
				}
				wait(t, h, "recovered panic logged", func(e hostproc.Event) bool {
					return e.Kind == "log" && strings.Contains(e.Text, "recovered panic in cleanup")
				})
				wait(t, h, "bye", func(e hostproc.Event) bool { return e.Kind == "bye" })
			}
		})
	}
}

// TestAcceptPanicContained: a panic on the accept path (in the inbox's
// drainer) is logged, the sender is told that message was not taken (not
// run, send it again), and the drainer goes on: the next message is
// answered.
func TestAcceptPanicContained(t *testing.T) {
	for _, abi := range abis {
		t.Run(abi, func(t *testing.T) {
			conf := "module iot {\n metrics_listen = off\n fault_inject = on_message:1\n}\n"
			h := start(t, abi, conf, filepath.Join(buildDir(t), "fault"))
			h.Login("alice")
			h.Msg("alice", "iot", 1, "ping")
			wait(t, h, "recovered panic logged", func(e hostproc.Event) bool {
				return e.Kind == "log" && strings.Contains(e.Text, "recovered panic in on_message: injected fault at on_message")
			})
			h.Msg("alice", "iot", 2, "ping")
			if a := answer(t, h, "alice", "2"); !strings.HasPrefix(a.Text, "pong ") {
				t.Fatalf("after the panic: %q", a.Raw)
			}
			if a := answer(t, h, "alice", "1"); !strings.Contains(a.Text, "internal error") || !strings.Contains(a.Text, "not run") {
				t.Fatalf("the message that panicked: %q", a.Raw)
			}
			sync(t, h)
			if n := len(h.Filter(func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Field("refid") == "1" })); n != 1 {
				t.Fatalf("the message that panicked got %d answers; want 1", n)
			}
		})
	}
}

const faultDevices = `
version: 1
profiles: ["{{profiles}}/*.yaml"]
devices:
  - {address: robot1, id: rover-001, profile: rover, transport: mqtt, owners: [alice]}
  - {address: relay1, id: relay-01, profile: relay, transport: serial, owners: [alice], serial: {path: "{{ptydir}}/relay-01"}}
`

// faultBuild is a directory with mesibo-host and the fault-injection build
// of the module (build/fault/mesibo_mod_iot.so), for stack.Options.Build.
func faultBuild(t *testing.T) string {
	t.Helper()
	dir := buildDir(t)
	so := filepath.Join(dir, "fault", "mesibo_mod_iot.so")
	if _, err := os.Stat(so); err != nil {
		t.Fatalf("%s missing: build it with go build -tags faultinject -buildmode=c-shared -o %s ./cabi", so, so)
	}
	tmp := t.TempDir()
	for name, target := range map[string]string{"mesibo-host": filepath.Join(dir, "mesibo-host"), "mesibo_mod_iot.so": so} {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}

// TestGoroutinePanicsLeaveHostRunning makes each goroutine the module starts
// panic once (its own: sender, devices file watcher, reload, metrics
// handler; the MQTT transport's: connection supervisor, paho's message
// handler, inbound worker, maintenance; the serial transport's: port worker,
// envelope callback, port reader and writer), with a device on each
// transport: the panic is logged, the host keeps running, and the goroutine
// (or its replacement) works again: commands to both devices are done.
func TestGoroutinePanicsLeaveHostRunning(t *testing.T) {
	build := faultBuild(t)
	sc := sim.Scenario{Seed: 3, Devices: []sim.DeviceSpec{
		{ID: "rover-001", Type: "rover", Transport: "mqtt", Armed: true, Telemetry: 500 * time.Millisecond},
		{ID: "relay-01", Type: "relay", Transport: "serial", Telemetry: 500 * time.Millisecond},
	}}
	points := []string{"sender", "watcher", "reload", "metrics",
		"mqtt.supervisor", "mqtt.handler", "mqtt.worker", "mqtt.maintain",
		"serial.worker", "serial.callback", "serial.reader", "serial.writer"}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st, err := stack.Start(ctx, stack.Options{Build: build, Scenario: sc, Devices: faultDevices, LogLevel: 3,
				Conf: []string{"fault_inject = " + point + ":1", "admins = alice", "log_level = info", "reload_interval = 300ms",
					"serial_reconnect_max = 500ms", "command_ttl = 20s"}})
			if err != nil {
				t.Fatal(err)
			}
			c := &conversation{t: t, st: st, h: st.Host, id: new(atomic.Uint64)}
			c.id.Store(100)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("host transcript:\n%s\nstderr:\n%s", st.Host.Transcript(), st.Host.Stderr())
				}
				if err := st.Close(); err != nil {
					t.Errorf("closing the stack: %v", err)
				}
			})
			c.h.Login("alice")
			logged := func(e hostproc.Event) bool {
				return e.Kind == "log" && strings.Contains(e.Text, "panic") && strings.Contains(e.Text, "injected fault at "+point)
			}
			online := func(addr string) func(string) bool {
				return func(s string) bool { return strings.Contains(s, addr+" (") && strings.Contains(s, ") is online") }
			}
			switch point {
			case "sender":
				c.waitLog("robot1 online", online("robot1"))
				want(t, c.answer(c.say("alice", "robot1", "stop")), "could not be sent to robot1")
			case "watcher":
				c.wait("the panic", logged)
				writeFile(t, st.DevicesFile, readFile(t, st.DevicesFile)+"# changed\n")
				c.waitLog("the reload after the panic", func(s string) bool { return strings.Contains(s, "reloaded ") })
			case "reload":
				want(t, c.answer(c.say("alice", "iot", "reload")), "reload refused, nothing changed: internal error")
				want(t, c.answer(c.say("alice", "iot", "reload")), "reloaded")
			case "metrics":
				mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
				url, err := st.MetricsURL(mctx)
				mcancel()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := scrape(url); err != nil {
					t.Logf("first scrape (panics): %v", err)
				}
				c.wait("the panic", logged)
				if ms, err := scrape(url); err != nil || sum(ms, "mesibo_iot_panics_recovered_total", `where="metrics"`) != 1 {
					t.Fatalf("metrics after the panic: %v, panics %v", err, ms)
				}
			case "mqtt.handler", "mqtt.worker":
				// the message that panicked may have been the rover's state:
				// a reboot publishes a new one
				c.wait("the panic", logged)
				mark := c.h.Len()
				if err := st.Sim.Device("rover-001").Reboot(); err != nil {
					t.Fatal(err)
				}
				wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
				_, err := c.h.WaitForAfter(wctx, mark, func(e hostproc.Event) bool { return e.Kind == "log" && online("robot1")(e.Text) })
				wcancel()
				if err != nil {
					t.Fatalf("robot1 online after its reboot: %v", err)
				}
			}
			c.wait("the panic", logged)
			c.waitLog("robot1 online", online("robot1"))
			c.waitLog("relay1 online", online("relay1"))
			want(t, c.answer(c.say("alice", "robot1", "stop")), "stop: done")
			want(t, c.answer(c.say("alice", "relay1", "on 1")), "on: done")
			if !c.h.Alive() {
				t.Fatal("host died")
			}
		})
	}
}

// TestInboxFullAnsweredBusy fills the C inbox (inbox_size 16) while its
// drainer is held (fault_drain_hold, test builds only): the 16 messages that
// fit are consumed and queued, the next ones are answered "busy" at once
// (not queued); when the drainer goes, the queued ones are answered in the
// order they came, none lost or answered twice.
func TestInboxFullAnsweredBusy(t *testing.T) {
	for _, abi := range abis {
		t.Run(abi, func(t *testing.T) {
			conf := "module iot {\n metrics_listen = off\n inbox_size = 16\n fault_drain_hold = go\n}\n"
			h := start(t, abi, conf, filepath.Join(buildDir(t), "fault"))
			h.Login("alice")
			for id := uint64(1); id <= 20; id++ {
				h.Msg("alice", "iot", id, "ping")
			}
			h.Msg("alice", "bob", 21, "not for the module")
			sync(t, h)
			for id := 1; id <= 20; id++ {
				wantDecisions(t, h, strconv.Itoa(id), "CONSUMED")
			}
			wantDecisions(t, h, "21", "PASS")
			for id := 17; id <= 20; id++ {
				if a := answer(t, h, "alice", strconv.Itoa(id)); !strings.Contains(a.Text, "The bridge is busy") {
					t.Fatalf("message %d: %q, want busy", id, a.Raw)
				}
			}
			if n := len(h.Filter(func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Arg(0) == "alice" })); n != 4 {
				t.Fatalf("%d answers before the drainer ran, want the 4 busy ones", n)
			}
			h.Login("go") // releases the drainer
			answer(t, h, "alice", "16")
			sync(t, h)
			var refids []string
			for _, e := range h.Filter(func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Arg(0) == "alice" }) {
				if strings.HasPrefix(e.Text, "pong ") {
					refids = append(refids, e.Field("refid"))
				}
			}
			var want []string
			for id := 1; id <= 16; id++ {
				want = append(want, strconv.Itoa(id))
			}
			if strings.Join(refids, ",") != strings.Join(want, ",") {
				t.Fatalf("pongs for %v, want %v", refids, want)
			}
		})
	}
}

// TestCleanupWithQueuedMessages quits the host while messages wait in the C
// inbox (the drainer is held): cleanup stops the fast path, hands them to
// the core and frees them (make sanitize runs this under ASan/LeakSanitizer),
// and the host exits cleanly.
func TestCleanupWithQueuedMessages(t *testing.T) {
	conf := "module iot {\n metrics_listen = off\n inbox_size = 16\n fault_drain_hold = nobody\n}\n"
	h := start(t, "r2019", conf, filepath.Join(buildDir(t), "fault"))
	h.Login("alice")
	for id := uint64(1); id <= 10; id++ {
		h.Msg("alice", "iot", id, "ping "+strings.Repeat("x", int(id)*100))
	}
	sync(t, h)
	for id := 1; id <= 10; id++ {
		wantDecisions(t, h, strconv.Itoa(id), "CONSUMED")
	}
	if err := quit(h); err != nil {
		t.Fatalf("host exit: %v", err)
	}
	wait(t, h, "queued messages at cleanup", func(e hostproc.Event) bool {
		return e.Kind == "log" && strings.Contains(e.Text, "cleanup: 10 queued messages handed to the core")
	})
	wait(t, h, "bye", func(e hostproc.Event) bool { return e.Kind == "bye" })
}
