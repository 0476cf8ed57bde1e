package module

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
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
}

// DefaultConfig returns the configuration used for keys that are absent.
func DefaultConfig() Config {
	return Config{
		Address:    "iot",
		LogLevel:   LevelInfo,
		InboxSize:  4096,
		MaxMessage: 4096,
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

type configKey struct {
	name    string
	allowed string // what is allowed, for error messages and docs
	doc     string
	set     func(c *Config, v string) error
}

// configKeys is the single list of mesibo.conf keys the module accepts.
var configKeys = []configKey{
	{"address", "a mesibo address: letters, digits, '_', '-', '.', '@', 1..64 chars", "The bridge's own chat address (answers ping, help, version, devices, reload).",
		func(c *Config, v string) error {
			if !validAddress(v) {
				return errors.New("must be 1..64 of letters, digits, '_', '-', '.', '@'")
			}
			c.Address = v
			return nil
		}},
	{"log_level", "error, warn, info or debug (or 0..3)", "Lowest level written to mesibo's log.",
		func(c *Config, v string) error {
			l, err := parseLevel(v)
			if err != nil {
				return err
			}
			c.LogLevel = l
			return nil
		}},
	{"inbox_size", "an integer 16..1048576", "Queue between mesibo's callbacks and the module's worker.",
		intSetter(16, 1<<20, func(c *Config, n int) { c.InboxSize = n })},
	{"max_message", "bytes, 64..65536", "Largest chat message to a device or the bridge that is read; longer ones are refused with a reply.",
		intSetter(64, 65536, func(c *Config, n int) { c.MaxMessage = n })},
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

func validAddress(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == '@':
		default:
			return false
		}
	}
	return true
}

// ConfigKeys lists the accepted keys, sorted, with what each allows.
func ConfigKeys() [][3]string {
	out := make([][3]string, 0, len(configKeys))
	for _, k := range configKeys {
		out = append(out, [3]string{k.name, k.allowed, k.doc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
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
