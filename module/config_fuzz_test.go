package module

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// configItems splits a module block's text the way mesibo.conf gives it to
// the module: one `key = value` per line, both trimmed. Lines without '='
// become a key with an empty value (conf_parse refuses them, but ParseConfig
// must not care where its items come from).
func configItems(block string) []ConfigItem {
	var items []ConfigItem
	for _, line := range strings.Split(block, "\n") {
		k, v, _ := strings.Cut(line, "=")
		items = append(items, ConfigItem{Name: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
	}
	return items
}

// FuzzParseConfig: the module's configuration (mesibo.conf block, with the
// transports' mqtt_* and serial_* keys) never panics; what it accepts is
// within every documented bound; an error wraps ErrConfig; no error message
// shows the MQTT password.
func FuzzParseConfig(f *testing.F) {
	var sample strings.Builder
	for _, k := range ConfigKeys() {
		sample.WriteString(k.Name + " = " + k.Default + "\n")
	}
	f.Add(sample.String())
	f.Add("address = iot\ndevices = /etc/mesibo/iot/devices.yaml\nadmins = alice, ops\nmetrics_listen = 127.0.0.1:9469\n" +
		"command_ttl = 10m\nrate_user = 30/1m\nmqtt_broker = tcp://127.0.0.1:1883\nmqtt_username = u\nmqtt_password = change-me\nserial_ack_timeout = 200ms")
	f.Add("mqtt_password = SECRET-pw\nmqtt_password = SECRET-pw")
	f.Add("mqtt_password = \nmqtt_broker = tcp://user:SECRET@host:1883")
	f.Add("mqtt_broker = ssl://broker:8883\nmqtt_ca_file = /nonexistent\nmqtt_insecure_skip_verify = on")
	f.Add("serial_retries = 99999\nserial_max_frame = 2000\nserial_silence = 1ms")
	f.Add("rate_device = 0/1s\nrate_user = 5/0s\nwatch_interval = 1ns\nreload_interval = off\nlog_level = 7")
	f.Add("inbox_size = 1e9\nmax_message = -1\nqueue_size = 0x10\nmetrics_listen = [::1]\naddress = a b")
	f.Add("unknown = 1\nADDRESS = x\n = \n=\n")
	f.Fuzz(func(t *testing.T, block string) {
		if len(block) > 1<<16 {
			return
		}
		items := configItems(block)
		cfg, err := ParseConfig(items)
		// the password must not be shown: the same block with every
		// mqtt_password replaced by a marker (as valid or invalid as the
		// value it replaces) gives errors without the marker
		checkSecret := func() {
			const marker = "\x01pw-marker\x01"
			marked := make([]ConfigItem, len(items))
			copy(marked, items)
			found := false
			for i, it := range marked {
				if strings.ToLower(it.Name) == "mqtt_password" && it.Value != "" {
					found = true
					marked[i].Value = marker
					if len(it.Value) > 1024 {
						marked[i].Value = marker + strings.Repeat("x", 1024)
					}
				}
			}
			if !found {
				return
			}
			mcfg, merr := ParseConfig(marked)
			errs := []error{merr}
			if merr == nil {
				for _, kind := range []string{"mqtt", "serial"} {
					errs = append(errs, transportConfigCheckers[kind](mcfg))
				}
			}
			for _, e := range errs {
				if e != nil && strings.Contains(e.Error(), "pw-marker") {
					t.Fatalf("an error shows the MQTT password: %v", e)
				}
			}
		}
		checkSecret()
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			return
		}
		for _, kind := range []string{"mqtt", "serial"} {
			_ = transportConfigCheckers[kind](cfg) // must not panic
		}
		dur := func(name string, d, lo, hi time.Duration) {
			if d < lo || d > hi {
				t.Fatalf("%s = %v accepted, outside %v..%v", name, d, lo, hi)
			}
		}
		between := func(name string, n, lo, hi int) {
			if n < lo || n > hi {
				t.Fatalf("%s = %d accepted, outside %d..%d", name, n, lo, hi)
			}
		}
		if !validAddress(cfg.Address) {
			t.Fatalf("address %q accepted", cfg.Address)
		}
		for _, a := range cfg.Admins {
			if !validAddress(a) {
				t.Fatalf("admin %q accepted", a)
			}
		}
		if cfg.LogLevel < LevelError || cfg.LogLevel > LevelDebug {
			t.Fatalf("log level %d accepted", cfg.LogLevel)
		}
		between("inbox_size", cfg.InboxSize, 16, 1<<20)
		between("max_message", cfg.MaxMessage, 64, 65536)
		between("queue_size", cfg.QueueSize, 1, 10000)
		dur("command_ttl", cfg.CommandTTL, time.Second, 24*time.Hour)
		dur("max_ttl", cfg.MaxTTL, time.Second, 168*time.Hour)
		dur("confirm_timeout", cfg.ConfirmTimeout, time.Second, 10*time.Minute)
		dur("watch_interval", cfg.WatchInterval, 100*time.Millisecond, time.Hour)
		dur("alert_expiry", cfg.AlertExpiry, time.Minute, 168*time.Hour)
		dur("idempotency_window", cfg.IdemWindow, time.Minute, 168*time.Hour)
		if cfg.ReloadInterval != 0 {
			dur("reload_interval", cfg.ReloadInterval, 200*time.Millisecond, time.Hour)
		}
		for name, r := range map[string]Rate{"rate_user": cfg.UserRate, "rate_device": cfg.DeviceRate} {
			if r.N != 0 {
				between(name, r.N, 1, 1000000)
				dur(name+" period", r.Period, time.Second, 24*time.Hour)
			}
		}
		if cfg.MetricsListen != "" {
			if _, _, err := net.SplitHostPort(cfg.MetricsListen); err != nil {
				t.Fatalf("metrics_listen %q accepted: %v", cfg.MetricsListen, err)
			}
		}
		for k := range cfg.Transport {
			if !strings.HasPrefix(k, "mqtt_") && !strings.HasPrefix(k, "serial_") {
				t.Fatalf("transport key %q kept", k)
			}
		}
	})
}
