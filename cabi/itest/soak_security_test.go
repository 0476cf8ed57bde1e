package itest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

// Security claims of docs/security.md checked through the host and the
// real .so.

// TestSecretsNeverInLogsOrMetrics: the MQTT password appears in no log line
// (at debug level), no host output and no metric, whether the broker takes
// it, refuses it, or the configuration is refused (a password in the broker
// URL, a password over the limit).
func TestSecretsNeverInLogsOrMetrics(t *testing.T) {
	buildDir(t)
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skip("mosquitto_passwd is not installed (Debian package mosquitto)")
	}
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skip("mosquitto is not installed")
	}
	dir := t.TempDir()
	const right, wrong = "SECRET-right-9c1d", "SECRET-wr0ng-7f3a"
	pw := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, "bridge", right).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	br, err := startSoakBroker(dir, "allow_anonymous false", "password_file "+pw)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	devs := filepath.Join(dir, "devices.yaml")
	profiles, _ := filepath.Abs("../../examples/profiles")
	writeFile(t, devs, fmt.Sprintf("version: 1\nprofiles: [%q]\ndevices:\n  - {address: robot1, id: rover-001, profile: rover, transport: mqtt, owners: [alice]}\n", profiles+"/*.yaml"))
	conf := func(lines ...string) string {
		return "module iot {\n  devices = " + devs + "\n  log_level = debug\n  metrics_listen = 127.0.0.1:0\n  mqtt_username = bridge\n  " +
			strings.Join(lines, "\n  ") + "\n}\n"
	}
	check := func(t *testing.T, h *hostproc.Host, metrics string, secrets ...string) {
		t.Helper()
		all := h.Transcript() + h.Stderr() + metrics
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("%q appears in the host's output, stderr or metrics", s)
			}
		}
	}
	scrapeText := func(t *testing.T, h *hostproc.Host) string {
		t.Helper()
		ev := wait(t, h, "metrics address", func(e hostproc.Event) bool { return e.Kind == "log" && metricsURLRE.MatchString(e.Text) })
		resp, err := http.Get(metricsURLRE.FindStringSubmatch(ev.Text)[1])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	t.Run("refused by the broker", func(t *testing.T) {
		h := start(t, "doc", conf("mqtt_broker = "+br.URL(), "mqtt_password = "+wrong), "")
		wait(t, h, "not authorized", func(e hostproc.Event) bool { return e.Kind == "log" && strings.Contains(e.Text, "not authorized") })
		m := scrapeText(t, h)
		if err := quit(h); err != nil {
			t.Fatal(err)
		}
		check(t, h, m, wrong, "wr0ng")
	})
	t.Run("accepted by the broker", func(t *testing.T) {
		h := start(t, "r2020", conf("mqtt_broker = "+br.URL(), "mqtt_password = "+right), "")
		wait(t, h, "connected", func(e hostproc.Event) bool { return e.Kind == "log" && strings.Contains(e.Text, "mqtt link up") })
		h.Login("alice")
		h.Msg("alice", "iot", 1, "devices")
		h.Msg("alice", "robot1", 2, "status")
		sync(t, h)
		m := scrapeText(t, h)
		if err := quit(h); err != nil {
			t.Fatal(err)
		}
		check(t, h, m, right, "9c1d")
	})
	t.Run("password in the broker URL", func(t *testing.T) {
		u := strings.Replace(br.URL(), "tcp://", "tcp://bridge:SECRET-inurl-55@", 1)
		h := start(t, "doc", conf("mqtt_broker = "+u), "")
		ev := wait(t, h, "load fails", func(e hostproc.Event) bool { return e.Kind == "load" })
		if ev.Arg(1) != "fail" {
			t.Fatalf("a broker URL with credentials loaded: %q", ev.Raw)
		}
		wait(t, h, "why", func(e hostproc.Event) bool {
			return e.Kind == "log" && strings.Contains(e.Text, "mqtt_username and mqtt_password")
		})
		_ = quit(h)
		check(t, h, "", "SECRET-inurl-55", "inurl")
	})
	t.Run("password over the limit", func(t *testing.T) {
		long := "SECRET-long-" + strings.Repeat("z", 1100)
		h := start(t, "doc", conf("mqtt_broker = "+br.URL(), "mqtt_password = "+long), "")
		ev := wait(t, h, "load fails", func(e hostproc.Event) bool { return e.Kind == "load" })
		if ev.Arg(1) != "fail" {
			t.Fatalf("a 1112-byte password loaded: %q", ev.Raw)
		}
		_ = quit(h)
		check(t, h, "", "SECRET-long-", "zzzzzzzz")
	})
}

// TestOversizedChatMessageRefused: a message over max_message is consumed
// and answered "Message too long", whatever its size (1 MiB here), and the
// device never sees it.
func TestOversizedChatMessageRefused(t *testing.T) {
	c := startConversation(t, "r2019", convDevices, convScenario())
	c.h.Login("bob")
	id := c.say("bob", "robot1", "say "+strings.Repeat("x", 1<<20))
	a := c.answer(id)
	want(t, a, "Message too long: at most 4096 bytes are read.")
	if a.Field("to") != "bob" || a.Field("from") != "robot1" {
		t.Fatalf("answer %q", a.Raw)
	}
	if n := c.executions("rover-001", "say"); n != 0 {
		t.Fatalf("the rover ran say %d times", n)
	}
	want(t, c.answer(c.say("bob", "robot1", "say hello")), "say: done")
}

// TestMetricsOnLoopbackByDefault: a module block without metrics_listen
// serves /metrics on 127.0.0.1:9469, not on every interface.
func TestMetricsOnLoopbackByDefault(t *testing.T) {
	h := start(t, "doc", "module iot {\n}\n", "")
	ev := wait(t, h, "metrics address or bind error", func(e hostproc.Event) bool {
		return e.Kind == "log" && (metricsURLRE.MatchString(e.Text) || strings.Contains(e.Text, "metrics endpoint disabled"))
	})
	if strings.Contains(ev.Text, "disabled") {
		// another process holds 9469 on this machine: the address it tried is in the message
		if !strings.Contains(ev.Text, "127.0.0.1:9469") {
			t.Fatalf("metrics: %q", ev.Text)
		}
		return
	}
	if u := metricsURLRE.FindStringSubmatch(ev.Text)[1]; u != "http://127.0.0.1:9469/metrics" {
		t.Fatalf("default metrics endpoint %s", u)
	}
}

var metricsURLRE = regexp.MustCompile(`metrics on (http://\S+/metrics)`)
