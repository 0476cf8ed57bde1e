// Command demo shows mesibo-iot the way a person meets it: simulated devices
// (two rovers and an environment sensor over MQTT with an embedded broker, a
// relay board on a serial pty), mesibo-host loading the filter module and
// mesibo_mod_iot.so from a mesibo.conf, and a scripted conversation. It
// prints a transcript and exits non-zero if any step did not happen.
//
// With --interactive it opens the same setup for a person to type in.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

const devicesYAML = `# devices.yaml of the demo
version: 1
profiles: ["{{profiles}}/*.yaml"]
devices:
  - {address: robot1, id: rover-001, name: Lab rover, profile: rover, transport: mqtt, owners: [alice], operators: [bob]}
  - {address: robot2, id: rover-002, name: Yard rover, profile: rover, transport: mqtt, owners: [alice], operators: [bob]}
  - {address: env1, id: envsensor-001, name: Greenhouse sensor, profile: envsensor, transport: mqtt, owners: [alice], viewers: ["*"]}
  - address: relay1
    id: relay-01
    name: Pump relays
    profile: relay
    transport: serial
    serial: {path: "{{ptydir}}/relay1", baud: 115200}
    owners: [alice]
    operators: [bob]
groups:
  - {name: rovers, group_id: 4001, members: [robot1, robot2]}
`

func scenario() sim.Scenario {
	return sim.Scenario{Seed: 42, TimeScale: 4, Devices: []sim.DeviceSpec{
		{ID: "rover-001", Type: "rover", Transport: "mqtt", Armed: true},
		{ID: "rover-002", Type: "rover", Transport: "mqtt", Armed: true},
		{ID: "envsensor-001", Type: "envsensor", Transport: "mqtt", Telemetry: 2 * time.Second},
		{ID: "relay-01", Type: "relay", Transport: "serial", Link: "relay1"},
	}}
}

