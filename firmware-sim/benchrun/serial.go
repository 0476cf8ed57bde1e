package benchrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
	"github.com/mesibo-iot/mesibo-iot/transports/serial"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

const (
	baud     = 115200
	wireRate = baud / 10.0 // bytes per second, 8N1
)

// serialTel is one telemetry throughput run: a simulated device flooding
// telemetry through a pty paced at 115200 baud, the bridge's link layer on
// the other end.
type serialTel struct {
	window       int
	devOut, brIn float64 // bytes/s
	payload      float64 // envelope bytes/s delivered
	envs         float64 // envelopes/s delivered
	retrans      uint64
	frameBytes   float64 // bytes on the line per telemetry frame
}

func serialThroughput(ctx context.Context, profiles string, window int, d time.Duration) (serialTel, error) {
	res := serialTel{window: window}
	dir, err := os.MkdirTemp("", "benchrun-serial-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := sim.Start(sctx, sim.Scenario{Seed: 1, PtyDir: dir, Profiles: profiles, Devices: []sim.DeviceSpec{
		{ID: "senv-1", Type: sim.TypeEnvSensor, Transport: sim.TransportSerial, Baud: baud, Telemetry: time.Hour}}}, sim.Options{Quiet: true})
	if err != nil {
		return res, err
	}
	defer s.Close()
	dev := s.Device("senv-1")
	port, err := serial.OpenPort(filepath.Join(dir, "senv-1"), serial.PortConfig{Baud: baud})
	if err != nil {
		return res, err
	}
	var mu sync.Mutex
	var envs, payload int
	l := link.New(port, link.Options{Role: link.Bridge, Baud: baud, Window: window, WriteTimeout: 2 * time.Second,
		OnEnvelope: func(env *wire.Envelope) {
			if env.Telemetry == nil {
				return
			}
			p, _ := wire.Marshal(env)
			mu.Lock()
			envs++
			payload += len(p)
			mu.Unlock()
		}})
	lctx, lcancel := context.WithCancel(ctx)
	defer func() {
		lcancel()
		<-l.Done()
	}()
	go func() { _ = l.Run(lctx) }()
	if err := dev.WaitOnline(withTimeout(ctx, 10*time.Second)); err != nil {
		return res, fmt.Errorf("serial device online: %w", err)
	}
	// far more than the line carries: the device's queue stays full
	if err := dev.FloodTelemetry(400, d+2*time.Second); err != nil {
		return res, err
	}
	sleepCtx(ctx, time.Second) // the line is saturated from here
	d0, ok0 := dev.LinkStats()
	b0 := l.Stats()
	mu.Lock()
	e0, p0 := envs, payload
	mu.Unlock()
	t0 := time.Now()
	sleepCtx(ctx, d)
	d1, ok1 := dev.LinkStats()
	b1 := l.Stats()
	mu.Lock()
	e1, p1 := envs, payload
	mu.Unlock()
	el := time.Since(t0).Seconds()
	if !ok0 || !ok1 || d1.DataOut < d0.DataOut {
		return res, fmt.Errorf("the device's link session changed during the run")
	}
	res.devOut = float64(d1.BytesOut-d0.BytesOut) / el
	res.brIn = float64(b1.BytesIn-b0.BytesIn) / el
	res.envs = float64(e1-e0) / el
	res.payload = float64(p1-p0) / el
	res.retrans = d1.Retransmits - d0.Retransmits
	if n := d1.DataOut - d0.DataOut; n > 0 {
		res.frameBytes = float64(d1.BytesOut-d0.BytesOut) / float64(n)
	}
	return res, ctx.Err()
}

func withTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// serialRoundTrip: chat message → host → module → serial link → simulated
// device (pty, 115200 baud) → reply → chat answer, one at a time.
func (r *runner) serialRoundTrip(ctx context.Context, n int) (latencies, float64, error) {
	tp := newTap("iot")
	sc := sim.Scenario{Seed: 1, Devices: []sim.DeviceSpec{{ID: "senv-1", Type: sim.TypeEnvSensor, Transport: sim.TransportSerial, Baud: baud, Telemetry: time.Hour}}}
	devs := "version: 1\nprofiles: [\"{{profiles}}/*.yaml\"]\ndevices:\n" +
		"  - {address: dev1, id: senv-1, profile: envsensor, transport: serial, owners: [root], operators: [\"*\"], serial: {path: \"{{ptydir}}/senv-1\", baud: 115200}}\n"
	conf := []string{"log_level = warn", "rate_user = off", "rate_device = off", "metrics_listen = off", "reload_interval = 0"}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	st, err := stack.Start(sctx, stack.Options{Build: r.cfg.Build, Scenario: sc, Devices: devs, Conf: conf,
		LogLevel: 1, HostArgs: []string{"--stamp"}, Echo: tp.line, Discard: discardBulk})
	cancel()
	if err != nil {
		return latencies{}, 0, err
	}
	defer closeStack(st)
	r.track(st.Host.Pid())
	if err := st.Host.Send("login user1"); err != nil {
		return latencies{}, 0, err
	}
	dev := st.Sim.Device("senv-1")
	if err := dev.WaitOnline(withTimeout(ctx, 20*time.Second)); err != nil {
		return latencies{}, 0, fmt.Errorf("serial device online: %w", err)
	}
	o := &oursRT{h: st.Host, tp: tp, ndev: 1, nusers: 1, text: "set_interval 3600"}
	one := func() (float64, error) {
		id := o.id.Add(1)
		if err := o.send([]uint64{id}); err != nil {
			return 0, err
		}
		if err := tp.waitCount(ctx, int(id), 10*time.Second); err != nil {
			return 0, err
		}
		us, ok := tp.latency(id)
		if !ok {
			return 0, fmt.Errorf("no latency for %d", id)
		}
		return us, nil
	}
	for i := 0; i < 5; i++ { // warm-up
		if _, err := one(); err != nil {
			return latencies{}, 0, fmt.Errorf("warm-up: %w (%s)", err, tp.summary())
		}
	}
	s0, _ := dev.LinkStats()
	var us []float64
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return latencies{}, 0, err
		}
		x, err := one()
		if err != nil {
			return latencies{}, 0, err
		}
		us = append(us, x)
		sleepCtx(ctx, 5*time.Millisecond)
	}
	s1, _ := dev.LinkStats()
	// the bytes one command puts on the line, both directions: command
	// frame, the device's ACK and reply, the bridge's ACK
	perCmd := float64((s1.BytesOut-s0.BytesOut)+(s1.BytesIn-s0.BytesIn)) / float64(n)
	return summarize(us), perCmd, nil
}

var pctOfWire = regexp.MustCompile(`([\d.]+) pct-of-wire`)

