package module

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/devices"
)

// ConfigItem is one `key = value` line of the module's block in mesibo.conf.
type ConfigItem struct {
	Name, Value string
}

// Config is the module's configuration. Every field has a mesibo.conf key;
// docs/configuration.md documents them and a test checks that it does.
type Config struct {
	Address  string // the bridge's own chat address
	LogLevel Level
	// InboxSize bounds the queue between mesibo's callbacks and the module's
	// worker; a full queue makes on_message answer "busy" instead of blocking.
	InboxSize int
	// MaxMessage is the largest chat message the module reads (bytes).
	MaxMessage int

	DevicesFile    string        // devices.yaml; "" = no devices (bridge only)
	ReloadInterval time.Duration // how often the devices file is checked for changes; 0 = never
	MetricsListen  string        // host:port for /metrics; "" = off
	Admins         []string      // may reload and are owners of every device

	CommandTTL      time.Duration // default time a command may wait and run
	MaxTTL          time.Duration // upper bound on a message's own expiry
	QueueSize       int           // commands waiting per device (default)
	ProgressUpdates bool          // send intermediate states as TRANSIENT messages
	ConfirmTimeout  time.Duration // how long a dangerous command waits for "yes"
	UserRate        Rate          // commands per user
	DeviceRate      Rate          // commands per device
	WatchInterval   time.Duration // least time between telemetry messages to one watcher
	AlertExpiry     time.Duration // expiry of alert messages (kept for offline users)
	IdemWindow      time.Duration // how long a (sender, message id) is remembered
	Tick            time.Duration // timer resolution of the core

	// Transport holds the mqtt_* and serial_* keys, checked by the
	// transports when they are built.
	Transport map[string]string
}

// Rate is N events per period, with a burst of N.
type Rate struct {
	N      int
	Period time.Duration
}

func (r Rate) String() string {
	if r.N == 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, shortDuration(r.Period))
}

