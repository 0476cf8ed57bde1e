package sim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Device types and transports a DeviceSpec may name.
const (
	TypeRover     = "rover"
	TypeEnvSensor = "envsensor"
	TypeRelay     = "relay"

	TransportMQTT   = "mqtt"
	TransportSerial = "serial"
)

// Defaults of a Scenario.
const (
	DefaultBrokerListen = "127.0.0.1:0"
	DefaultTopicPrefix  = "mesibo-iot"
	DefaultPtyDir       = "/tmp/mesibo-iot-sim"
	// DefaultBootDelay is how long a device takes to boot (serial: before
	// its hello, mimicking the DTR reset of a board; MQTT: before it
	// reconnects after Reboot).
	DefaultBootDelay = 100 * time.Millisecond
)

// Scenario describes a set of simulated devices. LoadScenario reads one from
// YAML (keys in snake_case: seed, broker, broker_listen, topic_prefix,
// pty_dir, profiles, time_scale, devices, ...).
type Scenario struct {
	// Seed makes every value the devices produce reproducible: each device
	// draws from its own source seeded from Seed and a hash of its id.
	Seed int64 `yaml:"seed"`
	// Broker is the MQTT broker URL (tcp://host:port, mqtt://, ssl://, tls://,
	// mqtts://). Empty: the simulator starts an embedded broker.
	Broker string `yaml:"broker"`
	// BrokerListen is the embedded broker's address, default 127.0.0.1:0
	// (a free port; see Sim.BrokerURL).
	BrokerListen string `yaml:"broker_listen"`
	// BrokerUsers, when not empty, makes the embedded broker require these
	// user names and passwords (DeviceSpec.Username/Password).
	BrokerUsers map[string]string `yaml:"broker_users"`
	// TopicPrefix is the MQTT topic prefix, default mesibo-iot.
	TopicPrefix string `yaml:"topic_prefix"`
	// PtyDir is where the stable symlinks to serial devices' ptys go,
	// default /tmp/mesibo-iot-sim. It is created if missing.
	PtyDir string `yaml:"pty_dir"`
	// Profiles is the directory of device profile YAMLs. Empty: the
	// repository's examples/profiles, found from the working directory
	// upwards or from this package's source location.
	Profiles string `yaml:"profiles"`
	// TimeScale speeds up (> 1) or slows down (< 1) every simulated
	// duration: command run times, telemetry periods, pulses and waits.
	// 0 means 1 (real time). Boot delays and link timers are not scaled.
	TimeScale float64 `yaml:"time_scale"`
	// Devices to simulate.
	Devices []DeviceSpec `yaml:"devices"`
}

// DeviceSpec describes one simulated device (or, with Count, several).
type DeviceSpec struct {
	// ID is the device id on the wire: 1–64 characters of A–Z a–z 0–9 . _ -
	ID string `yaml:"id"`
	// Type is rover, envsensor or relay; the profile of that name is used.
	Type string `yaml:"type"`
	// Transport is mqtt (default) or serial.
	Transport string `yaml:"transport"`
	// Link is the serial device's symlink name in PtyDir, default ID.
	Link string `yaml:"link"`
	// Telemetry is the telemetry period; 0 = the type's default (rover 2s,
	// envsensor 5s, relay 5s).
	Telemetry time.Duration `yaml:"telemetry"`
	// Baud paces a serial device's output to Baud/10 bytes per second;
	// 0 = unpaced.
	Baud int `yaml:"baud"`
	// Faults injected from the start (SetFaults changes them at run time).
	Faults Faults `yaml:"faults"`
	// Username and Password for the MQTT broker.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Armed: a rover boots with its motors armed (default: disarmed, so a
	// move needs an arm first, and after every Reboot).
	Armed bool `yaml:"armed"`
	// PersistIdempotency keeps the idempotency cache across Reboot (as if
	// the firmware kept it in non-volatile memory). Default: lost.
	PersistIdempotency bool `yaml:"persist_idempotency"`
	// UnplugPowersOff: a serial device powered from its cable; Unplug cuts
	// its power (running commands are lost) and Replug boots it (boot
	// counter + 1). Default: self-powered, Unplug only cuts the data line.
	UnplugPowersOff bool `yaml:"unplug_powers_off"`
	// Count, in a scenario file, repeats the entry Count times: ID and Link
	// then take the number (1..Count) through a %d verb if they have one
	// ("rover%03d"), else appended ("rover" → rover1, rover2...).
	Count int `yaml:"count"`
}

