package itest

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// TestTwoBridgesOneBroker runs two mesibo servers (two hosts, each with the
// module) on one broker: each command's answer comes from the bridge that
// took it, and each telemetry message reaches every watcher exactly once,
// whichever bridge the watcher used.
func TestTwoBridgesOneBroker(t *testing.T) {
	buildDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	devs := `
version: 1
profiles: ["{{profiles}}/*.yaml"]
devices:
  - {address: robot1, id: rover-001, profile: rover, transport: mqtt, owners: [alice], operators: [bob, dave]}
  - {address: env1, id: envsensor-001, profile: envsensor, transport: mqtt, owners: [alice], viewers: ["*"]}
`
	sc := sim.Scenario{Seed: 3, TimeScale: 20, Devices: []sim.DeviceSpec{
		{ID: "rover-001", Type: "rover", Armed: true},
		{ID: "envsensor-001", Type: "envsensor", Telemetry: time.Hour},
	}}
	common := []string{"mqtt_share_group = bridges", "watch_interval = 100ms", "log_level = debug", "reload_interval = off"}
	a, err := stack.Start(ctx, stack.Options{Scenario: sc, Devices: devs, Conf: append([]string{"mqtt_bridge_id = bridge-a"}, common...), LogLevel: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	confB := strings.Replace(readFile(t, a.ConfFile), "mqtt_bridge_id = bridge-a", "mqtt_bridge_id = bridge-b", 1)
	fileB := filepath.Join(t.TempDir(), "mesibo.conf")
	if err := os.WriteFile(fileB, []byte(confB), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := hostproc.Start(ctx, hostproc.Options{Binary: filepath.Join(buildDir(t), "mesibo-host"), ModulesDir: buildDir(t), ConfFile: fileB, LogLevel: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("bridge A:\n%s\nbridge B:\n%s", a.Host.Transcript(), b.Transcript())
		}
		qctx, c := context.WithTimeout(context.Background(), 15*time.Second)
		defer c()
		b.Quit(qctx)
	}()
	ha := a.Host
	for _, h := range []*hostproc.Host{ha, b} {
		if _, err := h.WaitFor(ctx, func(e hostproc.Event) bool {
			return e.Kind == "log" && strings.Contains(e.Text, "env1 (envsensor-001) is online")
		}); err != nil {
			t.Fatal(err)
		}
	}
	ha.Login("bob")
	b.Login("carol")
	b.Login("dave")

	// commands: the answer comes from the bridge that took the command
	ha.Msg("bob", "robot1", 11, "stop")
	b.Msg("dave", "robot1", 12, "stop")
	for _, c := range []struct {
		h    *hostproc.Host
		user string
		id   string
	}{{ha, "bob", "11"}, {b, "dave", "12"}} {
		ev, err := c.h.WaitFor(ctx, func(e hostproc.Event) bool {
			return e.Kind == "deliver" && e.Arg(0) == c.user && e.Field("refid") == c.id && e.Field("flags") == "1"
		})
		if err != nil {
			t.Fatalf("%s's answer: %v", c.user, err)
		}
		if !strings.Contains(ev.Text, "stop: done") {
			t.Fatalf("%s got %q", c.user, ev.Text)
		}
	}
	for _, c := range []struct {
		h  *hostproc.Host
		id string
	}{{ha, "12"}, {b, "11"}} {
		for _, e := range c.h.Events() {
			if e.Kind == "send" && e.Field("refid") == c.id {
				t.Fatalf("a bridge answered a command it did not hold: %q", e.Raw)
			}
		}
	}

	// telemetry: one watcher on each bridge
	ha.Msg("bob", "env1", 21, "watch")
	b.Msg("carol", "env1", 22, "watch")
	for _, h := range []*hostproc.Host{ha, b} {
		if _, err := h.WaitFor(ctx, func(e hostproc.Event) bool { return e.Kind == "deliver" && strings.Contains(e.Text, "Watching env1") }); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // interest topics reach the other bridge
	env := a.Sim.Device("envsensor-001")
	const n = 6
	for i := 0; i < n; i++ {
		env.Set("pressure", float64(500+100*i))
		if err := env.EmitTelemetry(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(time.Second)
	count := func(h *hostproc.Host, user string) map[string]int {
		got := map[string]int{}
		for _, e := range h.Events() {
			if e.Kind == "deliver" && e.Arg(0) == user && e.Field("from") == "env1" && e.Field("refid") == "0" {
				// the sensor drifts a little from the value it was set to
				var p float64
				if _, err := fmt.Sscanf(e.Text[strings.Index(e.Text, "pressure "):], "pressure %f", &p); err == nil {
					got[fmt.Sprint(int(math.Round((p-500)/100)))]++
				}
			}
		}
		return got
	}
	for _, w := range []struct {
		h    *hostproc.Host
		user string
	}{{ha, "bob"}, {b, "carol"}} {
		got := count(w.h, w.user)
		for i := 0; i < n; i++ {
			if k := fmt.Sprint(i); got[k] != 1 {
				t.Fatalf("%s got telemetry %s %d times (all: %v)", w.user, k, got[k], got)
			}
		}
	}
}
