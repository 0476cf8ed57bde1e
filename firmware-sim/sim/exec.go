package sim

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ExecHelp lists the commands Exec understands.
const ExecHelp = `commands (ID may be "all" where it makes sense):
  list                          every device: online, boot, link, faults
  status ID                     one device in detail
  offline ID | online ID        drop the connection (MQTT: last will fires) / come back
  unplug ID | replug ID         serial: close the pty (bridge sees EIO) / new pty, symlink re-pointed, hello
  reboot ID                     lose state, boot counter + 1, hello / online state again
  garbage ID [N]                send N random bytes (default 32)
  malformed ID                  send an envelope or frame the protocol refuses (wire.Cases)
  set ID FIELD VALUE            force a telemetry value, e.g. set env1 temp 35
  emit ID                       send telemetry now
  flood ID RATE DURATION        telemetry at RATE/s for DURATION, e.g. flood robot1 200 5s
  faults ID [k=v ...|none]      show or change faults: drop_ack delay_ack error_rate malformed
                                garbage slow_commands duplicate_reply boot_banner
  executions [ID]               commands executed
  help`

// Exec runs one text command (the CLI reads them from stdin) and returns
// what to print.
func (s *Sim) Exec(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", nil
	}
	verb, args := strings.ToLower(f[0]), f[1:]
	need := func(n int, usage string) error {
		if len(args) < n {
			return fmt.Errorf("usage: %s", usage)
		}
		return nil
	}
	devs := func() ([]*Device, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%s: which device?", verb)
		}
		if args[0] == "all" {
			return s.devices, nil
		}
		d := s.byID[args[0]]
		if d == nil {
			return nil, fmt.Errorf("no device %q (try list)", args[0])
		}
		return []*Device{d}, nil
	}
	each := func(fn func(d *Device) error) (string, error) {
		ds, err := devs()
		if err != nil {
			return "", err
		}
		var errs []error
		for _, d := range ds {
			if err := fn(d); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return "", errors.Join(errs...)
		}
		return "ok", nil
	}
	switch verb {
	case "help", "?":
		return ExecHelp, nil
	case "list", "ls":
		return s.list(), nil
	case "status":
		ds, err := devs()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, d := range ds {
			b.WriteString(status(d.State()))
		}
		return strings.TrimRight(b.String(), "\n"), nil
	case "offline":
		return each((*Device).GoOffline)
	case "online":
		return each((*Device).GoOnline)
	case "unplug":
		return each((*Device).Unplug)
	case "replug", "plug":
		return each((*Device).Replug)
	case "reboot":
		return each((*Device).Reboot)
	case "emit":
		return each((*Device).EmitTelemetry)
	case "garbage":
		n := 32
		if len(args) > 1 {
			v, err := strconv.Atoi(args[1])
			if err != nil || v <= 0 {
				return "", fmt.Errorf("garbage: N must be a positive number")
			}
			n = v
		}
		return each(func(d *Device) error { return d.SendGarbage(n) })
	case "malformed":
		var names []string
		out, err := each(func(d *Device) error {
			name, err := d.SendMalformed()
			names = append(names, d.ID()+": "+name)
			return err
		})
		if err != nil {
			return out, err
		}
		return strings.Join(names, "\n"), nil
	case "set":
		if err := need(3, "set ID FIELD VALUE"); err != nil {
			return "", err
		}
		v, err := strconv.ParseFloat(args[2], 64)
		if err != nil {
			if b, berr := strconv.ParseBool(args[2]); berr == nil {
				v, err = 0, nil
				if b {
					v = 1
				}
			} else {
				return "", fmt.Errorf("set: value %q is not a number", args[2])
			}
		}
		return each(func(d *Device) error { return d.Set(args[1], v) })
	case "flood":
		if err := need(3, "flood ID RATE DURATION"); err != nil {
			return "", err
		}
		rate, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return "", fmt.Errorf("flood: rate %q is not a number", args[1])
		}
		dur, err := time.ParseDuration(args[2])
		if err != nil {
			return "", fmt.Errorf("flood: %w", err)
		}
		return each(func(d *Device) error { return d.FloodTelemetry(rate, dur) })
	case "faults", "fault":
		if len(args) == 1 {
			ds, err := devs()
			if err != nil {
				return "", err
			}
			var b []string
			for _, d := range ds {
				b = append(b, d.ID()+": "+d.Faults().String())
			}
			return strings.Join(b, "\n"), nil
		}
		return each(func(d *Device) error {
			f, err := ParseFaults(d.Faults(), args[1:]...)
			if err != nil {
				return err
			}
			return d.SetFaults(f)
		})
	case "executions", "exec":
		var ex []Execution
		if len(args) > 0 {
			ds, err := devs()
			if err != nil {
				return "", err
			}
			for _, d := range ds {
				ex = append(ex, d.Executions()...)
			}
		} else {
			ex = s.Executions()
		}
		var b strings.Builder
		for _, e := range ex {
			fmt.Fprintf(&b, "%s %s boot %d #%d %s %s key=%q\n", e.At.Format("15:04:05.000"), e.Device, e.Boot, e.CmdID, e.Verb, fmtArgs(e.Args), e.IdemKey)
		}
		fmt.Fprintf(&b, "%d executions", len(ex))
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q (try help)", verb)
}

func (s *Sim) list() string {
	var b strings.Builder
	fmt.Fprintf(&b, "broker %s, prefix %s\n", s.brokerURL, s.sc.TopicPrefix)
	for _, st := range s.States() {
		on := "offline"
		if st.Online {
			on = "online"
		}
		where := st.Transport
		if st.Transport == TransportSerial {
			where = st.Link + " -> " + st.Pty
			if !st.Plugged {
				where = st.Link + " (unplugged)"
			}
		}
		fmt.Fprintf(&b, "%-12s %-9s %-7s boot %d  %s  %s", st.ID, st.Type, on, st.Boot, where, st.Summary)
		if f := st.Faults.String(); f != "none" {
			fmt.Fprintf(&b, "  faults: %s", f)
		}
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}

func status(st DeviceState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s over %s): online=%v boot=%d\n", st.ID, st.Type, st.Transport, st.Online, st.Boot)
	if st.Transport == TransportSerial {
		fmt.Fprintf(&b, "  port %s -> %s (plugged %v)\n", st.Link, st.Pty, st.Plugged)
	}
	keys := make([]string, 0, len(st.Values))
	for k := range st.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("  values:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, st.Values[k])
	}
	b.WriteByte('\n')
	if st.LastCommand != "" {
		fmt.Fprintf(&b, "  last command %s: %s (%s ago)\n", st.LastCommand, st.LastOutcome, time.Since(st.LastAt).Round(time.Millisecond))
	}
	if len(st.Running) > 0 {
		fmt.Fprintf(&b, "  running: %s\n", strings.Join(st.Running, ", "))
	}
	c := st.Counters
	fmt.Fprintf(&b, "  commands %d executed %d cached %d refused %d replies %d telemetry %d dropped %d garbage %d malformed %d bad-input %d boots %d\n",
		c.Commands, c.Executed, c.Repeats, c.Refused, c.Replies, c.Telemetry, c.Dropped, c.Garbage, c.Malformed, c.BadIn, c.Boots)
	fmt.Fprintf(&b, "  faults: %s\n", st.Faults)
	return b.String()
}
