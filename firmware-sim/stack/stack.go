// Package stack starts the whole product the way it runs in production, for
// the demo, the integration tests, the soak and the benchmarks: simulated
// devices (firmware-sim) with their MQTT broker and serial ptys, and
// mesibo-host loading mesibo_mod_iot.so (and optionally the filter module)
// from a mesibo.conf.
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
)

// Options describe one stack.
type Options struct {
	Build    string // directory with mesibo-host and the modules (default $MESIBO_IOT_BUILD or ./build)
	ABI      string // doc, r2019, r2020
	Scenario sim.Scenario
	// Devices is the devices.yaml content. {{profiles}} is replaced by the
	// absolute path of examples/profiles and {{ptydir}} by the scenario's
	// pty directory.
	Devices string
	// Conf lists extra `key = value` lines for the iot module's block.
	Conf []string
	// Filter puts the filter module (blocked_words = FilterWords) first.
	Filter      bool
	FilterWords string
	LogLevel    int               // host --log-level (default 2)
	HostArgs    []string          // more mesibo-host arguments (e.g. --stamp)
	Discard     func(string) bool // host lines not kept (hostproc.Options.Discard)
	Echo        func(line string)
	SimLogf     func(format string, args ...any)
	WorkDir     string // where devices.yaml and mesibo.conf are written (default: a temp dir, removed by Close)
}

// Stack is a running simulator and host.
type Stack struct {
	Sim         *sim.Sim
	Host        *hostproc.Host
	Dir         string
	DevicesFile string
	ConfFile    string
	ownDir      bool
	cancel      context.CancelFunc
}

// RepoRoot finds the repository root (the directory with go.mod) from the
// working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}

// BuildDir is the directory with mesibo-host and the modules.
func BuildDir() string {
	if d := os.Getenv("MESIBO_IOT_BUILD"); d != "" {
		return d
	}
	if root, err := RepoRoot(); err == nil {
		return filepath.Join(root, "build")
	}
	return "build"
}

// Start starts the simulator, waits for its MQTT devices, writes the
// configuration and starts the host.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Build == "" {
		o.Build = BuildDir()
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	st := &Stack{Dir: o.WorkDir}
	if st.Dir == "" {
		st.Dir, err = os.MkdirTemp("", "mesibo-iot-stack-")
		if err != nil {
			return nil, err
		}
		st.ownDir = true
	}
	sc := o.Scenario
	if sc.PtyDir == "" {
		sc.PtyDir = filepath.Join(st.Dir, "pty")
	}
	if sc.Profiles == "" {
		sc.Profiles = filepath.Join(root, "examples", "profiles")
	}
	simOpts := sim.Options{Quiet: true, Logf: o.SimLogf}
	// the simulator lives until Close; ctx only bounds the start
	var simCtx context.Context
	simCtx, st.cancel = context.WithCancel(context.Background())
	st.Sim, err = sim.Start(simCtx, sc, simOpts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("simulator: %w", err)
	}
	if err := st.Sim.WaitReady(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("simulator devices not ready: %w", err)
	}

	devs := strings.NewReplacer("{{profiles}}", sc.Profiles, "{{ptydir}}", sc.PtyDir).Replace(o.Devices)
	st.DevicesFile = filepath.Join(st.Dir, "devices.yaml")
	if err := os.WriteFile(st.DevicesFile, []byte(devs), 0o644); err != nil {
		st.Close()
		return nil, err
	}
	var conf strings.Builder
	conf.WriteString("# written by firmware-sim/stack\n")
	if o.Filter {
		words := o.FilterWords
		if words == "" {
			words = "darn"
		}
		fmt.Fprintf(&conf, "module filter {\n  blocked_words = %s\n}\n", words)
	}
	conf.WriteString("module iot {\n")
	fmt.Fprintf(&conf, "  devices = %s\n", st.DevicesFile)
	fmt.Fprintf(&conf, "  mqtt_broker = %s\n", st.Sim.BrokerURL())
	fmt.Fprintf(&conf, "  mqtt_topic_prefix = %s\n", prefixOr(sc.TopicPrefix))
	hasKey := func(k string) bool {
		for _, l := range o.Conf {
			if strings.HasPrefix(strings.TrimSpace(l), k) {
				return true
			}
		}
		return false
	}
	if !hasKey("metrics_listen") {
		conf.WriteString("  metrics_listen = 127.0.0.1:0\n")
	}
	if !hasKey("mqtt_bridge_id") {
		conf.WriteString("  mqtt_bridge_id = stack\n")
	}
	for _, l := range o.Conf {
		fmt.Fprintf(&conf, "  %s\n", l)
	}
	conf.WriteString("}\n")
	st.ConfFile = filepath.Join(st.Dir, "mesibo.conf")
	if err := os.WriteFile(st.ConfFile, []byte(conf.String()), 0o644); err != nil {
		st.Close()
		return nil, err
	}
	lvl := o.LogLevel
	if lvl == 0 {
		lvl = 2
	}
	st.Host, err = hostproc.Start(ctx, hostproc.Options{
		Binary: filepath.Join(o.Build, "mesibo-host"), ModulesDir: o.Build, ABI: o.ABI,
		ConfFile: st.ConfFile, LogLevel: lvl, Echo: o.Echo, Args: o.HostArgs, Discard: o.Discard,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	if _, err := st.Host.WaitFor(ctx, func(e hostproc.Event) bool { return e.Kind == "load" && e.Arg(0) == "iot" }); err != nil {
		st.Close()
		return nil, err
	}
	if ev := st.Host.Filter(func(e hostproc.Event) bool { return e.Kind == "load" && e.Arg(0) == "iot" }); len(ev) > 0 && ev[0].Arg(1) != "ok" {
		out := st.Host.Transcript()
		st.Close()
		return nil, fmt.Errorf("the iot module did not load:\n%s", out)
	}
	return st, nil
}

func prefixOr(p string) string {
	if p == "" {
		return sim.DefaultTopicPrefix
	}
	return p
}

var metricsRe = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// MetricsURL returns the module's metrics URL from its log line.
func (s *Stack) MetricsURL(ctx context.Context) (string, error) {
	ev, err := s.Host.WaitFor(ctx, func(e hostproc.Event) bool { return e.Kind == "log" && metricsRe.MatchString(e.Text) })
	if err != nil {
		return "", err
	}
	return metricsRe.FindStringSubmatch(ev.Text)[1], nil
}

// Close stops the host (cleanly, so the module's cleanup runs) and the
// simulator, and removes the work directory if Start made it.
func (s *Stack) Close() error {
	var errs []error
	if s.Host != nil && s.Host.Alive() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		errs = append(errs, s.Host.Quit(ctx))
		cancel()
	}
	if s.Sim != nil {
		errs = append(errs, s.Sim.Close())
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
	}
	return errors.Join(errs...)
}
