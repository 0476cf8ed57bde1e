// Package benchrun runs mesibo-iot's benchmarks, each together with its
// baseline in the same run, and writes docs/benchmarks.md: a table of
// figure, ours, baseline, ratio, target and the command that reproduces
// it, the machine the figures come from, a section per benchmark and the
// latency plots in docs/bench/.
//
// Figures are ratios against a baseline measured in the same run because
// the machines this runs on are shared and noisy: a slow moment slows the
// baseline as much as the product, when the two are interleaved.
//
// Everything it starts (Mosquitto, mesibo-host processes, simulated
// devices, MQTT clients) is stopped before Run returns, and every phase is
// bounded in time by the context and its own deadlines.
package benchrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// Config says what to run and where to write.
type Config struct {
	// Short runs the quick version (well under 2 minutes): fewer rounds,
	// shorter load steps, a 30-second RSS run.
	Short bool
	// Only, if not empty, runs just these benchmarks (names as in Names).
	Only []string
	// Root is the repository root (default: found from the working
	// directory); Build the directory with mesibo-host and the modules
	// (default Root/build).
	Root, Build string
	// Doc is the Markdown file to write ("" = do not write); PlotDir
	// where the plots go (default docs/bench next to Doc).
	Doc, PlotDir string
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

// Names lists the benchmarks in the order they run.
var Names = []string{"codecs", "pass", "accept", "mqtt", "serial", "scale"}

// Figure is one row of the summary table.
type Figure struct {
	Bench    string // which benchmark (section) it belongs to
	Name     string
	Ours     string
	Baseline string
	Ratio    float64 // ours / baseline; 0 = not applicable
	Target   string
	Met      string // "yes", "no", "—"
	Command  string
}

// Section is a benchmark's detail text (Markdown).
type Section struct {
	Bench string
	Title string
	Body  string
}

// Report is everything one run produced.
type Report struct {
	Machine  Machine
	Short    bool
	Started  time.Time
	Duration time.Duration
	Figures  []Figure
	Sections []Section
	Errors   []string // benchmarks that could not run, and why
	// Foreign is the share of the machine's CPU time (0..1) that processes
	// other than the run's used during each benchmark; Retried counts the
	// measured turns that were repeated because it was above maxForeign.
	Foreign map[string]float64
	Order   []string
	Retried int
}

type runner struct {
	cfg   Config
	rep   *Report
	mosq  *mosquitto
	noop  string // directory with the gonoop module and a host
	start time.Time

	pidMu       sync.Mutex
	pids        map[int]bool // processes the run started (for foreignMeter)
	busyRetries int          // turns measured again because of outside load
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "%s benchrun: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

func (r *runner) add(f Figure) { r.rep.Figures = append(r.rep.Figures, f) }
func (r *runner) section(b, title, body string) {
	r.rep.Sections = append(r.rep.Sections, Section{Bench: b, Title: title, Body: body})
}

// cmd is the command that reproduces a benchmark's figures.
func (r *runner) cmd(bench string) string {
	c := "go run ./firmware-sim/cmd/benchrun -only " + bench
	if r.cfg.Short {
		c += " -short"
	}
	return c
}

// Run runs the benchmarks and, if cfg.Doc is set, writes the document and
// the plots. A benchmark that fails is reported in the document (and in
// Report.Errors) and the others still run; the error returned joins them.
// When ctx ends first, nothing is written (the plots of the benchmarks that
// finished are).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Root == "" {
		root, err := stack.RepoRoot()
		if err != nil {
			return nil, err
		}
		cfg.Root = root
	}
	if cfg.Build == "" {
		cfg.Build = filepath.Join(cfg.Root, "build")
	}
	if cfg.Doc != "" && cfg.PlotDir == "" {
		cfg.PlotDir = filepath.Join(filepath.Dir(cfg.Doc), "bench")
	}
	if cfg.PlotDir == "" {
		cfg.PlotDir = filepath.Join(os.TempDir(), "mesibo-iot-bench")
	}
	if err := os.MkdirAll(cfg.PlotDir, 0o755); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, rep: &Report{Short: cfg.Short, Started: time.Now()}, start: time.Now()}
	r.rep.Machine = machine(cfg.Root)
	for _, f := range []string{"mesibo-host", "mesibo_mod_iot.so", "mesibo_mod_filter.so"} {
		if _, err := os.Stat(filepath.Join(cfg.Build, f)); err != nil {
			return nil, fmt.Errorf("%s missing in %s: run `make module host` first", f, cfg.Build)
		}
	}
	want := map[string]bool{}
	for _, n := range cfg.Only {
		known := false
		for _, k := range Names {
			known = known || k == n
		}
		if !known {
			return nil, fmt.Errorf("unknown benchmark %q; known: %s", n, strings.Join(Names, ", "))
		}
		want[n] = true
	}
	benches := map[string]func(context.Context) error{
		"codecs": r.codecs, "pass": r.pass, "accept": r.accept,
		"mqtt": r.mqttRoundTrip, "serial": r.serial, "scale": r.scale,
	}
	defer r.close()
	var errs []error
	for _, n := range Names {
		if len(want) > 0 && !want[n] {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		r.logf("== %s", n)
		t0 := time.Now()
		fm := r.meter()
		err := benches[n](ctx)
		if r.rep.Foreign == nil {
			r.rep.Foreign = map[string]float64{}
		}
		r.rep.Foreign[n] = fm.foreign()
		r.rep.Order = append(r.rep.Order, n)
		if err != nil {
			r.logf("%s failed: %v", n, err)
			r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("%s: %v", n, err))
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
		r.logf("%s took %v (other processes: %.0f%% of the machine)", n, time.Since(t0).Round(100*time.Millisecond), 100*r.rep.Foreign[n])
	}
	r.rep.Duration = time.Since(r.start)
	r.rep.Retried = r.busyRetries
	// an interrupted run (signal, -timeout) leaves the document as it was
	if cfg.Doc != "" && ctx.Err() == nil {
		if err := writeDoc(cfg, r.rep); err != nil {
			errs = append(errs, err)
		}
	}
	return r.rep, errors.Join(errs...)
}

func (r *runner) close() {
	if r.mosq != nil {
		r.mosq.stop()
		r.mosq = nil
	}
}

// broker returns the run's Mosquitto, starting it the first time.
func (r *runner) broker() (*mosquitto, error) {
	if r.mosq != nil && r.mosq.alive() {
		return r.mosq, nil
	}
	m, err := startMosquitto()
	if err != nil {
		return nil, err
	}
	r.mosq = m
	return m, nil
}