func (r *runner) serial(ctx context.Context) error {
	profiles := filepath.Join(r.cfg.Root, "examples", "profiles")
	d, rounds, nrt := 15*time.Second, 2, 300
	if r.cfg.Short {
		d, rounds, nrt = 4*time.Second, 1, 50
	}
	var win, saw []serialTel
	for k := 0; k < rounds; k++ { // interleaved: windowed (today), stop-and-wait (before)
		var w, s serialTel
		if _, err := r.calm(ctx, "serial throughput turn", 3, func() (err error) {
			if w, err = serialThroughput(ctx, profiles, 0, d); err != nil {
				return err
			}
			s, err = serialThroughput(ctx, profiles, 1, d)
			return err
		}); err != nil {
			return err
		}
		win, saw = append(win, w), append(saw, s)
		r.logf("serial telemetry: window %.0f B/s (%.1f%%), stop-and-wait %.0f B/s (%.1f%%)", w.brIn, 100*w.brIn/wireRate, s.brIn, 100*s.brIn/wireRate)
	}
	med := func(xs []serialTel, f func(serialTel) float64) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		return median(v)
	}
	brIn := func(x serialTel) float64 { return x.brIn }
	devOut := func(x serialTel) float64 { return x.devOut }
	pay := func(x serialTel) float64 { return x.payload }
	envs := func(x serialTel) float64 { return x.envs }
	wIn := med(win, brIn)

	// transports/serial's own benchmark: both directions paced byte by byte
	bt := "600x"
	goPct, gerr := 0.0, error(nil)
	if !r.cfg.Short { // the short suite skips it (compiling the test binary alone takes seconds)
		var gbench string
		gbench, gerr = goTestBenchRaw(ctx, r.cfg.Root, "./transports/serial/", "TelemetryThroughput115200", bt)
		if m := pctOfWire.FindStringSubmatch(gbench); m != nil {
			goPct, _ = strconv.ParseFloat(m[1], 64)
		}
	}

	lat, perCmd, err := r.serialRoundTrip(ctx, nrt)
	if err != nil {
		return err
	}
	wireUS := perCmd / wireRate * 1e6
	cmd := r.cmd("serial")
	r.add(Figure{Bench: "serial", Name: "Serial telemetry throughput (115200 baud, simulator)", Ours: fmt.Sprintf("%s B/s", fmtInt(wIn)),
		Baseline: "11,520 B/s (wire rate)", Ratio: wIn / wireRate, Target: "≥ 0.95", Met: yesNo(wIn/wireRate >= 0.95), Command: cmd})
	if goPct > 0 {
		r.add(Figure{Bench: "serial", Name: "Serial telemetry throughput, both directions paced (transports/serial benchmark)", Ours: fmt.Sprintf("%s B/s", fmtInt(goPct/100*wireRate)),
			Baseline: "11,520 B/s (wire rate)", Ratio: goPct / 100, Target: "≥ 0.95", Met: yesNo(goPct >= 95), Command: "go test -run '^$' -bench TelemetryThroughput115200 -benchtime " + bt + " ./transports/serial/"})
	}
	r.add(Figure{Bench: "serial", Name: "Serial command round trip p50 / p99 (115200 baud)", Ours: fmtUS(lat.P50) + " / " + fmtUS(lat.P99),
		Baseline: fmtUS(wireUS) + " (its bytes at the wire rate)", Ratio: lat.P50 / wireUS, Target: "reported", Met: "—", Command: cmd})

	var b strings.Builder
	fmt.Fprintf(&b, "**Telemetry throughput.** A simulated environment sensor (firmware-sim) on a pty whose output the simulator paces at 115200 baud 8N1 (%s bytes/s; the device's writes go into a 1 KiB UART transmit buffer and leave it back to back on an absolute schedule, never faster than the line), flooding telemetry (400 messages/s offered, far more than the line carries, so the device's queue never empties); the bridge's link layer (`transports/serial/link`, Bridge role, as `transports/serial` runs it) on the other end of the pty. Measured over %v after the line is saturated, %d round(s), median: bytes that arrived at the bridge per second, against the wire rate. The same run with the bridge's link in stop-and-wait (Window 1: what the protocol did before §8.6, and what a device that announces no window gets) shows what the window buys.\n\n", fmtInt(wireRate), d, rounds)
	b.WriteString("| link | arrived at the bridge | of the wire rate | device sent | telemetry/s | envelope bytes/s (goodput) | bytes on the line per frame | retransmissions |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range []struct {
		name string
		xs   []serialTel
	}{{fmt.Sprintf("windowed (default, window %d)", link.DefaultWindow), win}, {"stop-and-wait (window 1)", saw}} {
		var re uint64
		for _, t := range x.xs {
			re += t.retrans
		}
		fmt.Fprintf(&b, "| %s | %s B/s | %.1f %% | %s B/s | %.1f | %s B/s (%.1f %%) | %.0f | %d |\n", x.name, fmtInt(med(x.xs, brIn)), 100*med(x.xs, brIn)/wireRate,
			fmtInt(med(x.xs, devOut)), med(x.xs, envs), fmtInt(med(x.xs, pay)), 100*med(x.xs, pay)/wireRate, x.xs[0].frameBytes, re)
	}
	fmt.Fprintf(&b, "\nThe goodput (CBOR envelope bytes) is below the line figure by the framing: header, CRC, COBS and the delimiter, %.0f bytes of each %.0f-byte frame here.\n\n", win[0].frameBytes-med(win, pay)/max(med(win, envs), 1), win[0].frameBytes)
	if gerr == nil && goPct > 0 {
		fmt.Fprintf(&b, "**Both directions paced.** The simulator paces only what the device sends; `transports/serial`'s `BenchmarkTelemetryThroughput115200` paces both directions byte by byte (the bridge's ACKs take their wire time too), with the device link queueing envelopes without waiting for each ACK (`link.Queue`): **%.1f %%** of the wire rate (`go test -run '^$' -bench TelemetryThroughput115200 -benchtime %s ./transports/serial/`, same run). With one frame outstanding (before §8.6) it measured about 80 %%: each frame waited for its ACK (about 9 bytes back, 0.8 ms, plus the round trip through the ptys and both link loops).\n\n", goPct, bt)
	} else if r.cfg.Short {
		b.WriteString("(The short suite skips `transports/serial`'s `BenchmarkTelemetryThroughput115200`, which paces both directions byte by byte; `make bench` runs it.)\n\n")
	} else if gerr != nil {
		fmt.Fprintf(&b, "`transports/serial`'s benchmark did not run: %v\n\n", gerr)
	}
	fmt.Fprintf(&b, "**What changed (docs/protocol.md §8.6).** The link used to allow one DATA frame outstanding per direction: after each frame the sender waited for the ACK, so every frame cost an idle round trip (the ACK's bytes, USB-serial latency, both link loops). Now a device announces a window in its hello (key 20), a bridge that takes windows answers with its own in the hello's ACK (one payload byte), and each side keeps up to the smaller window of DATA frames on the line (default %d, at most %d). Receivers take frames in order, ACKs are cumulative, a frame after a lost one is dropped and the missing one NACKed once, and the sender goes back to it (go-back-N). A device or bridge that announces nothing keeps the stop-and-wait rules, so old firmware and old bridges work unchanged.\n\n", link.DefaultWindow, link.MaxWindow)
	fmt.Fprintf(&b, "**Command round trip.** Through the whole product: `msg user1 dev1 <id> -- set_interval 3600` into `mesibo-host`, the module, the serial transport, the pty at 115200 baud, the simulated sensor and back to the module's answer, timed with `mesibo-host --stamp` (on_message call to send_message call), one command at a time, %d commands: p50 %s, p90 %s, p99 %s, p99.9 %s, max %s. Baseline: the %.0f bytes one command puts on the line (command frame, the device's ACK and reply, the bridge's ACK) take %s at the wire rate; the rest is the two link loops, the module, the host and the pty.\n\n",
		lat.N, fmtUS(lat.P50), fmtUS(lat.P90), fmtUS(lat.P99), fmtUS(lat.P999), fmtUS(lat.Max), perCmd, fmtUS(wireUS))
	plot := "serial-roundtrip.png"
	if err := plotCDF(filepath.Join(r.cfg.PlotDir, plot), "Serial command round trip, 115200 baud (latency CDF)", []cdfLine{{Name: "ours: chat → device → answer", US: lat.sorted}}); err != nil {
		return err
	}
	fmt.Fprintf(&b, "![Serial round trip latency distribution](bench/%s)\n", plot)
	r.section("serial", "Serial", b.String())
	return nil
}

// goTestBenchRaw runs one Go benchmark and returns its output.
func goTestBenchRaw(ctx context.Context, root, pkg, name, benchtime string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := runCmd(ctx, root, "go", "test", "-run=^$", "-bench=^Benchmark"+name+"$", "-benchtime="+benchtime, pkg)
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return out, nil
}