func parseRate(v string) (Rate, error) {
	v = strings.TrimSpace(strings.ToLower(v))
	if v == "off" || v == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(v, "/")
	if !ok {
		return Rate{}, errors.New("must be N/period, e.g. 30/1m, or off")
	}
	k, err := strconv.Atoi(n)
	if err != nil || k < 1 || k > 1000000 {
		return Rate{}, errors.New("must be N/period with N from 1 to 1000000, e.g. 30/1m")
	}
	if per == "s" || per == "m" || per == "h" {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d < time.Second || d > 24*time.Hour {
		return Rate{}, errors.New("period must be a duration from 1s to 24h, e.g. 30/1m")
	}
	return Rate{N: k, Period: d}, nil
}

// DefaultConfig returns the configuration used for keys that are absent.
func DefaultConfig() Config {
	return Config{
		Address:    "iot",
		LogLevel:   LevelInfo,
		InboxSize:  4096,
		MaxMessage: 4096,

		ReloadInterval: 2 * time.Second,
		MetricsListen:  "127.0.0.1:9469",
		CommandTTL:     10 * time.Minute,
		MaxTTL:         24 * time.Hour,
		QueueSize:      32,
		ConfirmTimeout: 30 * time.Second,
		UserRate:       Rate{N: 30, Period: time.Minute},
		DeviceRate:     Rate{N: 60, Period: time.Minute},
		WatchInterval:  5 * time.Second,
		AlertExpiry:    time.Hour,
		IdemWindow:     time.Hour,
		Tick:           50 * time.Millisecond,
		Transport:      map[string]string{},
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

type configKey struct {
	name    string
	def     string // the default, as it would be written in mesibo.conf
	allowed string // what is allowed, for error messages and docs
	doc     string
	set     func(c *Config, v string) error
}

// configKeys is the single list of mesibo.conf keys the module accepts.
var configKeys = []configKey{
	{"address", "iot", "a mesibo address: letters, digits, '_', '-', '.', '@', 1..64 chars", "The bridge's own chat address (answers ping, help, version, devices, reload).",
		func(c *Config, v string) error {
			if !validAddress(v) {
				return errors.New("must be 1..64 of letters, digits, '_', '-', '.', '@'")
			}
			c.Address = v
			return nil
		}},
	{"log_level", "info", "error, warn, info or debug (or 0..3)", "Lowest level written to mesibo's log.",
		func(c *Config, v string) error {
			l, err := parseLevel(v)
			if err != nil {
				return err
			}
			c.LogLevel = l
			return nil
		}},
	{"inbox_size", "4096", "an integer 16..1048576", "Queue between mesibo's callbacks and the module's worker (the C inbox that on_message fills, and the core's queue, each this size).",
		intSetter(16, 1<<20, func(c *Config, n int) { c.InboxSize = n })},
	{"max_message", "4096", "bytes, 64..65536", "Largest chat message to a device or the bridge that is read; longer ones are refused with a reply.",
		intSetter(64, 65536, func(c *Config, n int) { c.MaxMessage = n })},
	{"devices", "", "a path to devices.yaml", "The devices file: profiles, devices, access lists, groups, subscriptions (docs/configuration.md).",
		func(c *Config, v string) error {
			if v == "" {
				return errors.New("must be a path to devices.yaml")
			}
			c.DevicesFile = v
			return nil
		}},
	{"reload_interval", "2s", "a duration 0 (off) or 200ms..1h", "How often the devices file is checked for changes; a good new file is applied atomically.",
		func(c *Config, v string) error {
			if v == "0" || v == "off" {
				c.ReloadInterval = 0
				return nil
			}
			d, err := parseDuration(v, 200*time.Millisecond, time.Hour)
			c.ReloadInterval = d
			return err
		}},
	{"metrics_listen", "127.0.0.1:9469", "host:port, or off", "Prometheus /metrics endpoint; loopback by default. Port 0 picks a free port (logged).",
		func(c *Config, v string) error {
			if v == "off" || v == "" {
				c.MetricsListen = ""
				return nil
			}
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("must be host:port (e.g. 127.0.0.1:9469) or off")
			}
			c.MetricsListen = v
			return nil
		}},
	{"admins", "", "comma-separated mesibo addresses", "Users who may reload and who own every device.",
		func(c *Config, v string) error {
			c.Admins = nil
			for _, a := range strings.Split(v, ",") {
				a = strings.TrimSpace(a)
				if a == "" {
					continue
				}
				if !validAddress(a) {
					return fmt.Errorf("%q is not a valid address", a)
				}
				c.Admins = append(c.Admins, a)
			}
			return nil
		}},
	{"command_ttl", "10m", "a duration 1s..24h", "Default time a command may wait (device offline) and run before it expires; a message's own expiry wins when shorter.",
		durSetter(time.Second, 24*time.Hour, func(c *Config, d time.Duration) { c.CommandTTL = d })},
	{"max_ttl", "24h", "a duration 1s..7 days (168h)", "Upper bound on a message's own expiry used as a command's TTL.",
		durSetter(time.Second, 168*time.Hour, func(c *Config, d time.Duration) { c.MaxTTL = d })},
	{"queue_size", "32", "an integer 1..10000", "Commands that may wait per device (devices.yaml may override).",
		intSetter(1, 10000, func(c *Config, n int) { c.QueueSize = n })},
	{"progress_updates", "off", "on or off", "Send intermediate command states (queued, sent, delivered) as TRANSIENT messages.",
		func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "on", "true", "1", "yes":
				c.ProgressUpdates = true
			case "off", "false", "0", "no":
				c.ProgressUpdates = false
			default:
				return errors.New("must be on or off")
			}
			return nil
		}},
	{"confirm_timeout", "30s", "a duration 1s..10m", "How long a dangerous command waits for the user's \"yes\".",
		durSetter(time.Second, 10*time.Minute, func(c *Config, d time.Duration) { c.ConfirmTimeout = d })},
	{"rate_user", "30/1m", "N/period (e.g. 30/1m) or off", "Commands one user may send, over all devices.",
		func(c *Config, v string) error { r, err := parseRate(v); c.UserRate = r; return err }},
	{"rate_device", "60/1m", "N/period (e.g. 60/1m) or off", "Commands one device accepts, from all users.",
		func(c *Config, v string) error { r, err := parseRate(v); c.DeviceRate = r; return err }},
	{"watch_interval", "5s", "a duration 100ms..1h", "Least time between two telemetry messages to one watcher (newer values are coalesced).",
		durSetter(100*time.Millisecond, time.Hour, func(c *Config, d time.Duration) { c.WatchInterval = d })},
	{"alert_expiry", "1h", "a duration 1m..7 days", "Expiry of alert messages, which mesibo keeps for offline users.",
		durSetter(time.Minute, 168*time.Hour, func(c *Config, d time.Duration) { c.AlertExpiry = d })},
	{"idempotency_window", "1h", "a duration 1m..7 days", "How long a (sender, message id) pair is remembered so a message sent twice runs once.",
		durSetter(time.Minute, 168*time.Hour, func(c *Config, d time.Duration) { c.IdemWindow = d })},
}

