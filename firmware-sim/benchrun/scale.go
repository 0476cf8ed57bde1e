package benchrun

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// scaleDevices writes devices.yaml content with n environment sensors
// dev1..devN (ids env-1..env-N) that anyone may command.
func scaleDevices(n int, profiles string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nprofiles: [\"%s/*.yaml\"]\n", profiles)
	if n == 0 {
		b.WriteString("devices: []\n")
		return b.String()
	}
	b.WriteString("devices:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {address: dev%d, id: env-%d, profile: envsensor, transport: mqtt, owners: [root], operators: [\"*\"]}\n", i, i)
	}
	return b.String()
}

// debugInfo asks the host for its Go module's live heap (after a GC) and
// goroutines, and reads its RSS.
type memInfo struct {
	heap, rss  float64
	goroutines int
}

func hostMem(ctx context.Context, h *hostproc.Host) (memInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	mark := h.Len()
	if err := h.Send("debug"); err != nil {
		return memInfo{}, err
	}
	ev, err := h.WaitForAfter(ctx, mark, func(e hostproc.Event) bool { return e.Kind == "debug" || e.Kind == "error" })
	if err != nil {
		return memInfo{}, err
	}
	if ev.Kind == "error" || ev.Field("heap_bytes") == "" || ev.Field("heap_bytes") == "na" {
		return memInfo{}, fmt.Errorf("debug: %s", ev.Raw)
	}
	var m memInfo
	m.heap, _ = strconv.ParseFloat(ev.Field("heap_bytes"), 64)
	m.goroutines, _ = strconv.Atoi(ev.Field("goroutines"))
	m.rss, err = procRSS(h.Pid())
	return m, err
}

func quitHost(h *hostproc.Host) {
	if h != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_ = h.Quit(ctx)
		cancel()
	}
}

// registered starts a host with n registered (not simulated) devices.
func (r *runner) registered(ctx context.Context, dir string, n int, brokerURL string, extra string) (*hostproc.Host, memInfo, error) {
	devs := filepath.Join(dir, fmt.Sprintf("devices-%d.yaml", n))
	if err := os.WriteFile(devs, []byte(scaleDevices(n, filepath.Join(r.cfg.Root, "examples", "profiles"))), 0o644); err != nil {
		return nil, memInfo{}, err
	}
	conf := fmt.Sprintf("module iot {\n  devices = %s\n  metrics_listen = off\n  reload_interval = 0\n  log_level = warn\n  rate_user = off\n  rate_device = off\n  mqtt_broker = %s\n  mqtt_topic_prefix = scale%d\n  mqtt_bridge_id = scale%d\n%s}\n", devs, brokerURL, n, n, extra)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	h, err := hostproc.Start(sctx, hostproc.Options{Binary: filepath.Join(r.cfg.Build, "mesibo-host"), ModulesDir: r.cfg.Build, Conf: conf, LogLevel: 1, Args: []string{"--stamp"}})
	if err != nil {
		return nil, memInfo{}, err
	}
	if ev := h.Filter(func(e hostproc.Event) bool { return e.Kind == "load" }); len(ev) == 0 || ev[0].Arg(1) != "ok" {
		quitHost(h)
		return nil, memInfo{}, fmt.Errorf("iot did not load:\n%s", h.Transcript())
	}
	return h, memInfo{}, nil
}

