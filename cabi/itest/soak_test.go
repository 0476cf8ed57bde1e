package itest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// TestSoak proves the product's promises under load and faults: simulated
// devices on MQTT (Mosquitto, which the soak kills and restarts) and serial
// ptys (unplugged and replugged), users sending commands and watching
// telemetry, devices rebooting and sending garbage and malformed CBOR, a rogue
// MQTT client, users logging in and out. Then it audits the host's transcript
// and the simulator's execution record (soak_audit_test.go).
//
// MESIBO_IOT_SOAK is the load phase's duration (default 30s; `make soak` runs
// 5m; 0 or off skips). MESIBO_IOT_SOAK_DEVICES=mqtt,serial overrides the
// device counts (default 150,50), MESIBO_IOT_SOAK_RATE the messages per
// second from all users (default devices/10, at least 5),
// MESIBO_IOT_SOAK_REPORT names a file the figures are written to and
// MESIBO_IOT_SOAK_TRANSCRIPT one for the host's transcript and the
// executions (for a failure's post-mortem).
func TestSoak(t *testing.T) {
	cfg := soakConfigFromEnv(t)
	dir := buildDir(t)
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skipf("mosquitto is not installed (%s): install the Debian package mosquitto to run the soak", mosquittoBin)
	}
	began := time.Now()
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "mosquitto"), 0o755); err != nil {
		t.Fatal(err)
	}
	broker, err := startSoakBroker(filepath.Join(work, "mosquitto"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	w := newSoakWorld(cfg.mqtt, cfg.serial, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{
		Build: dir, Scenario: w.scenario(broker.URL()), Devices: w.devicesYAML(), LogLevel: 2,
		WorkDir: filepath.Join(work, "stack"),
		SimLogf: func(format string, args ...any) { // errors only (Quiet)
			t.Logf("simulator: "+format, args...)
		},
		Conf: []string{
			"admins = root", "log_level = info", "reload_interval = 1s", "watch_interval = 1s",
			"confirm_timeout = 10s", "rate_user = 600/1m", "rate_device = 120/1m", "command_ttl = 30s",
			"idempotency_window = 1m", // its shortest: what the window holds at the end is bounded by the last minute's messages
			"max_message = 4096", "mqtt_max_message = 8192", "serial_reconnect_max = 1s",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := st.Host
	closed := false
	defer func() {
		if !closed {
			if t.Failed() {
				t.Logf("last host lines:\n%s\nstderr:\n%s", tail(h, 60), h.Stderr())
			}
			_ = st.Close()
		}
	}()
	mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
	murl, err := st.MetricsURL(mctx)
	mcancel()
	if err != nil {
		t.Fatal(err)
	}
	sh := newSoakHost(h)
	ndev := len(w.devices)
	t.Logf("soak: %d devices (%d MQTT, %d serial), %d users, load %v at %.1f messages/s, faults every %v, broker restarts at %v",
		ndev, cfg.mqtt, cfg.serial, len(w.users), cfg.duration, cfg.rate, cfg.faultEvery, cfg.brokerAt)

	// ---- the module sees every device online
	if err := waitMetric(h, murl, "mesibo_iot_devices_online", float64(ndev), 90*time.Second); err != nil {
		t.Fatalf("devices online: %v", err)
	}
	t.Logf("soak: %d devices online after %v", ndev, time.Since(began).Round(time.Millisecond))

	// ---- warm-up: everyone logs in, sets watches; every device runs one
	// command (its sender goroutine exists from now on); baseline
	for _, u := range w.users {
		sh.login(u.name, true)
	}
	for i, u := range w.users {
		vs := w.devicesOf[u.name][roleViewer]
		for k := 0; k < 3 && k < len(vs); k++ {
			d := vs[(i*7+k*13)%len(vs)]
			sh.say(u.name, d.addr, []string{"watch", soakWatch(rand.New(rand.NewPCG(uint64(i), uint64(k))), d)}[k%2], kWatch)
		}
	}
	for i, d := range w.devices {
		sh.say(d.operators[i%2], d.addr, map[string]string{"rover": "stop", "relay": "off 1", "envsensor": "read"}[d.typ], kCommand)
	}
	tr := newTracker(h)
	if err := tr.waitAnswered(sh, time.Now().Add(90*time.Second)); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	time.Sleep(2 * time.Second)
	base, err := debugFigures(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: baseline after warm-up: %d goroutines, %s live heap", base.goroutines, mib(base.heap))
	warmMsgs := len(sh.messages())

	// ---- load with faults
	loadCtx, stopLoad := context.WithTimeout(context.Background(), cfg.duration)
	defer stopLoad()
	f := newFaulter(w, st, sh, broker, 7, t.Logf)
	defer f.close()
	var wg gosync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(len(w.users)) / cfg.rate)
	for i, u := range w.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runUser(loadCtx, w, sh, u, interval, uint64(i+1), 4096)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.run(loadCtx, cfg.faultEvery, cfg.brokerAt)
	}()
	var peakOpen float64
	died := false
	for loadCtx.Err() == nil {
		time.Sleep(time.Second)
		if !h.Alive() {
			died = true
			stopLoad()
			break
		}
		if ms, err := scrape(murl); err == nil {
			peakOpen = max(peakOpen, ms["mesibo_iot_commands_open"])
		}
	}
	wg.Wait()
	if died {
		t.Fatalf("the host died during the load\nstderr:\n%s\nlast lines:\n%s", h.Stderr(), tail(h, 80))
	}
	loadEnd := time.Now()
	t.Logf("soak: load over; settling")

	// ---- settle: faults undone, everything answered and finished
	if err := f.settle(); err != nil {
		t.Fatalf("settling: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 90*time.Second)
	err = st.Sim.WaitOnline(sctx)
	scancel()
	if err != nil {
		t.Errorf("after the faults, not every device came back online in the simulator: %v", err)
	}
	if err := waitMetric(h, murl, "mesibo_iot_devices_online", float64(ndev), 60*time.Second); err != nil {
		t.Errorf("after the faults: %v", err)
	}
	if err := tr.waitAnswered(sh, sh.lastSend().Add(20*time.Second+40*time.Second)); err != nil {
		t.Errorf("after the load: %v", err)
	}
	if err := waitMetric(h, murl, "mesibo_iot_commands_open", 0, 30*time.Second); err != nil {
		t.Errorf("after the load: %v", err)
	}
	time.Sleep(3 * time.Second) // let the last deliveries and statuses pass
	after, err := debugFigures(h)
	afterAt := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := scrape(murl)
	if err != nil {
		t.Fatal(err)
	}
	hwm := vmHWM(h.Pid())
	settled := time.Since(loadEnd)

	// ---- the host stops cleanly
	qctx, qcancel := context.WithTimeout(context.Background(), 20*time.Second)
	qerr := h.Quit(qctx)
	qcancel()
	if qerr != nil {
		t.Errorf("the host did not exit cleanly: %v\nstderr:\n%s", qerr, h.Stderr())
	}
	if evs := h.Filter(func(e hostproc.Event) bool { return e.Kind == "bye" }); len(evs) != 1 {
		t.Errorf("no bye from the host")
	}
	execs := st.Sim.Executions()
	closed = true
	if err := st.Close(); err != nil {
		t.Errorf("closing the stack: %v", err)
	}

	if p := os.Getenv("MESIBO_IOT_SOAK_TRANSCRIPT"); p != "" {
		var x strings.Builder
		for _, e := range h.Events() {
			x.WriteString(e.At.Format("15:04:05.000 "))
			x.WriteString(e.Raw)
			x.WriteByte('\n')
		}
		for _, e := range execs {
			fmt.Fprintf(&x, "execution %s %s %s #%d key=%s boot=%d\n", e.At.Format("15:04:05.000"), e.Device, e.Verb, e.CmdID, e.IdemKey, e.Boot)
		}
		_ = os.WriteFile(p, []byte(x.String()), 0o644)
	}

	// ---- audit
	msgs := sh.messages()
	a := audit(w, h.Events(), msgs, execs)
	faults, faultErrs := f.figures()
	for _, k := range append([]string{fBrokerKill, fBrokerStop}, allFaults...) {
		if faults[k] == 0 {
			a.fail("fault %s was never injected", k)
		}
	}
	// goroutines and memory back to the warm-up baseline. Goroutines: the
	// same devices, links and connections as then (a few transient ones
	// allowed: a metrics scrape, a reload). Heap: what stays by design is
	// the idempotency window ((sender, id) pairs of the last minute, under
	// 512 bytes each) and maps that do not shrink; 25 % + 2 MiB for the rest.
	if after.goroutines > base.goroutines+8 {
		a.fail("goroutines did not return to the baseline: %d after, %d before", after.goroutines, base.goroutines)
	}
	recent := 0
	for _, m := range msgs {
		if afterAt.Sub(m.at) < 70*time.Second {
			recent++
		}
	}
	heapAllow := base.heap + base.heap/4 + uint64(recent)*512 + 2<<20
	if after.heap > heapAllow {
		a.fail("live heap did not return to the baseline: %s after, %s before (allowed %s)", mib(after.heap), mib(base.heap), mib(heapAllow))
	}

	// ---- figures
	var b strings.Builder
	fmt.Fprintf(&b, "soak: load %v with faults, %d devices (%d MQTT, %d serial), %d users; settled in %v; whole run %v\n",
		cfg.duration, ndev, cfg.mqtt, cfg.serial, len(w.users), settled.Round(time.Second), time.Since(began).Round(time.Second))
	fmt.Fprintf(&b, "messages from users: %d (%d in the warm-up)", len(msgs), warmMsgs)
	for _, k := range sortedKeys(a.byKind) {
		fmt.Fprintf(&b, "; %s %d", k, a.byKind[k])
	}
	fmt.Fprintf(&b, "\ncommands accepted: %d; outcomes: done %d, failed %d (%d of them lost to a device restart), expired %d, rejected %d\n",
		a.accepted, a.outcomes["done"], a.outcomes["failed"], a.lost, a.outcomes["expired"], a.outcomes["rejected"])
	fmt.Fprintf(&b, "refused before acceptance (metrics, outcome rejected): %.0f; denied %.0f, rate limited %.0f\n",
		sum(ms, "mesibo_iot_commands_total", `outcome="rejected"`)-float64(a.outcomes["rejected"]),
		sum(ms, "mesibo_iot_denied_total"), sum(ms, "mesibo_iot_rate_limited_total"))
	fmt.Fprintf(&b, "executions on devices: %d; final answers %d, progress messages %d, telemetry/alerts/presence to watchers %d (alerts %.0f)\n",
		a.executions, a.answers, a.progress, a.unsolicit, sum(ms, "mesibo_iot_alerts_total"))
	fmt.Fprintf(&b, "faults injected:")
	for _, k := range sortedKeys(faults) {
		fmt.Fprintf(&b, " %s %d", k, faults[k])
	}
	if len(faultErrs) > 0 {
		fmt.Fprintf(&b, " (not injected, device unreachable:")
		for _, k := range sortedKeys(faultErrs) {
			fmt.Fprintf(&b, " %s %d", k, faultErrs[k])
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "\nbridge saw: device data dropped %.0f, spoofed replies %.0f, stray replies %.0f, resends %.0f, duplicate messages %.0f, telemetry dropped %.0f, core queue drops %.0f\n",
		sum(ms, "mesibo_iot_device_data_dropped_total"), sum(ms, "mesibo_iot_spoofed_replies_total"), sum(ms, "mesibo_iot_stray_replies_total"),
		sum(ms, "mesibo_iot_command_resends_total"), sum(ms, "mesibo_iot_duplicate_messages_total"), sum(ms, "mesibo_iot_telemetry_dropped_total"),
		sum(ms, "mesibo_iot_core_queue_dropped_total"))
	fmt.Fprintf(&b, "largest queue depth: core queue %.0f events (inbox_size 4096); commands open at most %.0f (sampled each second)\n",
		sum(ms, "mesibo_iot_core_queue_depth_max"), peakOpen)
	fmt.Fprintf(&b, "host peak RSS (VmHWM): %s; module goroutines %d -> %d, live heap %s -> %s (allowed %s)\n",
		hwm, base.goroutines, after.goroutines, mib(base.heap), mib(after.heap), mib(heapAllow))
	fmt.Fprintf(&b, "violations: %d\n", len(a.violations)+a.more)
	t.Log("\n" + b.String())
	if p := os.Getenv("MESIBO_IOT_SOAK_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
	for _, v := range a.violations {
		t.Error(v)
	}
	if a.more > 0 {
		t.Errorf("... and %d more violations", a.more)
	}
}

type soakConfig struct {
	duration     time.Duration
	mqtt, serial int
	rate         float64
	faultEvery   time.Duration
	brokerAt     []time.Duration
}

func soakConfigFromEnv(t *testing.T) soakConfig {
	c := soakConfig{duration: 30 * time.Second, mqtt: 150, serial: 50}
	if v := os.Getenv("MESIBO_IOT_SOAK"); v != "" {
		if v == "0" || v == "off" {
			t.Skip("MESIBO_IOT_SOAK=" + v)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second || d > 24*time.Hour {
			t.Fatalf("MESIBO_IOT_SOAK=%q: want a duration from 10s to 24h", v)
		}
		c.duration = d
	}
	if testing.Short() && os.Getenv("MESIBO_IOT_SOAK") == "" {
		t.Skip("-short: set MESIBO_IOT_SOAK to run the soak")
	}
	if v := os.Getenv("MESIBO_IOT_SOAK_DEVICES"); v != "" {
		a, b, ok := strings.Cut(v, ",")
		m, err1 := strconv.Atoi(a)
		s, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || m < 4 || s < 3 || m+s > 2000 {
			t.Fatalf("MESIBO_IOT_SOAK_DEVICES=%q: want mqtt,serial (at least 4,3)", v)
		}
		c.mqtt, c.serial = m, s
	}
	c.rate = max(5, float64(c.mqtt+c.serial)/10)
	if v := os.Getenv("MESIBO_IOT_SOAK_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r > 1000 {
			t.Fatalf("MESIBO_IOT_SOAK_RATE=%q: want messages per second, 0..1000", v)
		}
		c.rate = r
	}
	// one fault every half second (every 0.3 s in short runs, so that each
	// kind comes several times); the broker goes down at fixed points
	c.faultEvery = 500 * time.Millisecond
	if c.duration < 2*time.Minute {
		c.faultEvery = 300 * time.Millisecond
	}
	n := max(2, int(c.duration/(75*time.Second))) // kills and clean stops, alternately
	for i := 0; i < n; i++ {
		c.brokerAt = append(c.brokerAt, c.duration*time.Duration(2+5*i)/time.Duration(5*n+1))
	}
	return c
}

// tracker follows the transcript incrementally: which messages have their
// final answer.
type tracker struct {
	h      *hostproc.Host
	mark   int
	finals map[uint64]bool
}

func newTracker(h *hostproc.Host) *tracker { return &tracker{h: h, finals: map[uint64]bool{}} }

func (tr *tracker) update() {
	evs := tr.h.Since(tr.mark)
	tr.mark += len(evs)
	for _, e := range evs {
		if e.Kind == "send" && e.Arg(0) == "iot" && flags(e)&4 == 0 {
			if id, err := strconv.ParseUint(e.Field("refid"), 10, 64); err == nil && id != 0 {
				tr.finals[id] = true
			}
		}
	}
}

// waitAnswered waits until every message (but confirmations) has a final
// answer, or the deadline.
func (tr *tracker) waitAnswered(sh *soakHost, deadline time.Time) error {
	for {
		tr.update()
		var missing []string
		for _, m := range sh.messages() {
			if m.kind != kConfirm && !tr.finals[m.id] {
				missing = append(missing, fmt.Sprintf("%d %s→%s %q", m.id, m.from, m.to, m.text))
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if !tr.h.Alive() {
			return fmt.Errorf("the host died with %d messages unanswered", len(missing))
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			return fmt.Errorf("%d messages without a final answer, e.g. %s", len(missing), strings.Join(missing[:min(5, len(missing))], "; "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func waitMetric(h *hostproc.Host, url, name string, want float64, d time.Duration) error {
	deadline := time.Now().Add(d)
	last := -1.0
	for {
		if ms, err := scrape(url); err == nil {
			last = sum(ms, name)
			if last == want {
				return nil
			}
		}
		if !h.Alive() {
			return fmt.Errorf("the host died waiting for %s = %v", name, want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is %v after %v, want %v", name, last, d, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type debugFig struct {
	goroutines int
	heap       uint64
}

// debugFigures asks the host's `debug` command for the module's goroutines
// and live heap.
func debugFigures(h *hostproc.Host) (debugFig, error) {
	mark := h.Len()
	if err := h.Send("debug"); err != nil {
		return debugFig{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := h.WaitForAfter(ctx, mark, func(e hostproc.Event) bool { return e.Kind == "debug" })
	if err != nil {
		return debugFig{}, fmt.Errorf("debug: %w", err)
	}
	if ev.Arg(0) != "iot" {
		return debugFig{}, fmt.Errorf("debug: %q (the module does not export its debug figures)", ev.Raw)
	}
	g, err1 := strconv.Atoi(ev.Field("goroutines"))
	hb, err2 := strconv.ParseUint(ev.Field("heap_bytes"), 10, 64)
	if err1 != nil || err2 != nil {
		return debugFig{}, fmt.Errorf("debug: %q", ev.Raw)
	}
	return debugFig{goroutines: g, heap: hb}, nil
}

// vmHWM is the peak resident set size of a process (/proc/PID/status).
func vmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return mib(kb << 10)
				}
			}
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func tail(h *hostproc.Host, n int) string {
	evs := h.Since(max(0, h.Len()-n))
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}