func durSetter(lo, hi time.Duration, set func(*Config, time.Duration)) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := parseDuration(v, lo, hi)
		if err != nil {
			return err
		}
		set(c, d)
		return nil
	}
}

// shortDuration prints 10m0s as 10m and 1h0m0s as 1h.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func intSetter(lo, hi int, set func(*Config, int)) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		set(c, n)
		return nil
	}
}

func parseDuration(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("must be a duration from %v to %v (e.g. 10m, 30s)", lo, hi)
	}
	return d, nil
}

func parseLevel(v string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "error", "0":
		return LevelError, nil
	case "warn", "warning", "1":
		return LevelWarn, nil
	case "info", "2":
		return LevelInfo, nil
	case "debug", "3":
		return LevelDebug, nil
	}
	return 0, errors.New("must be error, warn, info or debug")
}

// validAddress: the same rule as addresses in devices.yaml.
func validAddress(s string) bool { return devices.ValidAddress(s) }

// ConfigKey describes one mesibo.conf key.
type ConfigKey struct {
	Name, Default, Allowed, Doc string
}

// ConfigKeys lists the accepted keys, sorted by name.
func ConfigKeys() []ConfigKey {
	out := make([]ConfigKey, 0, len(configKeys))
	for _, k := range configKeys {
		out = append(out, ConfigKey{k.name, k.def, k.allowed, k.doc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ParseConfig applies items to the defaults. An unknown key, a repeated key or
// a bad value is an error that names the key and says what is allowed.
func ParseConfig(items []ConfigItem) (Config, error) {
	c := DefaultConfig()
	seen := map[string]bool{}
	for _, it := range items {
		name := strings.ToLower(strings.TrimSpace(it.Name))
		var key *configKey
		for i := range configKeys {
			if configKeys[i].name == name {
				key = &configKeys[i]
				break
			}
		}
		if key == nil && (strings.HasPrefix(name, "mqtt_") || strings.HasPrefix(name, "serial_")) {
			if _, dup := c.Transport[name]; dup {
				return c, fmt.Errorf("%w: key %q given twice; give it once", ErrConfig, name)
			}
			c.Transport[name] = strings.TrimSpace(it.Value)
			continue
		}
		if key == nil {
			return c, fmt.Errorf("%w: unknown key %q; known keys: %s", ErrConfig, it.Name, knownKeys())
		}
		if seen[name] {
			return c, fmt.Errorf("%w: key %q given twice; give it once", ErrConfig, name)
		}
		seen[name] = true
		if err := key.set(&c, strings.TrimSpace(it.Value)); err != nil {
			return c, fmt.Errorf("%w: %s = %q: %v", ErrConfig, name, it.Value, err)
		}
	}
	return c, nil
}

func knownKeys() string {
	names := make([]string, 0, len(configKeys))
	for _, k := range configKeys {
		names = append(names, k.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
