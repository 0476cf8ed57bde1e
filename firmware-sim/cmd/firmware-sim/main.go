// Command firmware-sim runs simulated mesibo-iot devices (rovers,
// environment sensors, relay boards) over MQTT and serial ptys, for demos
// and CI. See firmware-sim/README.md.
//
//	go run ./firmware-sim/cmd/firmware-sim --scenario firmware-sim/scenarios/demo.yaml
//	go run ./firmware-sim/cmd/firmware-sim --rovers 2 --sensors 1 --serial-relays 1
//
// It prints the broker URL and the pty paths, then runs until SIGINT or
// SIGTERM, taking fault-injection commands on stdin (type help).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "firmware-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("firmware-sim", flag.ContinueOnError)
	var (
		scenario  = fs.String("scenario", "", "scenario YAML file (default: the demo devices robot1, robot2, env1, relay1)")
		rovers    = fs.Int("rovers", 0, "add N MQTT rovers robot1..N")
		sensors   = fs.Int("sensors", 0, "add N MQTT environment sensors env1..N")
		relays    = fs.Int("relays", 0, "add N MQTT relay boards relay1..N")
		sRelays   = fs.Int("serial-relays", 0, "add N serial relay boards srelay1..N (ptys in --pty-dir)")
		broker    = fs.String("broker", "", "external MQTT broker URL (tcp://host:1883); default: start an embedded broker")
		listen    = fs.String("listen", "127.0.0.1:1883", "embedded broker address (port 0 picks a free one)")
		seed      = fs.Int64("seed", 1, "seed of every simulated value")
		quiet     = fs.Bool("quiet", false, "print nothing but the broker URL, the pty paths and errors")
		plain     = fs.Bool("plain", false, "a line per event even on a terminal (no redrawn table)")
		ptyDir    = fs.String("pty-dir", "", "directory of the serial devices' stable symlinks (default /tmp/mesibo-iot-sim)")
		timeScale = fs.Float64("time-scale", 0, "speed up simulated durations (moves, pulses, telemetry periods) by this factor")
		prefix    = fs.String("prefix", "", "MQTT topic prefix (default mesibo-iot)")
		profiles  = fs.String("profiles", "", "directory of device profiles (default: the repository's examples/profiles)")
		noStdin   = fs.Bool("no-stdin", false, "do not read commands from stdin")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: firmware-sim [--scenario FILE] [flags]\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nstdin %s\n", sim.ExecHelp)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var sc sim.Scenario
	switch {
	case *scenario != "":
		var err error
		if sc, err = sim.LoadScenario(*scenario); err != nil {
			return err
		}
	case *rovers+*sensors+*relays+*sRelays == 0:
		sc = demoScenario()
	}
	if sc.BrokerListen == "" || set["listen"] {
		sc.BrokerListen = *listen
	}
	if set["broker"] {
		sc.Broker = *broker
	}
	if set["seed"] || *scenario == "" {
		sc.Seed = *seed
	}
	if set["pty-dir"] {
		sc.PtyDir = *ptyDir
	}
	if set["time-scale"] {
		sc.TimeScale = *timeScale
	}
	if set["prefix"] {
		sc.TopicPrefix = *prefix
	}
	if set["profiles"] {
		sc.Profiles = *profiles
	}
	add := func(n int, id, typ, transport string) {
		if n > 0 {
			sc.Devices = append(sc.Devices, sim.DeviceSpec{ID: id, Count: n, Type: typ, Transport: transport})
		}
	}
	add(*rovers, "robot", sim.TypeRover, sim.TransportMQTT)
	add(*sensors, "env", sim.TypeEnvSensor, sim.TransportMQTT)
	add(*relays, "relay", sim.TypeRelay, sim.TransportMQTT)
	add(*sRelays, "srelay", sim.TypeRelay, sim.TransportSerial)
	sc.Devices = sim.ExpandDevices(sc.Devices)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var out io.Writer = os.Stdout
	table := !*quiet && isTerminal(os.Stdout)
	if *plain {
		out = struct{ io.Writer }{os.Stdout} // not a *os.File: no table
		table = false
	}
	s, err := sim.Start(ctx, sc, sim.Options{Quiet: *quiet, Out: out})
	if err != nil {
		if sc.Broker == "" && strings.Contains(err.Error(), "address already in use") {
			err = fmt.Errorf("%w (another broker on %s? use --listen 127.0.0.1:0 or --broker URL)", err, sc.BrokerListen)
		}
		return err
	}
	defer s.Close()

	fmt.Printf("broker %s (topic prefix %s)\n", s.BrokerURL(), s.Scenario().TopicPrefix)
	for _, d := range s.Devices() {
		if d.LinkPath() != "" {
			fmt.Printf("serial %s %s -> %s\n", d.ID(), d.LinkPath(), d.PtyPath())
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = s.WaitReady(wctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "firmware-sim: not every device is ready yet:", err)
	}
	if !*quiet {
		fmt.Printf("%d devices running; type help for commands, Ctrl-C to stop\n", len(s.Devices()))
	}

	if !*noStdin {
		lines := make(chan string)
		go readLines(ctx, os.Stdin, lines)
		for {
			select {
			case <-ctx.Done():
				return nil
			case line, ok := <-lines:
				if !ok {
					<-ctx.Done() // stdin closed: keep running until a signal
					return nil
				}
				line = strings.TrimSpace(line)
				if line == "quit" || line == "exit" {
					return nil
				}
				res, err := s.Exec(line)
				switch {
				case err != nil:
					fmt.Fprintln(os.Stderr, "error:", err)
					if table { // the table is redrawn over stderr: repeat it there
						s.Logf("> %s: error: %v", line, err)
					}
				case res != "":
					fmt.Println(res)
					if table && !strings.Contains(res, "\n") {
						s.Logf("> %s: %s", line, res)
					}
				}
			}
		}
	}
	<-ctx.Done()
	return nil
}

// readLines sends stdin's lines until EOF or ctx ends. (A read blocked on a
// terminal cannot be interrupted; the process exits around it.)
func readLines(ctx context.Context, r io.Reader, out chan<- string) {
	defer close(out)
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "firmware-sim: panic reading stdin: %v\n%s", p, debug.Stack())
		}
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case out <- sc.Text():
		case <-ctx.Done():
			return
		}
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// demoScenario is scenarios/demo.yaml's devices.
func demoScenario() sim.Scenario {
	return sim.Scenario{Devices: []sim.DeviceSpec{
		{ID: "robot1", Type: sim.TypeRover, Transport: sim.TransportMQTT},
		{ID: "robot2", Type: sim.TypeRover, Transport: sim.TransportMQTT, Armed: true},
		{ID: "env1", Type: sim.TypeEnvSensor, Transport: sim.TransportMQTT},
		{ID: "relay1", Type: sim.TypeRelay, Transport: sim.TransportSerial, Baud: 115200},
	}}
}