func (r *runner) scale(ctx context.Context) error {
	const nreg = 10000
	nact, cpuWin, rssRun, rssEvery, warm, settle, nq := 1000, 30*time.Second, 10*time.Minute, 10*time.Second, 90*time.Second, 45*time.Second, 10000
	if r.cfg.Short {
		nact, cpuWin, rssRun, rssEvery, warm, settle, nq = 300, 6*time.Second, 30*time.Second, 3*time.Second, 5*time.Second, 20*time.Second, 3000
	}
	br, err := r.broker()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchrun-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Two hosts with 0 and 10,000 registered devices (none running) stay
	// up while the active stack runs: the idle one is the CPU baseline; their
	// memory is read at the end, when they have been up for a while.
	h0, _, err := r.registered(ctx, dir, 0, br.URL(), "")
	if err != nil {
		return err
	}
	defer quitHost(h0)
	r.track(h0.Pid())
	h1, _, err := r.registered(ctx, dir, nreg, br.URL(), "  queue_size = 1000\n")
	if err != nil {
		return err
	}
	defer quitHost(h1)
	r.track(h1.Pid())
	loaded := time.Now()

	// nact of the 10,000 registered devices run in the simulator, telemetry
	// every second each
	tp := newTap("iot")
	sc := sim.Scenario{Seed: 1, Broker: br.URL(), TopicPrefix: "scale", TimeScale: 1,
		Devices: []sim.DeviceSpec{{ID: "env-%d", Type: sim.TypeEnvSensor, Transport: sim.TransportMQTT, Count: nact, Telemetry: time.Second}}}
	stctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	st, err := stack.Start(stctx, stack.Options{Build: r.cfg.Build, Scenario: sc, Devices: scaleDevices(nreg, "{{profiles}}"),
		// idempotency_window = 1m: every (sender, message id) is remembered
		// for the window (1 h by default), so with commands flowing the heap
		// grows for the first hour by design; with 1 min it is level before
		// the RSS samples start
		Conf:     []string{"log_level = warn", "rate_user = off", "rate_device = off", "metrics_listen = off", "reload_interval = 0", "mqtt_bridge_id = scale", "idempotency_window = 1m"},
		LogLevel: 1, HostArgs: []string{"--stamp"}, Echo: tp.line, Discard: discardBulk})
	cancel()
	if err != nil {
		return err
	}
	defer closeStack(st)
	pid := st.Host.Pid()
	r.track(pid)
	sleepCtx(ctx, min(cpuWin, 5*time.Second)) // every device has sent a few
	telSent := func() float64 {
		n := 0
		for _, s := range st.Sim.States() {
			n += int(s.Counters.Telemetry)
		}
		return float64(n)
	}
	var c0, c1, i0, i1, b0, b1 time.Duration
	var t0 time.Time
	var n0, el, rate float64
	if _, err := r.calm(ctx, "scale CPU window", 3, func() error {
		c0, _ = procCPU(pid)
		i0, _ = procCPU(h1.Pid())
		b0, _ = procCPU(br.pid())
		t0, n0 = time.Now(), telSent()
		sleepCtx(ctx, cpuWin)
		c1, _ = procCPU(pid)
		i1, _ = procCPU(h1.Pid())
		b1, _ = procCPU(br.pid())
		el = time.Since(t0).Seconds()
		rate = (telSent() - n0) / el
		return nil
	}); err != nil {
		return err
	}
	hostCore := (c1 - c0).Seconds() / el // cores
	idleCore := (i1 - i0).Seconds() / el
	brokerCore := (b1 - b0).Seconds() / el
	netCore := max(hostCore-idleCore, 0)
	perK := netCore / (rate / 1000)
	brokerPerK := brokerCore / (rate / 1000)
	r.logf("scale: %d devices, %.0f telemetry/s: host %.1f%% of a core (idle twin %.1f%%), broker %.1f%%", nact, rate, 100*hostCore, 100*idleCore, 100*brokerCore)

	// RSS over the run, with a trickle of commands besides the telemetry;
	// sampling starts after a warm-up with the commands going (each device
	// with work gets its sender goroutine, the caches fill)
	var logins2 strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&logins2, "login user%d\n", i)
	}
	_ = st.Host.Send(strings.TrimSuffix(logins2.String(), "\n"))
	ro := &oursRT{h: st.Host, tp: tp, ndev: nact, nusers: 100, text: "set_interval 1"}
	ro.id.Store(1 << 32)
	type sample struct {
		t   float64
		mem memInfo
	}
	var samples []sample
	rctx, rcancel := context.WithTimeout(ctx, warm+rssRun+time.Minute)
	defer rcancel()
	cmdDone := make(chan int, 1)
	go func() { // 20 commands/s for the whole run
		n, _ := loadGen(rctx, 20, warm+rssRun, func() uint64 { return ro.id.Add(1) }, ro.send)
		cmdDone <- n
	}()
	sleepCtx(ctx, warm)
	start := time.Now()
	for {
		m, err := hostMem(ctx, st.Host)
		if err != nil {
			rcancel()
			<-cmdDone
			return err
		}
		samples = append(samples, sample{time.Since(start).Seconds(), m})
		if time.Since(start) >= rssRun || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, rssEvery)
	}
	cmds := <-cmdDone
	if err := ctx.Err(); err != nil {
		return err
	}
	var xs, rss, heap []float64
	for _, s := range samples {
		xs = append(xs, s.t)
		rss = append(rss, s.mem.rss)
		heap = append(heap, s.mem.heap)
	}
	slope, _ := linfit(xs, rss)
	hslope, _ := linfit(xs, heap)
	// growth: the median of the last third of the samples against the
	// median of the first third (a linear fit follows single spikes)
	third := max(len(rss)/3, 1)
	growth := median(rss[len(rss)-third:])/median(rss[:third]) - 1
	hgrowth := median(heap[len(heap)-third:])/median(heap[:third]) - 1
	lo, hi := rss[0], rss[0]
	for _, v := range rss {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	first, last := samples[0].mem, samples[len(samples)-1].mem
	r.logf("scale: RSS %s..%s over %v, growth %+.1f%% (heap %+.1f%%); heap %s → %s; goroutines %d → %d", fmtBytes(lo), fmtBytes(hi), rssRun, 100*growth, 100*hgrowth, fmtBytes(first.heap), fmtBytes(last.heap), first.goroutines, last.goroutines)

	// memory per registered device, once settled (the hosts have been up
	// since before the active stack started)
	sleepCtx(ctx, time.Until(loaded.Add(settle)))
	settled := time.Since(loaded).Round(time.Second)
	m0, err := hostMem(ctx, h0)
	if err != nil {
		return err
	}
	m1, err := hostMem(ctx, h1)
	if err != nil {
		return err
	}
	quitHost(h0)
	h0 = nil
	perDevHeap := (m1.heap - m0.heap) / nreg
	perDevRSS := (m1.rss - m0.rss) / nreg
	r.logf("scale: registered 0: heap %s rss %s; %d: heap %s rss %s", fmtBytes(m0.heap), fmtBytes(m0.rss), nreg, fmtBytes(m1.heap), fmtBytes(m1.rss))

	// memory per queued command: commands to offline devices
	var logins strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&logins, "login user%d\n", i)
	}
	if err := h1.Send(strings.TrimSuffix(logins.String(), "\n")); err != nil {
		return err
	}
	qBefore, err := hostMem(ctx, h1)
	if err != nil {
		return err
	}
	o := &oursRT{h: h1, ndev: 100, nusers: 100, text: "set_interval 60"}
	ids := make([]uint64, 0, 500)
	for k := 0; k < nq; k++ {
		ids = append(ids, o.id.Add(1))
		if len(ids) == cap(ids) || k == nq-1 {
			if err := o.send(ids); err != nil {
				return err
			}
			ids = ids[:0]
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = h1.Sync(sctx)
	cancel()
	if err != nil {
		return err
	}
	sleepCtx(ctx, 2*time.Second) // the core has taken them (its queue is drained in well under a second)
	qAfter, err := hostMem(ctx, h1)
	if err != nil {
		return err
	}
	quitHost(h1)
	h1 = nil
	perQueued := (qAfter.heap - qBefore.heap) / float64(nq)
	r.logf("scale: %d queued commands: heap %s → %s", nq, fmtBytes(qBefore.heap), fmtBytes(qAfter.heap))

	cmd := r.cmd("scale")
	r.add(Figure{Bench: "scale", Name: fmt.Sprintf("Scale: memory per registered device (%s registered)", fmtInt(nreg)), Ours: fmtBytes(perDevHeap) + " live heap, " + fmtBytes(perDevRSS) + " RSS",
		Baseline: "2 KiB (target)", Ratio: math.Max(perDevHeap, perDevRSS) / 2048, Target: "≤ 2 KB", Met: yesNo(math.Max(perDevHeap, perDevRSS) <= 2048), Command: cmd})
	r.add(Figure{Bench: "scale", Name: fmt.Sprintf("Scale: CPU per 1,000 telemetry msg/s (%d active devices)", nact), Ours: fmt.Sprintf("%.1f %% of a core", 100*perK),
		Baseline: fmt.Sprintf("%.1f %% (Mosquitto, same messages)", 100*brokerPerK), Ratio: perK / brokerPerK, Target: "reported", Met: "—", Command: cmd})
	r.add(Figure{Bench: "scale", Name: "Scale: memory per queued command", Ours: fmtBytes(perQueued), Baseline: "—", Target: "reported", Met: "—", Command: cmd})
	r.add(Figure{Bench: "scale", Name: fmt.Sprintf("Scale: RSS over a %v run", rssRun), Ours: fmt.Sprintf("%s–%s; last third %+.1f %%, heap %+.1f %%", fmtBytes(lo), fmtBytes(hi), 100*growth, 100*hgrowth),
		Baseline: fmtBytes(median(rss[:third])) + " (first third, median)", Ratio: 1 + growth, Target: "no growth (< 5 %)", Met: yesNo(growth < 0.05 && hgrowth < 0.05), Command: cmd})

	var b strings.Builder
	fmt.Fprintf(&b, "**Registered devices.** Two hosts, one with an empty devices file and one with %s MQTT devices (environment sensors, none of them running), both connected to Mosquitto, measured %v after loading: the module's live Go heap after a collection (`debug`, `docs/host.md`) and VmRSS:\n\n| devices | live heap | RSS |\n|---:|---:|---:|\n| 0 | %s | %s |\n| %s | %s | %s |\n| per device | **%s** | **%s** |\n\n",
		fmtInt(nreg), settled, fmtBytes(m0.heap), fmtBytes(m0.rss), fmtInt(nreg), fmtBytes(m1.heap), fmtBytes(m1.rss), fmtBytes(perDevHeap), fmtBytes(perDevRSS))
	b.WriteString("A registered device costs its entry in the devices file as parsed (address, id, access lists, profile reference), its state in the core, and its routing-table and address-filter entries; the MQTT transport subscribes with wildcards, so nothing per device there. The RSS adds what the Go runtime keeps for the heap to grow into (GOGC=100). Reading the devices file leaves about three times what is kept as garbage (for 10,000 devices about 30 MiB of RSS, which the Go runtime would give back over a minute or more); the module returns it to the OS at the end of init (`debug.FreeOSMemory` in `cabi/exports.go`).\n\n")
	fmt.Fprintf(&b, "**Queued commands.** The host with %s devices, %s `set_interval 60` commands from 100 users to 100 of the offline devices (rate limits off, queue_size 1000): the live heap went from %s to %s, **%s per queued command** (the command, its encoded form, the sender's params, its idempotency entry, the \"queued\" note's bookkeeping).\n\n",
		fmtInt(nreg), fmtInt(float64(nq)), fmtBytes(qBefore.heap), fmtBytes(qAfter.heap), fmtBytes(perQueued))
	fmt.Fprintf(&b, "**Active devices.** %s of %s registered devices run in the simulator (one paho client each, on the same Mosquitto), each sending telemetry every second: %.0f messages/s over %v (the simulator's counters). The host used %.1f %% of a core (`/proc/<pid>/stat`); the idle twin (the other host, %s devices registered, no traffic) %.1f %% in the same interval. Net of that, **%.1f %% of a core per 1,000 telemetry messages/s** (each message decoded, checked against the device's profile, offered to watchers and alert rules). Mosquitto, which receives each message and passes it to the bridge: %.1f %% per 1,000/s.\n\n",
		fmtInt(float64(nact)), fmtInt(nreg), rate, cpuWin, 100*hostCore, fmtInt(nreg), 100*idleCore, 100*perK, 100*brokerPerK)
	fmt.Fprintf(&b, "The idle cost is the core's timer tick (every 50 ms) walking every registered device twice (commands to retry, watchers to flush): %.1f %% of a core for %s devices with nothing to do. Keeping sets of the devices that have a retry or a pending watcher message would make it proportional to those instead.\n\n", 100*idleCore, fmtInt(nreg))
	fmt.Fprintf(&b, "**RSS over time.** The same stack, the telemetry going on and %s commands (20/s) to the active devices from 100 logged-in users; after a %v warm-up with the commands going, VmRSS and the live heap every %v for %v:\n\n| | first | last | min | max |\n|---|---:|---:|---:|---:|\n| RSS | %s | %s | %s | %s |\n| live heap | %s | %s | | |\n| goroutines | %d | %d | | |\n\nMedian of the last third of the samples against the first third: RSS %+.1f %%, live heap %+.1f %%; linear trends %s/min and %s/min. The module ran with `idempotency_window = 1m`: it remembers every (sender, message id) for that window (1 h by default) so that a message sent twice runs once, which with 20 commands/s is about 250 bytes × 72,000 entries by the end of the first hour at the default — growth by design, bounded by the window (and by at most 10⁶ entries); with 1 min it is level before the samples start. Goroutines: each device gets a sender goroutine with its first command, kept while it is registered, so their number grows to about the number of devices commanded and stops there (%d active devices here).\n\n",
		fmtInt(float64(cmds)), warm, rssEvery, rssRun, fmtBytes(first.rss), fmtBytes(last.rss), fmtBytes(lo), fmtBytes(hi), fmtBytes(first.heap), fmtBytes(last.heap), first.goroutines, last.goroutines,
		100*growth, 100*hgrowth, fmtBytes(slope*60), fmtBytes(hslope*60), nact)
	plotFile := "scale-rss.png"
	if err := plotMem(filepath.Join(r.cfg.PlotDir, plotFile), fmt.Sprintf("mesibo-host + module, %d active of %d devices", nact, nreg), xs, rss, heap); err != nil {
		return err
	}
	fmt.Fprintf(&b, "![RSS and live heap over the run](bench/%s)\n", plotFile)
	r.section("scale", "Scale", b.String())
	return nil
}

func plotMem(path, title string, xs, rss, heap []float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "MiB"
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	for i, s := range []struct {
		name string
		ys   []float64
	}{{"RSS", rss}, {"live Go heap", heap}} {
		var xys plotter.XYs
		for k := range xs {
			xys = append(xys, plotter.XY{X: xs[k], Y: s.ys[k] / (1 << 20)})
		}
		ln, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		ln.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		p.Add(ln, pts)
		p.Legend.Add(s.name, ln, pts)
	}
	p.Legend.Top = false
	return p.Save(7*vg.Inch, 3.5*vg.Inch, path)
}
