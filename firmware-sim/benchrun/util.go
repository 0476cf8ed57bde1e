package benchrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPUs     int
	CPUModel string
	MemTotal string
	Kernel   string
	Go       string
	Load     string // load average when the run started
	Date     time.Time
	Commit   string
}

func machine(root string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH, Date: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				if kb, err := strconv.ParseFloat(strings.Fields(l)[1], 64); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Load = loadAvg()
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += " (with uncommitted changes)"
		}
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ---- statistics ----

// quantile returns the q-quantile (0..1) of sorted xs (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return sorted[i]
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// latencies summarises a latency sample in microseconds.
type latencies struct {
	N                   int
	P50, P90, P99, P999 float64
	Max                 float64
	sorted              []float64
}

func summarize(us []float64) latencies {
	s := append([]float64(nil), us...)
	sort.Float64s(s)
	l := latencies{N: len(s), sorted: s}
	if len(s) == 0 {
		return l
	}
	l.P50, l.P90, l.P99, l.P999 = quantile(s, 0.5), quantile(s, 0.9), quantile(s, 0.99), quantile(s, 0.999)
	l.Max = s[len(s)-1]
	return l
}

// linfit returns the least-squares slope and intercept of y over x.
func linfit(x, y []float64) (slope, icept float64) {
	n := float64(len(x))
	if n < 2 {
		return 0, 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0, sy / n
	}
	slope = (n*sxy - sx*sy) / d
	return slope, (sy - slope*sx) / n
}

// ---- formatting ----

func fmtUS(us float64) string {
	switch {
	case math.IsNaN(us):
		return "—"
	case us >= 10000:
		return fmt.Sprintf("%.1f ms", us/1000)
	case us >= 1000:
		return fmt.Sprintf("%.2f ms", us/1000)
	case us >= 100:
		return fmt.Sprintf("%.0f µs", us)
	case us >= 10:
		return fmt.Sprintf("%.1f µs", us)
	}
	return fmt.Sprintf("%.2f µs", us)
}

func fmtNS(ns float64) string {
	if ns >= 10000 {
		return fmtUS(ns / 1000)
	}
	if ns >= 100 {
		return fmt.Sprintf("%.0f ns", ns)
	}
	return fmt.Sprintf("%.1f ns", ns)
}

