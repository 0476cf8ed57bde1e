package sim

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// view is the simulator's own output when Options.Logf is nil: on a
// terminal, a table redrawn every second (one line per device, a summary,
// the latest events); elsewhere, one line per event.
type view struct {
	s     *Sim
	out   io.Writer
	table bool
	fd    int

	mu     sync.Mutex
	recent []string
}

const viewRecent = 6 // events shown under the table

func newView(s *Sim, out io.Writer) *view {
	v := &view{s: s, out: out, fd: -1}
	if f, ok := out.(*os.File); ok {
		fd := int(f.Fd())
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			v.table, v.fd = true, fd
		}
	}
	return v
}

func (v *view) start() {
	if !v.table {
		return
	}
	v.s.goSafe("terminal view", func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		v.draw()
		for {
			select {
			case <-v.s.ctx.Done():
				return
			case <-t.C:
				v.draw()
			}
		}
	})
}

// stop draws the last table (the Sim has stopped) and moves below it.
func (v *view) stop() {
	if v.table {
		v.draw()
		v.mu.Lock()
		fmt.Fprintln(v.out)
		v.mu.Unlock()
	}
}

func (v *view) event(msg string) {
	line := time.Now().Format("15:04:05.000") + " " + msg
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.table {
		fmt.Fprintln(v.out, line)
		return
	}
	v.recent = append(v.recent, line)
	if len(v.recent) > viewRecent {
		v.recent = v.recent[len(v.recent)-viewRecent:]
	}
}

func (v *view) size() (rows, cols int) {
	rows, cols = 40, 120
	if v.fd >= 0 {
		if ws, err := unix.IoctlGetWinsize(v.fd, unix.TIOCGWINSZ); err == nil && ws.Row > 0 && ws.Col > 0 {
			rows, cols = int(ws.Row), int(ws.Col)
		}
	}
	return rows, cols
}

func (v *view) draw() {
	rows, cols := v.size()
	v.mu.Lock()
	recent := append([]string(nil), v.recent...)
	v.mu.Unlock()
	text := render(v.s, v.s.States(), recent, rows, cols, time.Now())
	v.mu.Lock()
	defer v.mu.Unlock()
	// Home, each line cleared to its end, then clear below.
	var b strings.Builder
	b.WriteString("\x1b[H")
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	io.WriteString(v.out, b.String())
}

// render lays out the table for a terminal of rows × cols. With more
// devices than rows it shows the most recently active ones (in scenario
// order) and summarises the rest.
func render(s *Sim, states []DeviceState, recent []string, rows, cols int, now time.Time) string {
	var tot Counters
	online, offline := 0, []string{}
	for _, st := range states {
		c := st.Counters
		tot.Commands += c.Commands
		tot.Executed += c.Executed
		tot.Repeats += c.Repeats
		tot.Refused += c.Refused
		tot.Replies += c.Replies
		tot.Telemetry += c.Telemetry
		tot.Dropped += c.Dropped
		tot.Garbage += c.Garbage
		tot.Malformed += c.Malformed
		tot.BadIn += c.BadIn
		if st.Online {
			online++
		} else {
			offline = append(offline, st.ID)
		}
	}
	var b strings.Builder
	line := func(s string) {
		if r := []rune(s); len(r) > cols {
			s = string(r[:cols])
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	line(fmt.Sprintf("firmware-sim  broker %s  seed %d  up %s  devices %d, online %d",
		s.brokerURL, s.sc.Seed, now.Sub(s.started).Round(time.Second), len(states), online))
	line(fmt.Sprintf("commands %d  executed %d  cached %d  refused %d  replies %d  telemetry %d  dropped %d  garbage %d  malformed %d  bad input %d",
		tot.Commands, tot.Executed, tot.Repeats, tot.Refused, tot.Replies, tot.Telemetry, tot.Dropped, tot.Garbage, tot.Malformed, tot.BadIn))
	line(fmt.Sprintf("%-12s %-9s %-6s %-3s %4s %5s %5s %6s  %-16s %-22s %-26s %s",
		"ID", "TYPE", "LINK", "ON", "BOOT", "CMDS", "EXEC", "TEL", "LAST COMMAND", "OUTCOME", "VALUES", "PORT / FAULTS"))

	avail := rows - 3 - 1 - 1 - min(len(recent), viewRecent) - 1
	avail = max(avail, 3)
	shown := states
	hidden := 0
	if len(states) > avail {
		idx := make([]int, len(states))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return states[idx[a]].Activity.After(states[idx[b]].Activity) })
		keep := idx[:avail-1]
		sort.Ints(keep)
		shown = make([]DeviceState, 0, len(keep))
		for _, i := range keep {
			shown = append(shown, states[i])
		}
		hidden = len(states) - len(shown)
	}
	for _, st := range shown {
		on := "no"
		if st.Online {
			on = "yes"
		}
		last, out := "-", "-"
		if st.LastCommand != "" {
			last = st.LastCommand + " " + ago(now.Sub(st.LastAt))
			out = st.LastOutcome
		}
		if len(st.Running) > 0 {
			out = "running " + strings.Join(st.Running, ",")
		}
		port := ""
		if st.Transport == TransportSerial {
			port = st.Link
			if !st.Plugged {
				port += " (unplugged)"
			}
		}
		if f := st.Faults.String(); f != "none" {
			port += " faults: " + f
		}
		line(fmt.Sprintf("%-12s %-9s %-6s %-3s %4d %5d %5d %6d  %-16s %-22s %-26s %s",
			clip(st.ID, 12), st.Type, st.Transport, on, st.Boot,
			st.Counters.Commands, st.Counters.Executed, st.Counters.Telemetry,
			clip(last, 16), clip(out, 22), clip(st.Summary, 26), port))
	}
	if hidden > 0 {
		msg := fmt.Sprintf("… %d quieter devices not shown", hidden)
		if len(offline) > 0 {
			msg += fmt.Sprintf("; offline (%d): %s", len(offline), clip(strings.Join(offline, " "), 60))
		}
		line(msg)
	}
	if len(recent) > 0 {
		line("recent:")
		for _, r := range recent {
			line("  " + r)
		}
	}
	return b.String()
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%dh", int(d.Hours()))
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
