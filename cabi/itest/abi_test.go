// Package itest tests mesibo_mod_iot.so through the real ABI: the C host
// (build/mesibo-host) loads it from a mesibo.conf under each ABI revision.
// Run `make module host` first (make test does).
package itest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

var abis = []string{"doc", "r2019", "r2020"}

func buildDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MESIBO_IOT_BUILD")
	if dir == "" {
		dir, _ = filepath.Abs("../../build")
	}
	for _, f := range []string{"mesibo-host", "mesibo_mod_iot.so", "mesibo_mod_filter.so"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s missing in %s: run `make module host` first", f, dir)
		}
	}
	return dir
}

// start runs the host with conf, loading modules from modDir (default the build dir).
func start(t *testing.T, abi, conf string, modDir string) *hostproc.Host {
	t.Helper()
	dir := buildDir(t)
	if modDir == "" {
		modDir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := hostproc.Start(ctx, hostproc.Options{
		Binary: filepath.Join(dir, "mesibo-host"), ModulesDir: modDir, ABI: abi, Conf: conf, LogLevel: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.Alive() {
			qctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = h.Quit(qctx)
		}
		if t.Failed() {
			t.Logf("host transcript:\n%s\nstderr:\n%s", h.Transcript(), h.Stderr())
		}
	})
	return h
}

func wait(t *testing.T, h *hostproc.Host, what string, pred func(hostproc.Event) bool) hostproc.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := h.WaitFor(ctx, pred)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

func sync(t *testing.T, h *hostproc.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

const chainConf = `# the filter first, then the bridge
module filter {
  blocked_words = darn, heck
}
module = iot {
  metrics_listen = off
  log_level = debug
}
`

func TestPingUnderEachABI(t *testing.T) {
	for _, abi := range abis {
		t.Run(abi, func(t *testing.T) {
			h := start(t, abi, chainConf, "")
			ready := wait(t, h, "ready", func(e hostproc.Event) bool { return e.Kind == "ready" })
			if ready.Field("abi") != abi || ready.Field("modules") != "filter,iot" {
				t.Fatalf("ready line %q", ready.Raw)
			}
			h.Login("alice")
			h.Msg("alice", "iot", 4242, "ping")
			d := wait(t, h, "pong", func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Arg(0) == "alice" })
			if !strings.HasPrefix(d.Text, "pong mesibo-iot ") || d.Field("refid") != "4242" || d.Field("from") != "iot" {
				t.Fatalf("reply %q", d.Raw)
			}
			if d.Field("flags") != "1" {
				t.Fatalf("reply flags %s, want DELIVERYRECEIPT (1)", d.Field("flags"))
			}
			st := wait(t, h, "delivery status", func(e hostproc.Event) bool {
				return e.Kind == "status" && e.Arg(0) == "iot" && e.Field("id") == d.Field("id")
			})
			if st.Field("status") != "2" {
				t.Fatalf("status %q", st.Raw)
			}
			// the module received it: it logs the status of its own message
			wait(t, h, "module saw the status", func(e hostproc.Event) bool {
				return e.Kind == "log" && strings.Contains(e.Text, fmt.Sprintf("message %s (reply) to alice: delivered", d.Field("id")))
			})
			dec := wait(t, h, "decision", func(e hostproc.Event) bool { return e.Kind == "decision" && e.Arg(0) == "iot" })
			if dec.Field("result") != "CONSUMED" {
				t.Fatalf("iot decision %q", dec.Raw)
			}
		})
	}
}

func TestChainFilterThenIot(t *testing.T) {
	h := start(t, "doc", chainConf, "")
	h.Login("alice")
	h.Login("bob")
	h.Msg("alice", "bob", 1, "hello bob")
	h.Msg("alice", "iot", 2, "ping darn")
	h.Msg("alice", "bob", 3, "heck")
	sync(t, h)
	var delivered []string
	for _, e := range h.Filter(func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Arg(0) == "bob" }) {
		delivered = append(delivered, e.Text)
	}
	if len(delivered) != 1 || delivered[0] != "hello bob" {
		t.Fatalf("bob got %q, want only the clean message", delivered)
	}
	for _, e := range h.Filter(func(e hostproc.Event) bool { return e.Kind == "decision" }) {
		switch e.Field("id") {
		case "1":
			if e.Field("result") != "PASS" {
				t.Fatalf("clean message: %q", e.Raw)
			}
		case "2", "3":
			if e.Arg(0) != "filter" || e.Field("result") != "CONSUMED" {
				t.Fatalf("blocked message reached %s: %q", e.Arg(0), e.Raw)
			}
		}
	}
	if n := len(h.Filter(func(e hostproc.Event) bool { return e.Kind == "send" && e.Arg(0) == "iot" })); n != 0 {
		t.Fatalf("the bridge answered a message the filter consumed")
	}
}