func fmtBytes(b float64) string {
	switch {
	case math.Abs(b) >= 10<<20:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	case math.Abs(b) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case math.Abs(b) >= 10<<10:
		return fmt.Sprintf("%.0f KiB", b/(1<<10))
	case math.Abs(b) >= 1<<10:
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func fmtInt(n float64) string {
	s := strconv.FormatInt(int64(math.Round(n)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// ---- processes ----

// procCPU returns the user+system CPU time a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procRSS returns a process's resident set size in bytes.
func procRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			fs := strings.Fields(sc.Text())
			kb, err := strconv.ParseFloat(fs[1], 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- Mosquitto ----

const mosquittoBin = "/usr/sbin/mosquitto"

type mosquitto struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startMosquitto runs Mosquitto on a free loopback port with TCP_NODELAY
// (as transports/mqtt's tests do), no persistence and enough descriptors
// for the scale benchmark's thousand devices.
func startMosquitto() (*mosquitto, error) {
	if _, err := os.Stat(mosquittoBin); err != nil {
		return nil, fmt.Errorf("mosquitto is not installed (%s): install the Debian package mosquitto", mosquittoBin)
	}
	dir, err := os.MkdirTemp("", "benchrun-mosquitto-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nset_tcp_nodelay true\npersistence false\nuser root\nallow_anonymous true\nmax_queued_messages 100000\nlog_dest file %s\nlog_type error\nlog_type warning\n",
		port, filepath.Join(dir, "mosquitto.log"))
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	m := &mosquitto{dir: dir, port: port, done: make(chan struct{})}
	m.cmd = exec.Command(mosquittoBin, "-c", cf)
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return m, nil
		}
		select {
		case <-m.done:
			log, _ := os.ReadFile(filepath.Join(dir, "mosquitto.log"))
			m.stop()
			return nil, fmt.Errorf("mosquitto exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("mosquitto does not accept connections: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *mosquitto) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }
func (m *mosquitto) pid() int    { return m.cmd.Process.Pid }

func (m *mosquitto) alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// freeze stops (SIGSTOP) or resumes (SIGCONT) the broker.
func (m *mosquitto) freeze(on bool) error {
	if on {
		return m.cmd.Process.Signal(syscall.SIGSTOP)
	}
	return m.cmd.Process.Signal(syscall.SIGCONT)
}

func (m *mosquitto) stop() {
	m.once.Do(func() {
		if m.cmd.Process != nil {
			_ = m.cmd.Process.Signal(syscall.SIGCONT)
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(3 * time.Second):
				_ = m.cmd.Process.Kill()
				<-m.done
			}
		}
		_ = os.RemoveAll(m.dir)
	})
}

// ---- building ----

// goBuild runs `go build` in root with a deadline.
func goBuild(ctx context.Context, root string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	c.Dir = root
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// runCmd runs a command in dir and returns its combined output.
func runCmd(ctx context.Context, dir, name string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	return string(out), err
}

// ---- other processes' load ----

// cpuTotals reads the machine's busy and total CPU time from /proc/stat.
func cpuTotals() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var v [10]uint64
	for i := 1; i < len(f) && i <= 10; i++ {
		v[i-1], _ = strconv.ParseUint(f[i], 10, 64)
	}
	// user nice system idle iowait irq softirq steal (guest is in user).
	// Interrupt time is left out: the run's own network traffic is handled
	// there and a process's stat does not count it. Steal is other
	// tenants of the host.
	busyT := v[0] + v[1] + v[2] + v[7]
	totalT := busyT + v[3] + v[4] + v[5] + v[6]
	const hz = 100
	return time.Duration(busyT) * time.Second / hz, time.Duration(totalT) * time.Second / hz
}

// foreignMeter measures how much of the machine processes other than ours
// (benchrun, the hosts it started, its Mosquitto) used over an interval:
// the machine is shared, and a benchmark whose baseline and product turns
// saw very different outside load is repeated.
type foreignMeter struct {
	pids              func() []int
	busy0, total0, o0 time.Duration
}

func (r *runner) meter() *foreignMeter {
	m := &foreignMeter{pids: r.ourPids}
	m.busy0, m.total0 = cpuTotals()
	m.o0 = m.ours()
	return m
}

func (m *foreignMeter) ours() time.Duration {
	d := selfCPU()
	for _, p := range m.pids() {
		if c, err := procCPU(p); err == nil {
			d += c
		}
	}
	return d
}

// foreign returns the share of the machine's CPU time (0..1) used by other
// processes since the meter started.
func (m *foreignMeter) foreign() float64 {
	busy, total := cpuTotals()
	o := m.ours()
	dt := total - m.total0
	if dt <= 0 {
		return 0
	}
	f := float64((busy-m.busy0)-(o-m.o0)) / float64(dt)
	return min(max(f, 0), 1)
}

// ourPids lists the processes the run started that are alive.
func (r *runner) ourPids() []int {
	r.pidMu.Lock()
	defer r.pidMu.Unlock()
	var out []int
	for p := range r.pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
			out = append(out, p)
		} else {
			delete(r.pids, p)
		}
	}
	if r.mosq != nil && r.mosq.alive() {
		out = append(out, r.mosq.pid())
	}
	return out
}

func (r *runner) track(pid int) {
	if pid <= 0 {
		return
	}
	r.pidMu.Lock()
	if r.pids == nil {
		r.pids = map[int]bool{}
	}
	r.pids[pid] = true
	r.pidMu.Unlock()
}

// maxForeign is the outside load above which a measured turn is repeated:
// a fifth of the machine.
const maxForeign = 0.2

// calm runs f (one measured turn) until other processes used at most
// maxForeign of the machine during it, at most tries times; it returns the
// outside load of the turn it kept.
func (r *runner) calm(ctx context.Context, what string, tries int, f func() error) (float64, error) {
	var fl float64
	for k := 0; k < tries; k++ {
		m := r.meter()
		if err := f(); err != nil {
			return 0, err
		}
		fl = m.foreign()
		if fl <= maxForeign || ctx.Err() != nil {
			return fl, nil
		}
		r.logf("%s: other processes used %.0f%% of the machine; measuring again", what, 100*fl)
		r.busyRetries++
	}
	return fl, nil
}
