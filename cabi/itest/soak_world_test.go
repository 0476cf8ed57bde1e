package itest

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
)

// The soak's world: devices (as the simulator runs them and as devices.yaml
// declares them), users and who may do what. The audit computes every
// entitlement from these tables, not from the product's own parser.

// Roles, lowest first.
const (
	roleNone = iota
	roleViewer
	roleOperator
	roleOwner
)

type soakDevice struct {
	addr      string // mesibo address = device id
	typ       string // rover, envsensor, relay
	transport string // mqtt, serial
	flaky     bool   // has drop/delay/error/duplicate faults from the start
	owners    []string
	operators []string
	viewers   []string
	spec      sim.DeviceSpec
}

type soakUser struct {
	name string
	kind string // admin, owner, operator, viewer, stranger
}

type soakWorld struct {
	devices []*soakDevice
	byAddr  map[string]*soakDevice
	users   []*soakUser
	byName  map[string]*soakUser
	admins  map[string]bool
	// devicesOf lists, per user, the devices where the user has at least
	// the role (index: role).
	devicesOf map[string][4][]*soakDevice
}

func (w *soakWorld) role(user, addr string) int {
	if w.admins[user] {
		return roleOwner
	}
	d := w.byAddr[addr]
	if d == nil {
		return roleNone
	}
	r := roleNone
	for _, u := range d.viewers {
		if u == user {
			r = max(r, roleViewer)
		}
	}
	for _, u := range d.operators {
		if u == user {
			r = max(r, roleOperator)
		}
	}
	for _, u := range d.owners {
		if u == user {
			r = max(r, roleOwner)
		}
	}
	return r
}

// newSoakWorld makes nMQTT + nSerial devices in the proportions of
// firmware-sim/scenarios/soak.yaml (rovers, environment sensors, relays,
// flaky rovers on MQTT; relays, sensors and noisy rovers on serial) and the
// 20 users: 1 admin, 3 owners, 6 operators, 6 viewers, 4 strangers.
func newSoakWorld(nMQTT, nSerial int, telemetry time.Duration) *soakWorld {
	w := &soakWorld{byAddr: map[string]*soakDevice{}, byName: map[string]*soakUser{}, admins: map[string]bool{}}
	addUser := func(name, kind string) {
		u := &soakUser{name: name, kind: kind}
		w.users = append(w.users, u)
		w.byName[name] = u
	}
	addUser("root", "admin")
	w.admins["root"] = true
	for i := 1; i <= 3; i++ {
		addUser(fmt.Sprintf("own%d", i), "owner")
	}
	for i := 1; i <= 6; i++ {
		addUser(fmt.Sprintf("op%d", i), "operator")
	}
	for i := 1; i <= 6; i++ {
		addUser(fmt.Sprintf("view%d", i), "viewer")
	}
	for i := 1; i <= 4; i++ {
		addUser(fmt.Sprintf("str%d", i), "stranger")
	}

	// shares of soak.yaml: MQTT 60 rovers, 50 sensors, 30 relays, 10 flaky
	// rovers (of 150); serial 30 relays, 10 sensors, 10 rovers (of 50)
	split := func(n int, parts ...int) []int {
		total := 0
		for _, p := range parts {
			total += p
		}
		out := make([]int, len(parts))
		used := 0
		for i, p := range parts {
			out[i] = n * p / total
			used += out[i]
		}
		for i := 0; used < n; i = (i + 1) % len(parts) {
			out[i]++
			used++
		}
		return out
	}
	m := split(nMQTT, 60, 50, 30, 10)
	s := split(nSerial, 30, 10, 10)
	add := func(prefix, typ, transport string, n int, f func(*sim.DeviceSpec)) {
		for i := 1; i <= n; i++ {
			id := fmt.Sprintf("%s%03d", prefix, i)
			spec := sim.DeviceSpec{ID: id, Type: typ, Transport: transport}
			if typ == sim.TypeRover {
				spec.Armed = true
			}
			if telemetry > 0 {
				spec.Telemetry = telemetry
				if typ == sim.TypeEnvSensor {
					spec.Telemetry = 2 * telemetry
				}
			}
			if transport == sim.TransportSerial {
				spec.Baud = 115200
			}
			if f != nil {
				f(&spec)
			}
			d := &soakDevice{addr: id, typ: typ, transport: transport, spec: spec}
			d.flaky = spec.Faults.DropAck > 0
			w.devices = append(w.devices, d)
			w.byAddr[id] = d
		}
	}
	add("rover", sim.TypeRover, sim.TransportMQTT, m[0], nil)
	add("env", sim.TypeEnvSensor, sim.TransportMQTT, m[1], nil)
	add("relay", sim.TypeRelay, sim.TransportMQTT, m[2], nil)
	add("flaky", sim.TypeRover, sim.TransportMQTT, m[3], func(sp *sim.DeviceSpec) {
		sp.Faults = sim.Faults{DropAck: 0.05, DelayAck: 300 * time.Millisecond, ErrorRate: 0.02, DuplicateReply: 0.05, Malformed: 0.01, Garbage: 0.01}
	})
	add("srelay", sim.TypeRelay, sim.TransportSerial, s[0], nil)
	add("senv", sim.TypeEnvSensor, sim.TransportSerial, s[1], func(sp *sim.DeviceSpec) { sp.Baud = 57600 })
	add("srover", sim.TypeRover, sim.TransportSerial, s[2], func(sp *sim.DeviceSpec) {
		sp.Faults = sim.Faults{Garbage: 0.02, Malformed: 0.02, BootBanner: true}
		sp.UnplugPowersOff = true // powered from the cable: unplugging reboots it
	})

	// access lists: every device has one owner, two operators, two viewers
	for i, d := range w.devices {
		d.owners = []string{fmt.Sprintf("own%d", i%3+1)}
		d.operators = []string{fmt.Sprintf("op%d", i%6+1), fmt.Sprintf("op%d", (i+1)%6+1)}
		d.viewers = []string{fmt.Sprintf("view%d", i%6+1), fmt.Sprintf("view%d", (i+3)%6+1)}
	}
	w.devicesOf = map[string][4][]*soakDevice{}
	for _, u := range w.users {
		var lists [4][]*soakDevice
		for _, d := range w.devices {
			r := w.role(u.name, d.addr)
			for k := roleViewer; k <= r; k++ {
				lists[k] = append(lists[k], d)
			}
		}
		w.devicesOf[u.name] = lists
	}
	return w
}