func TestTwoInstances(t *testing.T) {
	conf := "module iot {\n address = iot\n metrics_listen = off\n}\nmodule iot {\n address = lab\n metrics_listen = off\n}\n"
	h := start(t, "r2020", conf, "")
	h.Login("alice")
	h.Msg("alice", "iot", 1, "ping")
	h.Msg("alice", "lab", 2, "ping")
	h.Msg("alice", "carol", 3, "hi")
	sync(t, h)
	for _, want := range []struct{ from, refid string }{{"iot", "1"}, {"lab", "2"}} {
		wait(t, h, "pong from "+want.from, func(e hostproc.Event) bool {
			return e.Kind == "deliver" && e.Field("from") == want.from && e.Field("refid") == want.refid && strings.HasPrefix(e.Text, "pong")
		})
	}
	qctx, c := context.WithTimeout(context.Background(), 10*time.Second)
	defer c()
	if err := h.Quit(qctx); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range h.Filter(func(e hostproc.Event) bool { return e.Kind == "cleanup" }) {
		order = append(order, e.Arg(0))
	}
	if len(order) != 2 {
		t.Fatalf("cleanups %v", order)
	}
}

func TestUnknownConfigKeyRefused(t *testing.T) {
	h := start(t, "doc", "module iot {\n adress = iot\n}\nmodule filter {\n blocked_words = x\n}\n", "")
	ld := wait(t, h, "load line", func(e hostproc.Event) bool { return e.Kind == "load" && e.Arg(0) == "iot" })
	if ld.Arg(1) != "fail" {
		t.Fatalf("load %q, want fail", ld.Raw)
	}
	lg := wait(t, h, "log", func(e hostproc.Event) bool { return e.Kind == "log" && strings.Contains(e.Text, "unknown key") })
	if !strings.Contains(lg.Text, `"adress"`) || !strings.Contains(lg.Text, "address") {
		t.Fatalf("log %q should name the key and the known keys", lg.Text)
	}
	// the host goes on with the other module
	h.Login("bob")
	h.Msg("alice", "bob", 9, "x")
	wait(t, h, "filter still works", func(e hostproc.Event) bool {
		return e.Kind == "decision" && e.Arg(0) == "filter" && e.Field("result") == "CONSUMED"
	})
}

func TestRefusesUnknownStruct(t *testing.T) {
	dir := buildDir(t)
	probe := filepath.Join(t.TempDir(), "probe")
	if out, err := exec.Command("gcc", "-O1", "-rdynamic", "-o", probe, "testdata/probe.c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	out, err := exec.Command(probe, filepath.Join(dir, "mesibo_mod_iot.so")).CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"case len200 rc=-1 logged=1", "unknown module struct (len 200", "case len176-nosig rc=-1", "case len192-sig-at-96 rc=-1", "case version2 rc=-1", "module API version 2", "host goes on: all refused"} {
		if !strings.Contains(s, want) {
			t.Fatalf("probe output lacks %q:\n%s", want, s)
		}
	}
}

// TestOnlyProtocolOnStdout: the module never writes to the host's stdout or
// stderr; every line the host printed is one of its own events.
func TestOnlyProtocolOnStdout(t *testing.T) {
	h := start(t, "doc", chainConf, "")
	h.Login("alice")
	h.Msg("alice", "iot", 1, "help")
	h.Msg("alice", "iot", 2, "version")
	sync(t, h)
	qctx, c := context.WithTimeout(context.Background(), 10*time.Second)
	defer c()
	if err := h.Quit(qctx); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"ready": true, "load": true, "decision": true, "deliver": true, "queued": true, "expired": true, "send": true,
		"status": true, "login": true, "log": true, "cleanup": true, "bye": true, "sync": true, "http": true}
	for _, e := range h.Events() {
		if !known[e.Kind] {
			t.Fatalf("unexpected output line %q", e.Raw)
		}
	}
	if s := h.Stderr(); s != "" {
		t.Fatalf("stderr: %q", s)
	}
}