// Faults are the misbehaviours a device injects. Probabilities are per
// message (0..1), drawn from the device's seeded source.
type Faults struct {
	// DropAck drops a reply (accepted, done or failed, including answers
	// from the idempotency cache) instead of sending it.
	DropAck float64 `yaml:"drop_ack"`
	// DelayAck delays every reply by this much (later messages wait behind it).
	DelayAck time.Duration `yaml:"delay_ack"`
	// ErrorRate makes a command fail with code internal instead of running
	// (it still counts as executed).
	ErrorRate float64 `yaml:"error_rate"`
	// Malformed sends, before an outgoing message, an envelope the
	// protocol refuses (from wire.Cases).
	Malformed float64 `yaml:"malformed"`
	// Garbage sends, before an outgoing message, a burst of random bytes
	// (serial: line noise ended by 0x00; MQTT: an undecodable payload on
	// the telemetry topic).
	Garbage float64 `yaml:"garbage"`
	// SlowCommands adds this much to every command's run time (scaled by
	// TimeScale like the rest).
	SlowCommands time.Duration `yaml:"slow_commands"`
	// DuplicateReply sends a reply twice.
	DuplicateReply float64 `yaml:"duplicate_reply"`
	// BootBanner makes a serial device print a bootloader banner (text
	// that is not a frame) before its hello at every boot.
	BootBanner bool `yaml:"boot_banner"`
}

// LoadScenario reads a scenario YAML file. Unknown keys are errors. Relative
// Profiles and PtyDir paths are taken relative to the working directory when
// they exist there, else relative to the file. Devices with Count are
// expanded.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, err
	}
	sc, err := ParseScenario(data)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if sc.Profiles != "" && !filepath.IsAbs(sc.Profiles) {
		if _, err := os.Stat(sc.Profiles); err != nil {
			if alt := filepath.Join(dir, sc.Profiles); exists(alt) {
				sc.Profiles = alt
			}
		}
	}
	return sc, nil
}

// ParseScenario decodes scenario YAML (see LoadScenario).
func ParseScenario(data []byte) (Scenario, error) {
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	sc.Devices = ExpandDevices(sc.Devices)
	return sc, nil
}

// ExpandDevices repeats the specs that have Count > 1 (see DeviceSpec.Count).
func ExpandDevices(specs []DeviceSpec) []DeviceSpec {
	var out []DeviceSpec
	for _, d := range specs {
		if d.Count <= 1 {
			d.Count = 0
			out = append(out, d)
			continue
		}
		for i := 1; i <= d.Count; i++ {
			e := d
			e.Count = 0
			e.ID = numbered(d.ID, i)
			if d.Link != "" {
				e.Link = numbered(d.Link, i)
			}
			out = append(out, e)
		}
	}
	return out
}

func numbered(s string, i int) string {
	if strings.Contains(s, "%") {
		return fmt.Sprintf(s, i)
	}
	return s + strconv.Itoa(i)
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidID reports whether id can be a device id (and an MQTT topic level).
func ValidID(id string) bool { return idRE.MatchString(id) && id[0] != '$' }

// withDefaults fills the defaults and checks the scenario.
func (sc Scenario) withDefaults() (Scenario, error) {
	if sc.BrokerListen == "" {
		sc.BrokerListen = DefaultBrokerListen
	}
	if sc.TopicPrefix == "" {
		sc.TopicPrefix = DefaultTopicPrefix
	}
	sc.TopicPrefix = strings.TrimSuffix(sc.TopicPrefix, "/")
	if sc.PtyDir == "" {
		sc.PtyDir = DefaultPtyDir
	}
	if sc.TimeScale < 0 {
		return sc, errors.New("scenario: time_scale must not be negative")
	}
	if sc.TimeScale == 0 {
		sc.TimeScale = 1
	}
	if sc.Profiles == "" {
		dir, err := FindProfiles()
		if err != nil {
			return sc, err
		}
		sc.Profiles = dir
	}
	sc.Devices = ExpandDevices(sc.Devices)
	var errs []error
	ids := map[string]bool{}
	links := map[string]bool{}
	for i := range sc.Devices {
		d := &sc.Devices[i]
		if d.Transport == "" {
			d.Transport = TransportMQTT
		}
		where := fmt.Sprintf("devices[%d] %q", i, d.ID)
		if !ValidID(d.ID) {
			errs = append(errs, fmt.Errorf("%s: id must be 1-64 characters of A-Z a-z 0-9 . _ -", where))
		}
		if ids[d.ID] {
			errs = append(errs, fmt.Errorf("%s: duplicate id", where))
		}
		ids[d.ID] = true
		switch d.Type {
		case TypeRover, TypeEnvSensor, TypeRelay:
		default:
			errs = append(errs, fmt.Errorf("%s: type %q: want rover, envsensor or relay", where, d.Type))
		}
		switch d.Transport {
		case TransportMQTT:
		case TransportSerial:
			if d.Link == "" {
				d.Link = d.ID
			}
			if strings.ContainsAny(d.Link, "/\x00") || d.Link == "." || d.Link == ".." {
				errs = append(errs, fmt.Errorf("%s: link %q must be a file name", where, d.Link))
			}
			if links[d.Link] {
				errs = append(errs, fmt.Errorf("%s: link %q used twice", where, d.Link))
			}
			links[d.Link] = true
		default:
			errs = append(errs, fmt.Errorf("%s: transport %q: want mqtt or serial", where, d.Transport))
		}
		if d.Telemetry < 0 || d.Baud < 0 {
			errs = append(errs, fmt.Errorf("%s: telemetry and baud must not be negative", where))
		}
		if err := d.Faults.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	if len(errs) > 0 {
		return sc, errors.Join(errs...)
	}
	return sc, nil
}

func (f Faults) check() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"drop_ack", f.DropAck}, {"error_rate", f.ErrorRate}, {"malformed", f.Malformed},
		{"garbage", f.Garbage}, {"duplicate_reply", f.DuplicateReply}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("fault %s = %v: want a probability 0..1", p.name, p.v)
		}
	}
	if f.DelayAck < 0 || f.SlowCommands < 0 {
		return errors.New("fault durations must not be negative")
	}
	return nil
}