func main() {
	interactive := flag.Bool("interactive", false, "type as a user instead of playing the script")
	abi := flag.String("abi", "doc", "ABI revision mesibo-host emulates: doc, r2019 or r2020")
	verbose := flag.Bool("v", false, "also print every line mesibo-host prints")
	flag.Parse()
	var err error
	if *interactive {
		err = chat(*abi)
	} else {
		err = play(*abi, *verbose)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func start(ctx context.Context, abi string, echo func(string)) (*stack.Stack, error) {
	st, err := stack.Start(ctx, stack.Options{
		ABI: abi, Scenario: scenario(), Devices: devicesYAML, Filter: true, FilterWords: "darn",
		Conf: []string{"admins = alice", "progress_updates = on", "watch_interval = 2s", "confirm_timeout = 20s", "log_level = info"},
		Echo: echo, LogLevel: 2,
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := st.Sim.WaitOnline(wctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("devices did not come online: %w", err)
	}
	return st, nil
}

// ---- the scripted demo --------------------------------------------------------

type demo struct {
	st    *stack.Stack
	h     *hostproc.Host
	ctx   context.Context
	id    atomic.Uint64
	step  int
	shown map[string]bool
	// backOnline is the transcript's length when robot2 was last sent back
	// online: the next step waits for the module's log line after it
	backOnline int
}

func play(abi string, verbose bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var echo func(string)
	if verbose {
		echo = func(l string) { fmt.Println("    | " + l) }
	}
	fmt.Println("Starting the simulated devices (robot1, robot2, env1 over MQTT with an embedded broker;")
	fmt.Println("relay1 on a serial pty) and mesibo-host with the filter module and mesibo-iot ...")
	st, err := start(ctx, abi, echo)
	if err != nil {
		return err
	}
	defer st.Close()
	d := &demo{st: st, h: st.Host, ctx: ctx, shown: map[string]bool{}}
	d.id.Store(500)
	fmt.Printf("Ready: broker %s, relay1 on %s (ABI %s).\n", st.Sim.BrokerURL(), st.Sim.Device("relay-01").LinkPath(), abi)
	for _, u := range []string{"alice", "bob", "mallory"} {
		d.h.Login(u)
	}

	steps := []struct {
		title string
		run   func() error
	}{
		{"Ask a device what it can do", func() error {
			return d.expect("bob", "robot1", "help", "move <distance")
		}},
		{"A command: progress as transient messages, then one final answer", func() error {
			return d.expect("bob", "robot1", "move 50cm speed=0.8", "move: done")
		}},
		{"The device's status", func() error { return d.expect("bob", "robot1", "status", "robot1 is online") }},
		{"A misspelt command gets a suggestion", func() error {
			return d.expect("bob", "robot1", "mvoe 10cm", "did you mean 'move'")
		}},
		{"A bad argument says what is valid", func() error {
			return d.expect("bob", "robot1", "turn 90deg speed=2", "speed must be between 0 and 1")
		}},
		{"A user who is not allowed", func() error {
			return d.expect("mallory", "robot1", "move 10cm", "not allowed to use robot1")
		}},
		{"The filter module runs first and blocks a word", func() error { return d.blocked("bob", "robot1", "move darn it") }},
		{"A dangerous command asks for confirmation", func() error {
			id := d.say("alice", "robot1", "arm")
			if _, err := d.reply("alice", id, `Reply "yes"`, true); err != nil {
				return err
			}
			return d.expectID(d.say("alice", "robot1", "yes"), "alice", id, "arm: done")
		}},
		{"Watch telemetry, then a threshold alert", func() error {
			if err := d.expect("bob", "env1", "watch", "Watching env1"); err != nil {
				return err
			}
			if _, err := d.from("bob", "env1", "temp", false); err != nil {
				return err
			}
			fmt.Println("  (the greenhouse heats up)")
			env := d.st.Sim.Device("envsensor-001")
			env.Set("temp", 33)
			env.EmitTelemetry()
			if _, err := d.from("bob", "env1", "env1 alert: temp", false); err != nil {
				return err
			}
			return d.expect("bob", "env1", "unwatch", "Stopped watching")
		}},
		{"An offline device: the command waits and runs when it is back", func() error {
			rover := d.st.Sim.Device("rover-002")
			fmt.Println("  (robot2 loses its connection)")
			from := d.h.Len()
			rover.GoOffline()
			if err := d.waitLog(from, "robot2 (rover-002) is offline"); err != nil {
				return err
			}
			id := d.say("bob", "robot2", "turn 45deg")
			if _, err := d.reply("bob", id, "robot2 is offline", true); err != nil {
				return err
			}
			fmt.Println("  (robot2 reconnects)")
			rover.GoOnline()
			_, err := d.reply("bob", id, "turn: done", false)
			return err
		}},
		{"An offline device: the command expires", func() error {
			rover := d.st.Sim.Device("rover-002")
			from := d.h.Len()
			rover.GoOffline()
			if err := d.waitLog(from, "robot2 (rover-002) is offline"); err != nil {
				return err
			}
			id := d.say("bob", "robot2", "stop", "expiry=3")
			_, err := d.reply("bob", id, "expired after 3 s", false)
			d.backOnline = d.h.Len()
			rover.GoOnline()
			return err
		}},
		{"A group command: one combined answer", func() error {
			if err := d.waitLog(d.backOnline, "robot2 (rover-002) is online"); err != nil {
				return err
			}
			id := d.say("bob", "rovers", "stop", "group=4001")
			_, err := d.reply("bob", id, "rovers stop: 2/2 done", false)
			return err
		}},
		{"The serial relay board, unplugged and replugged", func() error {
			if err := d.expect("bob", "relay1", "on 2", "on: done"); err != nil {
				return err
			}
			relay := d.st.Sim.Device("relay-01")
			fmt.Println("  (relay1's USB cable is pulled)")
			from := d.h.Len()
			relay.Unplug()
			if err := d.waitLog(from, "relay1 (relay-01) is offline"); err != nil {
				return err
			}
			id := d.say("bob", "relay1", "off 2")
			if _, err := d.reply("bob", id, "relay1 is offline", true); err != nil {
				return err
			}
			fmt.Println("  (plugged back in)")
			relay.Replug()
			_, err := d.reply("bob", id, "off: done", false)
			return err
		}},
		{"The bridge lists what you may reach", func() error { return d.expect("bob", "iot", "devices", "relay1") }},
	}
	for _, s := range steps {
		d.step++
		fmt.Printf("\n%d. %s\n", d.step, s.title)
		if err := s.run(); err != nil {
			fmt.Println("\n--- mesibo-host transcript ---")
			fmt.Print(d.h.Transcript())
			return fmt.Errorf("step %d (%s): %w", d.step, s.title, err)
		}
	}
	if err := d.audit(); err != nil {
		return err
	}
	fmt.Println("\nAll steps happened. Every command got exactly one final answer; no command ran twice.")
	fmt.Println("Try it yourself: make chat. Real hardware: README.md and docs/protocol.md.")
	return nil
}

func (d *demo) say(from, to, text string, extra ...string) uint64 {
	id := d.id.Add(1)
	label := to
	for _, e := range extra {
		if strings.HasPrefix(e, "group=") {
			label = to + " (group)"
		}
	}
	fmt.Printf("  %-7s → %-8s %s\n", from, label+":", text)
	d.h.Msg(from, to, id, text, extra...)
	return id
}

func (d *demo) wait(what string, pred func(hostproc.Event) bool) (hostproc.Event, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	ev, err := d.h.WaitFor(ctx, pred)
	if err != nil {
		return ev, fmt.Errorf("%s did not happen: %w", what, err)
	}
	return ev, nil
}

// waitLog waits for a log line containing sub among the events from index
// from on (hostproc.Host.Len before the action that causes it), so that an
// earlier line of the same text does not count.
func (d *demo) waitLog(from int, sub string) error {
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	if _, err := d.h.WaitForAfter(ctx, from, func(e hostproc.Event) bool { return e.Kind == "log" && strings.Contains(e.Text, sub) }); err != nil {
		return fmt.Errorf("%s did not happen: %w", sub, err)
	}
	return nil
}

// reply waits for a message delivered to user with refid and text containing
// want, printing every message to that user with that refid until then.
func (d *demo) reply(user string, refid uint64, want string, transient bool) (hostproc.Event, error) {
	printed := map[string]bool{}
	ev, err := d.wait(fmt.Sprintf("an answer containing %q", want), func(e hostproc.Event) bool {
		if e.Kind != "deliver" || e.Arg(0) != user || e.Field("refid") != fmt.Sprint(refid) {
			return false
		}
		return strings.Contains(e.Text, want)
	})
	for _, e := range d.h.Filter(func(e hostproc.Event) bool {
		return e.Kind == "deliver" && e.Arg(0) == user && e.Field("refid") == fmt.Sprint(refid)
	}) {
		if printed[e.Field("id")] || d.shown[e.Field("id")] {
			continue
		}
		printed[e.Field("id")] = true
		d.show(e)
	}
	return ev, err
}

func (d *demo) show(e hostproc.Event) {
	d.shown[e.Field("id")] = true
	tag := ""
	if f := e.Field("flags"); f == "4" || f == "5" {
		tag = " (transient)"
	}
	fmt.Printf("  %-7s → %-8s %s%s\n", e.Field("from"), e.Arg(0)+":", indent(e.Text), tag)
}

// from waits for an unsolicited message (telemetry, alert) from a device.
func (d *demo) from(user, dev, want string, _ bool) (hostproc.Event, error) {
	ev, err := d.wait(fmt.Sprintf("a message from %s containing %q", dev, want), func(e hostproc.Event) bool {
		return e.Kind == "deliver" && e.Arg(0) == user && e.Field("from") == dev && e.Field("refid") == "0" && strings.Contains(e.Text, want) && !d.shown[e.Field("id")]
	})
	if err == nil {
		d.show(ev)
	}
	return ev, err
}

func (d *demo) expect(from, to, text, want string) error {
	return d.expectID(d.say(from, to, text), from, 0, want)
}

// expectID: the answer to message id (or to refid if set) contains want.
func (d *demo) expectID(id uint64, user string, refid uint64, want string) error {
	if refid == 0 {
		refid = id
	}
	_, err := d.reply(user, refid, want, false)
	return err
}

func (d *demo) blocked(from, to, text string) error {
	id := d.say(from, to, text)
	ev, err := d.wait("the filter's decision", func(e hostproc.Event) bool {
		return e.Kind == "decision" && e.Arg(0) == "filter" && e.Field("id") == fmt.Sprint(id)
	})
	if err != nil {
		return err
	}
	if ev.Field("result") != "CONSUMED" {
		return errors.New("the filter did not block the message")
	}
	fmt.Println("  (the filter module consumed it: mesibo-iot never saw it)")
	return nil
}

// audit checks the transcript and the simulator's record: one final answer
// per command, nothing executed twice.
func (d *demo) audit() error {
	finals := map[string]int{}
	for _, e := range d.h.Events() {
		if e.Kind == "send" && e.Arg(0) == "iot" && e.Field("refid") != "0" && e.Field("flags") == "1" && e.Field("from") != "iot" {
			finals[e.Field("to")+"/"+e.Field("refid")]++
		}
	}
	for k, n := range finals {
		if n != 1 {
			return fmt.Errorf("message %s got %d final answers", k, n)
		}
	}
	seen := map[string]bool{}
	for _, x := range d.st.Sim.Executions() {
		if seen[x.IdemKey] {
			return fmt.Errorf("%s ran %s twice (key %s)", x.Device, x.Verb, x.IdemKey)
		}
		seen[x.IdemKey] = true
	}
	return nil
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", 21)) }

// ---- make chat ----------------------------------------------------------------

func chat(abi string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	user := "alice"
	var out = os.Stdout
	echo := func(line string) {
		e := hostproc.Parse(line)
		switch {
		case e.Kind == "deliver" && e.Arg(0) == user:
			tag := ""
			if e.Field("flags") == "4" || e.Field("flags") == "5" {
				tag = "  (transient)"
			}
			fmt.Fprintf(out, "\r%s → %s: %s%s\n> ", e.Field("from"), user, strings.ReplaceAll(e.Text, "\n", "\n    "), tag)
		case e.Kind == "log" && e.Arg(1) == "0":
			fmt.Fprintf(out, "\r[log] %s\n> ", e.Text)
		}
	}
	fmt.Println("Starting the demo setup ...")
	st, err := start(ctx, abi, echo)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.Host
	for _, u := range []string{"alice", "bob"} {
		h.Login(u)
	}
	fmt.Print(`Chat with the devices. Lines are  <address>: <text>  e.g.  robot1: help
  devices: robot1, robot2 (rovers), env1 (sensor), relay1 (serial relay); the bridge is iot
  /as <user>        become another user (alice owns everything, bob operates, others may only look)
  /sim <command>    control the simulator: unplug relay-01, replug relay-01, offline rover-002,
                    online rover-002, reboot rover-001, set envsensor-001 temp 35, list
  /quit
`)
	var id uint64 = 1
	in := bufio.NewReader(os.Stdin)
	for {
		fmt.Print("> ")
		line, err := in.ReadString('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line == "/quit":
			return nil
		case strings.HasPrefix(line, "/as "):
			user = strings.TrimSpace(line[4:])
			h.Login(user)
			fmt.Printf("you are %s\n", user)
		case strings.HasPrefix(line, "/sim "):
			res, err := st.Sim.Exec(strings.TrimSpace(line[5:]))
			if err != nil {
				fmt.Println("sim:", err)
			} else if res != "" {
				fmt.Println(res)
			}
		default:
			to, text, ok := strings.Cut(line, ":")
			if !ok {
				fmt.Println("write  <address>: <text>, e.g.  robot1: help")
				continue
			}
			id++
			h.Msg(user, strings.TrimSpace(to), id, strings.TrimSpace(text))
		}
	}
}