func (w *soakWorld) scenario(broker string) sim.Scenario {
	sc := sim.Scenario{Seed: 20240601, Broker: broker, TimeScale: 1}
	for _, d := range w.devices {
		sc.Devices = append(sc.Devices, d.spec)
	}
	return sc
}

// devicesYAML is the devices file (stack replaces {{profiles}} and {{ptydir}}).
func (w *soakWorld) devicesYAML() string {
	var b strings.Builder
	b.WriteString("version: 1\nprofiles: [\"{{profiles}}/*.yaml\"]\ndevices:\n")
	list := func(us []string) string { return "[" + strings.Join(us, ", ") + "]" }
	for _, d := range w.devices {
		fmt.Fprintf(&b, "  - {address: %s, id: %s, profile: %s, transport: %s, owners: %s, operators: %s, viewers: %s",
			d.addr, d.addr, d.typ, d.transport, list(d.owners), list(d.operators), list(d.viewers))
		if d.transport == sim.TransportSerial {
			fmt.Fprintf(&b, ", serial: {path: \"{{ptydir}}/%s\", baud: %d}", d.spec.ID, d.spec.Baud)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// ---- what users say ------------------------------------------------------

// command returns a command an operator may run on d (never dangerous).
func soakCommand(rng *rand.Rand, d *soakDevice) string {
	switch d.typ {
	case sim.TypeRover:
		switch rng.IntN(8) {
		case 0, 1, 2:
			return fmt.Sprintf("move %dcm speed=0.%d", 5+rng.IntN(40), 3+rng.IntN(6))
		case 3, 4:
			return fmt.Sprintf("turn %ddeg", 10+rng.IntN(170))
		case 5:
			return "stop"
		case 6:
			return []string{"lights on", "lights off"}[rng.IntN(2)]
		default:
			return "mode " + []string{"eco", "normal", "sport"}[rng.IntN(3)]
		}
	case sim.TypeRelay:
		ch := 1 + rng.IntN(8)
		switch rng.IntN(4) {
		case 0:
			return fmt.Sprintf("on %d", ch)
		case 1:
			return fmt.Sprintf("off %d", ch)
		case 2:
			return fmt.Sprintf("toggle %d", ch)
		default:
			return fmt.Sprintf("pulse %d duration=%dms", ch, 50+rng.IntN(300))
		}
	default:
		if rng.IntN(3) == 0 {
			return fmt.Sprintf("calibrate %.1f", float64(rng.IntN(21)-10)/10)
		}
		return "read"
	}
}

// badCommand returns a command the grammar refuses.
func soakBadCommand(rng *rand.Rand, d *soakDevice) string {
	switch d.typ {
	case sim.TypeRover:
		return []string{"mvoe 10cm", "move 10cm speed=3", "turn", "move 10kg"}[rng.IntN(4)]
	case sim.TypeRelay:
		return []string{"on 9", "of 1", "pulse"}[rng.IntN(3)]
	}
	return []string{"calibrate 50", "raed"}[rng.IntN(2)]
}

func soakWatch(rng *rand.Rand, d *soakDevice) string {
	if rng.IntN(2) == 0 {
		return "watch"
	}
	switch d.typ {
	case sim.TypeRover:
		return "watch battery < 90"
	case sim.TypeRelay:
		return "watch ch1 == on"
	}
	return "watch temp > 22"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