// fastPathConf writes a devices file with the given device lines and
// returns a mesibo.conf block for the module using it (embedded broker, so
// no Mosquitto is needed: the devices need not be online for these tests).
func fastPathConf(t *testing.T, address string, devices ...string) (conf, devicesFile string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	devicesFile = filepath.Join(t.TempDir(), "devices.yaml")
	writeDevices(t, devicesFile, root, devices...)
	conf = fmt.Sprintf("module iot {\n address = %s\n devices = %s\n admins = alice\n metrics_listen = off\n reload_interval = off\n"+
		" mqtt_broker = embedded\n mqtt_listen = 127.0.0.1:0\n log_level = debug\n}\n", address, devicesFile)
	return conf, devicesFile
}

// writeDevices writes a devices file: each device is an address, a rover on
// MQTT; group 4001 holds them all.
func writeDevices(t *testing.T, path, root string, devices ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nprofiles: [\"%s/examples/profiles/*.yaml\"]\ndevices:\n", root)
	for k, d := range devices {
		fmt.Fprintf(&b, "  - {address: %s, id: rover-%03d, profile: rover, transport: mqtt, owners: [alice]}\n", d, k+1)
	}
	if len(devices) > 0 {
		fmt.Fprintf(&b, "groups:\n  - {name: all, group_id: 4001, members: [%s]}\n", strings.Join(devices, ", "))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// decisions returns, for the message with id, the results of the modules
// that saw it, in the order they were called.
func decisions(h *hostproc.Host, id string) []string {
	var out []string
	for _, e := range h.Filter(func(e hostproc.Event) bool { return e.Kind == "decision" && e.Field("id") == id }) {
		out = append(out, e.Field("result"))
	}
	return out
}

func wantDecisions(t *testing.T, h *hostproc.Host, id string, want ...string) {
	t.Helper()
	if got := decisions(h, id); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("message %s: decisions %v, want %v", id, got, want)
	}
}

func answer(t *testing.T, h *hostproc.Host, to, refid string) hostproc.Event {
	t.Helper()
	return wait(t, h, "answer to "+refid, func(e hostproc.Event) bool {
		return e.Kind == "deliver" && e.Arg(0) == to && e.Field("refid") == refid
	})
}

// TestFastPathUnderEachABI: on_message is decided in C (cabi/fastpath.c)
// under every revision: a command to a device, a message to the bridge, a
// group message to a device group and an oversized message are consumed and
// answered; messages to anyone else, and to other groups, PASS.
func TestFastPathUnderEachABI(t *testing.T) {
	long := strings.Repeat("x", 5000) // max_message is 4096
	for _, abi := range abis {
		t.Run(abi, func(t *testing.T) {
			conf, _ := fastPathConf(t, "iot", "robot1", "robot2")
			h := start(t, abi, conf, "")
			h.Login("alice")
			h.Login("bob")
			h.Msg("alice", "robot1", 1, "help")
			h.Msg("alice", "iot", 2, "ping")
			h.Msg("alice", "rovers", 3, "help", "group=4001")
			h.Msg("alice", "robot2", 4, long)
			h.Msg("alice", "bob", 5, "hello")
			h.Msg("alice", "robot", 6, "not a device")
			h.Msg("alice", "robot12", 7, "not a device")
			h.Msg("alice", "bob", 8, "other group", "group=4002")
			sync(t, h)
			for _, id := range []string{"1", "2", "3", "4"} {
				wantDecisions(t, h, id, "CONSUMED")
			}
			for _, id := range []string{"5", "6", "7", "8"} {
				wantDecisions(t, h, id, "PASS")
			}
			if a := answer(t, h, "alice", "1"); a.Field("from") != "robot1" {
				t.Fatalf("device answer %q", a.Raw)
			}
			if a := answer(t, h, "alice", "2"); !strings.HasPrefix(a.Text, "pong mesibo-iot ") || a.Field("from") != "iot" {
				t.Fatalf("bridge answer %q", a.Raw)
			}
			wait(t, h, "the group message as a command to robot2", func(e hostproc.Event) bool {
				return e.Kind == "log" && strings.Contains(e.Text, "key alice/3/robot2)")
			})
			if a := answer(t, h, "alice", "4"); !strings.Contains(a.Text, "too long") {
				t.Fatalf("oversized message: answer %q", a.Raw)
			}
			wait(t, h, "delivery to bob", func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Arg(0) == "bob" && e.Field("id") == "5" })
		})
	}
}

