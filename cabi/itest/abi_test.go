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
