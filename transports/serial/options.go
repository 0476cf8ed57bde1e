package serial

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// LogLevel is the level of a log line. The values match module.Level
// (0 error … 3 debug), so the module passes its levels through unchanged.
type LogLevel int

// Log levels.
const (
	LogError LogLevel = 0
	LogWarn  LogLevel = 1
	LogInfo  LogLevel = 2
	LogDebug LogLevel = 3
)

// Options configure the serial transport. DefaultOptions gives the values
// every zero field takes; OptionsFromConfig reads them from mesibo.conf.
type Options struct {
	// Name is the transport instance's name (Sink.Link, logs). Default "serial".
	Name string

	AckTimeout   time.Duration // serial_ack_timeout: retransmit a frame not ACKed in this time (plus its time on the wire)
	Retries      int           // serial_retries: retransmissions before the link is down
	Heartbeat    time.Duration // serial_heartbeat: send a heartbeat after this long without sending
	Silence      time.Duration // serial_silence: link down (device offline) after this long without a frame
	ReconnectMin time.Duration // serial_reconnect_min: first wait before reopening a port
	ReconnectMax time.Duration // serial_reconnect_max: the wait doubles up to this
	WriteTimeout time.Duration // serial_write_timeout: a port that does not take a frame in this time is closed and reopened
	MaxFrame     int           // serial_max_frame: largest command frame payload sent (a device's hello may lower it)

	// Logf receives log lines; nil discards them.
	Logf func(level LogLevel, msg string)

	// Fault, for tests only (nil in production), is called at named points
	// so that a test can make the transport's goroutines panic:
	// serial.worker (each port session), serial.callback (each envelope
	// from a device), serial.reader and serial.writer (each read and write
	// of a port, in the link's goroutines).
	Fault func(point string)

	// sysRoot and devRoot replace /sys and /dev when resolving USB
	// identities (tests).
	sysRoot, devRoot string
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		Name:         "serial",
		AckTimeout:   200 * time.Millisecond,
		Retries:      5,
		Heartbeat:    time.Second,
		Silence:      3 * time.Second,
		ReconnectMin: 200 * time.Millisecond,
		ReconnectMax: 5 * time.Second,
		WriteTimeout: time.Second,
		MaxFrame:     wire.MaxFramePayload,
	}
}

type durKey struct {
	min, max time.Duration
	field    func(*Options) *time.Duration
}

var durKeys = map[string]durKey{
	"serial_ack_timeout":   {10 * time.Millisecond, 10 * time.Second, func(o *Options) *time.Duration { return &o.AckTimeout }},
	"serial_heartbeat":     {100 * time.Millisecond, time.Minute, func(o *Options) *time.Duration { return &o.Heartbeat }},
	"serial_silence":       {200 * time.Millisecond, 10 * time.Minute, func(o *Options) *time.Duration { return &o.Silence }},
	"serial_reconnect_min": {10 * time.Millisecond, time.Minute, func(o *Options) *time.Duration { return &o.ReconnectMin }},
	"serial_reconnect_max": {10 * time.Millisecond, 10 * time.Minute, func(o *Options) *time.Duration { return &o.ReconnectMax }},
	"serial_write_timeout": {10 * time.Millisecond, time.Minute, func(o *Options) *time.Duration { return &o.WriteTimeout }},
}

// ConfigKeys lists the serial_* keys of mesibo.conf, sorted.
func ConfigKeys() []string {
	keys := []string{"serial_retries", "serial_max_frame"}
	for k := range durKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// OptionsFromConfig reads the serial_* keys of kv (mesibo.conf values as
// strings) over DefaultOptions. Keys without the serial_ prefix (mqtt_*)
// are ignored. An unknown serial_* key or a bad value is an error naming
// the key and saying what is allowed.
func OptionsFromConfig(kv map[string]string) (Options, error) {
	o := DefaultOptions()
	names := make([]string, 0, len(kv))
	for k := range kv {
		names = append(names, k)
	}
	sort.Strings(names) // the same error for the same file
	for _, k := range names {
		name := strings.ToLower(strings.TrimSpace(k))
		if !strings.HasPrefix(name, "serial_") {
			continue
		}
		v := strings.TrimSpace(kv[k])
		if dk, ok := durKeys[name]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < dk.min || d > dk.max {
				return o, fmt.Errorf("%s = %q: must be a duration from %v to %v, e.g. %v",
					name, v, dk.min, dk.max, *dk.field(ptr(DefaultOptions())))
			}
			*dk.field(&o) = d
			continue
		}
		switch name {
		case "serial_retries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 20 {
				return o, fmt.Errorf("%s = %q: must be a whole number from 0 to 20, e.g. 5", name, v)
			}
			o.Retries = n
		case "serial_max_frame":
			n, err := strconv.Atoi(v)
			if err != nil || n < 64 || n > wire.MaxFramePayload {
				return o, fmt.Errorf("%s = %q: must be a byte count from 64 to %d (the frame format's limit), e.g. %d",
					name, v, wire.MaxFramePayload, wire.MaxFramePayload)
			}
			o.MaxFrame = n
		default:
			return o, fmt.Errorf("unknown key %q; known serial keys: %s", k, strings.Join(ConfigKeys(), ", "))
		}
	}
	if err := o.check(); err != nil {
		return o, err
	}
	return o, nil
}

func ptr(o Options) *Options { return &o }

// check validates combinations.
func (o *Options) check() error {
	if o.Silence < 2*o.Heartbeat {
		return fmt.Errorf("serial_silence (%v) must be at least twice serial_heartbeat (%v), or an idle link goes down between heartbeats", o.Silence, o.Heartbeat)
	}
	if o.ReconnectMax < o.ReconnectMin {
		return fmt.Errorf("serial_reconnect_max (%v) must not be below serial_reconnect_min (%v)", o.ReconnectMax, o.ReconnectMin)
	}
	return nil
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Name == "" {
		o.Name = d.Name
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = d.AckTimeout
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = d.Heartbeat
	}
	if o.Silence <= 0 {
		o.Silence = d.Silence
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = d.ReconnectMin
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = d.ReconnectMax
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.MaxFrame <= 0 || o.MaxFrame > wire.MaxFramePayload {
		o.MaxFrame = d.MaxFrame
	}
	if o.sysRoot == "" {
		o.sysRoot = "/sys"
	}
	if o.devRoot == "" {
		o.devRoot = "/dev"
	}
	return o
}