// TestReloadUpdatesFastPath: a reload that adds and removes devices changes
// what C consumes and what it passes.
func TestReloadUpdatesFastPath(t *testing.T) {
	conf, file := fastPathConf(t, "iot", "robot1")
	h := start(t, "r2020", conf, "")
	h.Login("alice")
	h.Msg("alice", "robot1", 1, "help")
	h.Msg("alice", "robot2", 2, "help")
	h.Msg("alice", "bob", 3, "hello", "group=4001")
	sync(t, h)
	wantDecisions(t, h, "1", "CONSUMED")
	wantDecisions(t, h, "2", "PASS")
	wantDecisions(t, h, "3", "CONSUMED")

	root, _ := filepath.Abs("../..")
	reloadDevices(t, h, file, root, 10, "robot2", "robot3")
	h.Msg("alice", "robot1", 11, "help")
	h.Msg("alice", "robot2", 12, "help")
	h.Msg("alice", "robot3", 13, "help")
	sync(t, h)
	wantDecisions(t, h, "11", "PASS")
	wantDecisions(t, h, "12", "CONSUMED")
	wantDecisions(t, h, "13", "CONSUMED")
	answer(t, h, "alice", "12")
	answer(t, h, "alice", "13")

	reloadDevices(t, h, file, root, 20) // no devices, no groups
	h.Msg("alice", "robot2", 21, "help")
	h.Msg("alice", "bob", 22, "hello", "group=4001")
	h.Msg("alice", "iot", 23, "ping")
	sync(t, h)
	wantDecisions(t, h, "21", "PASS")
	wantDecisions(t, h, "22", "PASS")
	wantDecisions(t, h, "23", "CONSUMED")
	answer(t, h, "alice", "23")
}

// TestTwoInstancesOwnTables: two instances, each with its own devices; each
// consumes only its own, and a reload of one leaves the other's table as it
// was.
func TestTwoInstancesOwnTables(t *testing.T) {
	confA, fileA := fastPathConf(t, "iot", "robot1")
	confB, _ := fastPathConf(t, "lab", "robot2")
	h := start(t, "doc", confA+confB, "")
	h.Login("alice")
	h.Msg("alice", "robot1", 1, "help")
	h.Msg("alice", "robot2", 2, "help")
	h.Msg("alice", "robot3", 3, "help")
	h.Msg("alice", "lab", 4, "ping")
	sync(t, h)
	wantDecisions(t, h, "1", "CONSUMED")         // the first instance
	wantDecisions(t, h, "2", "PASS", "CONSUMED") // the second
	wantDecisions(t, h, "3", "PASS", "PASS")
	wantDecisions(t, h, "4", "PASS", "CONSUMED")
	answer(t, h, "alice", "1")
	answer(t, h, "alice", "2")
	if a := answer(t, h, "alice", "4"); a.Field("from") != "lab" {
		t.Fatalf("pong %q", a.Raw)
	}

	root, _ := filepath.Abs("../..")
	reloadDevices(t, h, fileA, root, 10, "robot3")
	h.Msg("alice", "robot1", 11, "help")
	h.Msg("alice", "robot2", 12, "help")
	h.Msg("alice", "robot3", 13, "help")
	sync(t, h)
	wantDecisions(t, h, "11", "PASS", "PASS")
	wantDecisions(t, h, "12", "PASS", "CONSUMED")
	wantDecisions(t, h, "13", "CONSUMED")
}

// reloadDevices rewrites the devices file with these device addresses,
// sends the bridge "reload" as alice with message id id, and waits for the
// answer that it was reloaded.
func reloadDevices(t *testing.T, h *hostproc.Host, file, root string, id uint64, addrs ...string) {
	t.Helper()
	writeDevices(t, file, root, addrs...)
	h.Msg("alice", "iot", id, "reload")
	if a := answer(t, h, "alice", fmt.Sprint(id)); !strings.Contains(a.Text, "reloaded") {
		t.Fatalf("reload: %q", a.Raw)
	}
}