// ParseFaults applies "name=value" settings (drop_ack=0.5 delay_ack=200ms
// error_rate=0.1 malformed=0.05 garbage=0.05 slow_commands=1s
// duplicate_reply=0.1 boot_banner=true) to base. "none" or "off" clears all.
func ParseFaults(base Faults, settings ...string) (Faults, error) {
	f := base
	for _, s := range settings {
		for _, kv := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
			if kv == "none" || kv == "off" || kv == "clear" {
				f = Faults{}
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return base, fmt.Errorf("fault %q: want name=value", kv)
			}
			var err error
			prob := func(p *float64) {
				var x float64
				x, err = strconv.ParseFloat(v, 64)
				if err == nil {
					*p = x
				}
			}
			dur := func(p *time.Duration) {
				var d time.Duration
				d, err = time.ParseDuration(v)
				if err == nil {
					*p = d
				}
			}
			switch strings.ReplaceAll(strings.ToLower(k), "-", "_") {
			case "drop_ack":
				prob(&f.DropAck)
			case "delay_ack":
				dur(&f.DelayAck)
			case "error_rate":
				prob(&f.ErrorRate)
			case "malformed":
				prob(&f.Malformed)
			case "garbage":
				prob(&f.Garbage)
			case "slow_commands":
				dur(&f.SlowCommands)
			case "duplicate_reply":
				prob(&f.DuplicateReply)
			case "boot_banner":
				f.BootBanner, err = strconv.ParseBool(v)
			default:
				return base, fmt.Errorf("unknown fault %q (drop_ack, delay_ack, error_rate, malformed, garbage, slow_commands, duplicate_reply, boot_banner)", k)
			}
			if err != nil {
				return base, fmt.Errorf("fault %s: %w", k, err)
			}
		}
	}
	if err := f.check(); err != nil {
		return base, err
	}
	return f, nil
}

// String lists the non-zero faults as name=value.
func (f Faults) String() string {
	var p []string
	add := func(name string, v any, on bool) {
		if on {
			p = append(p, fmt.Sprintf("%s=%v", name, v))
		}
	}
	add("drop_ack", f.DropAck, f.DropAck > 0)
	add("delay_ack", f.DelayAck, f.DelayAck > 0)
	add("error_rate", f.ErrorRate, f.ErrorRate > 0)
	add("malformed", f.Malformed, f.Malformed > 0)
	add("garbage", f.Garbage, f.Garbage > 0)
	add("slow_commands", f.SlowCommands, f.SlowCommands > 0)
	add("duplicate_reply", f.DuplicateReply, f.DuplicateReply > 0)
	add("boot_banner", f.BootBanner, f.BootBanner)
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, " ")
}

// FindProfiles locates the repository's examples/profiles directory: from
// the working directory upwards, then from this package's source file.
func FindProfiles() (string, error) {
	const rel = "examples/profiles"
	try := func(dir string) string {
		for {
			p := filepath.Join(dir, rel)
			if exists(filepath.Join(p, "rover.yaml")) {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return ""
			}
			dir = parent
		}
	}
	if wd, err := os.Getwd(); err == nil {
		if p := try(wd); p != "" {
			return p, nil
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if p := try(filepath.Dir(file)); p != "" {
			return p, nil
		}
	}
	return "", errors.New("scenario: cannot find examples/profiles (run from the repository or set profiles / --profiles)")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
