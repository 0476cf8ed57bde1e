package serial

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsFromConfig(t *testing.T) {
	o, err := OptionsFromConfig(map[string]string{"mqtt_broker": "tcp://x:1883"})
	if err != nil {
		t.Fatal(err)
	}
	if o.AckTimeout != 200*time.Millisecond || o.Retries != 5 || o.Heartbeat != time.Second || o.Silence != 3*time.Second ||
		o.ReconnectMin != 200*time.Millisecond || o.ReconnectMax != 5*time.Second || o.WriteTimeout != time.Second || o.MaxFrame != 1024 {
		t.Fatalf("defaults %+v", o)
	}
	o, err = OptionsFromConfig(map[string]string{
		"serial_ack_timeout": "300ms", "serial_retries": "3", "serial_heartbeat": "2s", "serial_silence": "6s",
		"serial_reconnect_min": "100ms", "serial_reconnect_max": "30s", "serial_write_timeout": "500ms",
		"serial_max_frame": "256", "mqtt_client_id": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.AckTimeout != 300*time.Millisecond || o.Retries != 3 || o.Heartbeat != 2*time.Second || o.Silence != 6*time.Second ||
		o.ReconnectMin != 100*time.Millisecond || o.ReconnectMax != 30*time.Second || o.WriteTimeout != 500*time.Millisecond || o.MaxFrame != 256 {
		t.Fatalf("parsed %+v", o)
	}
	for kv, want := range map[[2]string]string{
		{"serial_baud", "9600"}:           `unknown key "serial_baud"; known serial keys: serial_ack_timeout, serial_heartbeat, serial_max_frame`,
		{"serial_ack_timeout", "fast"}:    "serial_ack_timeout = \"fast\": must be a duration from 10ms to 10s",
		{"serial_retries", "-1"}:          "serial_retries = \"-1\": must be a whole number from 0 to 20",
		{"serial_max_frame", "4096"}:      "serial_max_frame = \"4096\": must be a byte count from 64 to 1024",
		{"serial_silence", "1s"}:          "serial_silence (1s) must be at least twice serial_heartbeat (1s)",
		{"serial_reconnect_max", "100ms"}: "serial_reconnect_max (100ms) must not be below serial_reconnect_min (200ms)",
	} {
		_, err := OptionsFromConfig(map[string]string{kv[0]: kv[1]})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: error %v, want it to contain %q", kv[0], kv[1], err, want)
		}
	}
}

// fakeUSB creates sysfs entries for a USB serial adapter: class/tty/<tty>
// with a device link into devices/.../<usb>/<usb>:1.0/<tty>.
func fakeUSB(t testing.TB, sys, tty, usb, vendor, product, serial string) {
	t.Helper()
	udev := filepath.Join(sys, "devices", "pci0000:00", "usb1", usb)
	port := filepath.Join(udev, usb+":1.0", tty)
	if err := os.MkdirAll(port, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"idVendor": vendor, "idProduct": product, "serial": serial} {
		if err := os.WriteFile(filepath.Join(udev, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cls := filepath.Join(sys, "class", "tty", tty)
	if err := os.MkdirAll(cls, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(port, filepath.Join(cls, "device")); err != nil {
		t.Fatal(err)
	}
}

func TestFindUSB(t *testing.T) {
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "class", "tty", "tty0"), 0o755); err != nil { // virtual: no device
		t.Fatal(err)
	}
	fakeUSB(t, sys, "ttyUSB0", "1-1", "0403", "6001", "A1B2C3")
	fakeUSB(t, sys, "ttyUSB1", "1-2", "0403", "6001", "Z9")
	fakeUSB(t, sys, "ttyACM0", "1-3", "2341", "0043", "")
	for _, c := range []struct{ v, p, s, want, err string }{
		{"0403", "6001", "A1B2C3", "/dev/ttyUSB0", ""},
		{"0x403", "6001", "Z9", "/dev/ttyUSB1", ""},
		{"2341", "43", "", "/dev/ttyACM0", ""},
		{"0403", "6001", "", "", "2 ports match USB 0403:6001 (ttyUSB0, ttyUSB1)"},
		{"1a86", "7523", "", "", "no USB 1a86:7523 is connected; connected: ttyACM0 (2341:0043"},
		{"", "", "", "", "neither a path nor a USB vendor"},
	} {
		got, err := findUSB(c.v, c.p, c.s, sys, "/dev")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrNoPort) {
				t.Errorf("%s:%s %q: %q, %v; want error with %q", c.v, c.p, c.s, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s:%s %q = %q, %v; want %s", c.v, c.p, c.s, got, err, c.want)
		}
	}
}
