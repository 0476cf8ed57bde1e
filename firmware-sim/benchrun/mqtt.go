package benchrun

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt/rttrace"
)

// step is one offered load and what came of it.
type step struct {
	Rate     float64 // offered, commands/s
	Sent     int
	Answered int
	Achieved float64 // answers/s over the step
	Lat      latencies
	Sat      bool
}

// loadGen calls send(ids) on a millisecond clock so that rate ids per
// second go out for d (open loop: it does not wait for answers).
func loadGen(ctx context.Context, rate float64, d time.Duration, next func() uint64, send func(ids []uint64) error) (int, error) {
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	total := int(math.Round(rate * d.Seconds()))
	for sent < total {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tick.C:
		}
		due := min(total, int(rate*time.Since(start).Seconds()))
		if due <= sent {
			continue
		}
		ids := make([]uint64, 0, due-sent)
		for ; sent < due; sent++ {
			ids = append(ids, next())
		}
		if err := send(ids); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// ---- ours: chat message → host → module → Mosquitto → simulated device → back ----

type oursRT struct {
	h      *hostproc.Host
	tp     *tap
	ndev   int
	nusers int
	id     atomic.Uint64
	text   string
	keep   map[uint64][2]int64 // if set, collect keeps the host's stamps here (trace)
}

func (o *oursRT) msgLine(id uint64) string {
	return fmt.Sprintf("msg user%d dev%d %d -- %s", id%uint64(o.nusers)+1, id%uint64(o.ndev)+1, id, o.text)
}

func (o *oursRT) send(ids []uint64) error {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(o.msgLine(id))
	}
	return o.h.Send(b.String())
}

// runStep offers rate commands/s for d, waits up to drain for the answers.
func (o *oursRT) runStep(ctx context.Context, rate float64, d, drain time.Duration) (step, error) {
	first := o.id.Load() + 1
	base := o.tp.count()
	n, err := loadGen(ctx, rate, d, func() uint64 { return o.id.Add(1) }, o.send)
	if err != nil {
		return step{}, err
	}
	_ = o.tp.waitCount(ctx, base+n, d+drain)
	return o.collect(rate, first, n), nil
}

func (o *oursRT) collect(rate float64, first uint64, n int) step {
	s := step{Rate: rate, Sent: n}
	var us []float64
	var t0, t1 int64 = math.MaxInt64, 0
	o.tp.mu.Lock()
	for id := first; id < first+uint64(n); id++ {
		a, ok1 := o.tp.in[id]
		b, ok2 := o.tp.out[id]
		if !ok1 || !ok2 {
			continue
		}
		us = append(us, float64(b-a)/1e3)
		t0, t1 = min(t0, a), max(t1, b)
		if o.keep != nil {
			o.keep[id] = [2]int64{a, b}
		}
		delete(o.tp.in, id)
		delete(o.tp.out, id)
	}
	o.tp.mu.Unlock()
	s.Answered = len(us)
	s.Lat = summarize(us)
	if s.Answered > 1 && t1 > t0 {
		s.Achieved = float64(s.Answered) / (float64(t1-t0) / 1e9)
	}
	return s
}

// pipelined keeps window commands outstanding for d and returns answers/s.
func (o *oursRT) pipelined(ctx context.Context, window int, d time.Duration) (float64, int, error) {
	out := map[uint64]bool{}
	deadline := time.Now().Add(d)
	start := time.Now()
	done := 0
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		for id := range out {
			if o.tp.answered(id) {
				delete(out, id)
				done++
			}
		}
		var ids []uint64
		for len(out)+len(ids) < window {
			ids = append(ids, o.id.Add(1))
		}
		for _, id := range ids {
			out[id] = true
		}
		if len(ids) > 0 {
			if err := o.send(ids); err != nil {
				return 0, 0, err
			}
		}
		select {
		case <-o.tp.changed:
		case <-time.After(5 * time.Millisecond):
		}
	}
	el := time.Since(start).Seconds()
	// let the rest finish so the next phase starts clean
	dl := time.Now().Add(30 * time.Second)
	for len(out) > 0 && time.Now().Before(dl) {
		for id := range out {
			if o.tp.answered(id) {
				delete(out, id)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	o.tp.forget()
	return float64(done) / el, done, nil
}

// ---- bare: two paho clients, QoS 1 request and QoS 1 response ----

type bareRT struct {
	req, resp paho.Client
	topicReq  string
	topicResp string
	devices   int    // > 0: no responder; requests go to the simulated devices envsensor-1..N
	prefix    string // their topic prefix

	mu      sync.Mutex
	sent    map[uint64]time.Time
	lat     map[uint64]float64
	last    time.Time // when the latest reply arrived
	changed chan struct{}
	id      atomic.Uint64
}

// newBare connects the baseline's clients. With devices > 0 there is no
// responder: the requester sends each command to one of the simulated
// devices (the same ones the module talks to), with a reply-to topic of its
// own, as the module does — the bridge's work done by a bare client.
func newBare(url, prefix string, devices int) (*bareRT, error) {
	b := &bareRT{topicReq: prefix + "/bare/req", topicResp: prefix + "/bare/resp", sent: map[uint64]time.Time{},
		lat: map[uint64]float64{}, changed: make(chan struct{}, 1), devices: devices, prefix: prefix}
	name := "bench-bare"
	if devices > 0 {
		b.topicResp = prefix + "/bridge/barereq/reply/+" // the devices answer to reply-to "barereq" there
		name = "bench-baredev"
	}
	mk := func(id string) (paho.Client, error) {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetOrderMatters(false).
			SetAutoReconnect(false).SetProtocolVersion(4).SetStore(paho.NewMemoryStore()).SetWriteTimeout(10 * time.Second)
		if devices > 0 && rttrace.On() { // trace: stamp the bytes written, as the module's and the devices' are
			o.SetCustomOpenConnectionFn(func(u *neturl.URL, o paho.ClientOptions) (net.Conn, error) {
				c, err := net.DialTimeout("tcp", u.Host, o.ConnectTimeout)
				return rttrace.Conn(c, rttrace.BareWrote), err
			})
		}
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("bare paho connect: %v", tok.Error())
		}
		return c, nil
	}
	var err error
	if b.req, err = mk(name + "-requester"); err != nil {
		return nil, err
	}
	if devices > 0 {
		return b, b.subscribeReplies()
	}
	if b.resp, err = mk(name + "-responder"); err != nil {
		b.close()
		return nil, err
	}
	// the responder does what a device does: decode the command, encode
	// a reply, publish it with QoS 1
	if tok := b.resp.Subscribe(b.topicReq, 1, func(c paho.Client, m paho.Message) {
		env, err := wire.Unmarshal(m.Payload())
		if err != nil || env.Command == nil {
			return
		}
		p, _ := wire.MarshalReply(&wire.Reply{ID: env.Command.ID, Device: "bare-1", Outcome: wire.OutcomeDone, Result: map[string]wire.Value{"interval": int64(3600)}})
		c.Publish(b.topicResp, 1, false, p)
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.close()
		return nil, fmt.Errorf("bare subscribe: %v", tok.Error())
	}
	return b, b.subscribeReplies()
}

func (b *bareRT) subscribeReplies() error {
	if tok := b.req.Subscribe(b.topicResp, 1, func(c paho.Client, m paho.Message) {
		now := time.Now()
		env, err := wire.Unmarshal(m.Payload())
		if err != nil || env.Reply == nil {
			return
		}
		if b.devices > 0 && rttrace.On() {
			rttrace.StampAt(rttrace.BareHandler, env.Reply.ID, rttrace.Mono(now))
		}
		b.mu.Lock()
		if t, ok := b.sent[env.Reply.ID]; ok {
			b.lat[env.Reply.ID] = float64(now.Sub(t).Nanoseconds()) / 1e3
			delete(b.sent, env.Reply.ID)
			b.last = now
		}
		b.mu.Unlock()
		select {
		case b.changed <- struct{}{}:
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.close()
		return fmt.Errorf("bare subscribe: %v", tok.Error())
	}
	return nil
}

func (b *bareRT) close() {
	if b.req != nil {
		b.req.Disconnect(100)
	}
	if b.resp != nil {
		b.resp.Disconnect(100)
	}
}

// the same command the module sends: set_interval with its arguments, an
// idempotency key and a reply-to
func bareCommand(id uint64, dev, replyTo string) []byte {
	p, _ := wire.MarshalCommand(&wire.Command{ID: id, Device: dev, Verb: "set_interval", Args: map[string]wire.Value{"interval": int64(3600)},
		Deadline: time.Now().Add(10 * time.Minute).UnixMilli(), IdemKey: fmt.Sprintf("bare%d/%d", id%100, id), ReplyTo: replyTo})
	return p
}

// send publishes without waiting for the PUBACKs (paho keeps them in
// flight); a request whose publish failed shows as unanswered.
func (b *bareRT) send(ids []uint64) error {
	if !b.req.IsConnectionOpen() {
		return errors.New("bare requester disconnected")
	}
	for _, id := range ids {
		dev, topic, replyTo := "bare-1", b.topicReq, "bench"
		if b.devices > 0 {
			dev = fmt.Sprintf("envsensor-%d", id%uint64(b.devices)+1)
			topic, replyTo = b.prefix+"/dev/"+dev+"/cmd", "barereq"
		}
		p := bareCommand(id, dev, replyTo)
		b.mu.Lock()
		b.sent[id] = time.Now()
		b.mu.Unlock()
		if b.devices > 0 {
			rttrace.Stamp(rttrace.BarePublish, id)
		}
		b.req.Publish(topic, 1, false, p)
	}
	return nil
}

func (b *bareRT) answered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lat)
}

func (b *bareRT) runStep(ctx context.Context, rate float64, d, drain time.Duration) (step, error) {
	b.mu.Lock()
	b.lat = map[uint64]float64{}
	b.mu.Unlock()
	start := time.Now()
	n, err := loadGen(ctx, rate, d, func() uint64 { return b.id.Add(1) }, b.send)
	if err != nil {
		return step{}, err
	}
	end := time.Now().Add(drain)
	for b.answered() < n && time.Now().Before(end) {
		select {
		case <-b.changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.mu.Lock()
	us := make([]float64, 0, len(b.lat))
	for _, v := range b.lat {
		us = append(us, v)
	}
	last := b.last
	b.sent = map[uint64]time.Time{}
	b.mu.Unlock()
	s := step{Rate: rate, Sent: n, Answered: len(us), Lat: summarize(us)}
	// answers per second from the first request to the last answer (a
	// publisher that cannot keep up stretches the send phase too)
	if el := last.Sub(start).Seconds(); len(us) > 1 && el > 0 {
		s.Achieved = float64(len(us)) / max(el, d.Seconds())
	}
	return s, nil
}

func (b *bareRT) pipelined(ctx context.Context, window int, d time.Duration) (float64, int, error) {
	b.mu.Lock()
	b.lat = map[uint64]float64{}
	b.mu.Unlock()
	start := time.Now()
	deadline := start.Add(d)
	issued := 0
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		b.mu.Lock()
		out := len(b.sent)
		b.mu.Unlock()
		var ids []uint64
		for k := out; k < window; k++ {
			ids = append(ids, b.id.Add(1))
		}
		issued += len(ids)
		if err := b.send(ids); err != nil {
			return 0, 0, err
		}
		select {
		case <-b.changed:
		case <-time.After(5 * time.Millisecond):
		}
	}
	el := time.Since(start).Seconds()
	done := b.answered()
	dl := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		out := len(b.sent)
		b.mu.Unlock()
		if out == 0 || time.Now().After(dl) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return float64(done) / el, done, nil
}

// handoff measures what passing a value to a goroutine that sleeps costs
// on this machine: n sends paced at rate per second, each timed from the
// send to the receiver running.
func handoff(ctx context.Context, rate float64, n int) latencies {
	ch := make(chan time.Time)
	out := make(chan []float64, 1)
	go func() {
		var us []float64
		for t := range ch {
			us = append(us, float64(time.Since(t).Nanoseconds())/1e3)
		}
		out <- us
	}()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	for i := 0; i < n && ctx.Err() == nil; i++ {
		<-tick.C
		ch <- time.Now()
	}
	tick.Stop()
	close(ch)
	return summarize(<-out)
}

// mergeStep pools two runs at the same offered load.
func mergeStep(a, b step) step {
	if a.Sent == 0 {
		return b
	}
	us := append(append([]float64(nil), a.Lat.sorted...), b.Lat.sorted...)
	m := step{Rate: a.Rate, Sent: a.Sent + b.Sent, Answered: a.Answered + b.Answered, Lat: summarize(us)}
	m.Achieved = (a.Achieved*float64(a.Sent) + b.Achieved*float64(b.Sent)) / float64(m.Sent)
	return m
}

// ---- the benchmark ----

func (r *runner) mqttRoundTrip(ctx context.Context) error {
	const ndev, nusers, window = 50, 100, 256
	br, err := r.broker()
	if err != nil {
		return err
	}
	tp := newTap("iot")
	st, err := r.startStack(ctx, stackOpts{n: ndev, simType: "envsensor", profile: "envsensor", telemetry: time.Hour, scale: 1, users: nusers}, tp)
	if err != nil {
		return err
	}
	defer closeStack(st)
	r.track(st.Host.Pid())
	ours := &oursRT{h: st.Host, tp: tp, ndev: ndev, nusers: nusers, text: "set_interval 3600"}
	// warm-up: every device answers once (the module saw them online)
	ours.id.Store(0)
	if _, err := ours.runStep(ctx, 200, time.Duration(ndev)*5*time.Millisecond, 20*time.Second); err != nil {
		return err
	}
	if tp.count() < ndev {
		return fmt.Errorf("warm-up: %d of %d devices answered (%s)", tp.count(), ndev, tp.summary())
	}
	bare, err := newBare(br.URL(), "bench", 0)
	if err != nil {
		return err
	}
	defer bare.close()
	if _, err := bare.runStep(ctx, 200, 250*time.Millisecond, 5*time.Second); err != nil {
		return err
	}
	// the bridge's share: a bare requester talking to the same simulated devices
	bdev, err := newBare(br.URL(), "bench", ndev)
	if err != nil {
		return err
	}
	defer bdev.close()
	if s, err := bdev.runStep(ctx, 200, 250*time.Millisecond, 5*time.Second); err != nil {
		return err
	} else if s.Answered < s.Sent {
		return fmt.Errorf("bare requester with the simulated devices: %d of %d answered", s.Answered, s.Sent)
	}

	// The lowest load (the p50 figure) is measured in chunks, ours, bare
	// and bare→devices taking turns, and pooled: the machine's noise moves
	// all three alike. The higher steps run once each, ours then bare.
	stepDur, drain, chunks, chunkDur := 8*time.Second, 10*time.Second, 5, 4*time.Second
	rates := []float64{200, 400, 800, 1600, 3200, 6400, 12800}
	pipeDur, pipeRounds := 6*time.Second, 3
	if r.cfg.Short {
		stepDur, drain, chunks, chunkDur = 1500*time.Millisecond, 5*time.Second, 2, 1500*time.Millisecond
		rates = []float64{200, 1600, 6400}
		pipeDur, pipeRounds = 1500*time.Millisecond, 1
	}
	var ost, bst []step
	var dev0 step                 // bare requester → simulated devices, at the lowest load
	kept := map[uint64][2]int64{} // host stamps at the lowest load (trace on)
	keptBare := map[uint64]bool{} // bare → simulated devices ids at the lowest load (trace on)
	keptBareTurn := map[uint64]bool{}
	var breakdown []traceLine
	oursSat, bareSat := false, false
	for i, rate := range rates {
		if oursSat || bareSat {
			break // beyond the load one of them could carry there is nothing to compare
		}
		if i == 0 {
			var so, sb, sd step
			for k := 0; k < chunks; k++ {
				var xo, xb, xd step
				if _, err := r.calm(ctx, "mqtt lowest-load turn", 4, func() (err error) {
					if rttrace.On() {
						ours.keep = map[uint64][2]int64{} // this turn's stamps (a retried turn starts again)
					}
					if xo, err = ours.runStep(ctx, rate, chunkDur, drain); err != nil {
						return err
					}
					if xb, err = bare.runStep(ctx, rate, chunkDur, drain); err != nil {
						return err
					}
					if rttrace.On() {
						clear(keptBareTurn) // a retried turn starts again
					}
					xd, err = bdev.runStep(ctx, rate, chunkDur, drain)
					if err == nil && rttrace.On() {
						bdev.mu.Lock()
						for id := range bdev.lat {
							keptBareTurn[id] = true
						}
						bdev.mu.Unlock()
					}
					return err
				}); err != nil {
					return err
				}
				so, sb, sd = mergeStep(so, xo), mergeStep(sb, xb), mergeStep(sd, xd)
				for id, v := range ours.keep {
					kept[id] = v
				}
				for id := range keptBareTurn {
					keptBare[id] = true
				}
			}
			ours.keep = nil
			if rttrace.On() {
				if breakdown, err = traceBreakdown(kept, keptBare); err != nil {
					r.logf("mqtt trace: %v", err)
				}
				for _, l := range breakdown {
					r.logf("mqtt trace %-36s p50 %8s  mean %8s  (n %d)", l.name, fmtUS(l.p50), fmtUS(l.mean), l.n)
				}
			}
			so.Sat = so.Answered < so.Sent || so.Achieved < 0.9*rate
			sb.Sat = sb.Answered < sb.Sent || sb.Achieved < 0.9*rate
			oursSat, bareSat = so.Sat, sb.Sat
			ost, bst, dev0 = append(ost, so), append(bst, sb), sd
			r.logf("mqtt %6.0f/s, %d chunks: ours p50 %s p99 %s; bare p50 %s p99 %s; bare→devices p50 %s", rate, chunks, fmtUS(so.Lat.P50), fmtUS(so.Lat.P99), fmtUS(sb.Lat.P50), fmtUS(sb.Lat.P99), fmtUS(sd.Lat.P50))
			continue
		}
		// interleaved: ours then bare at the same offered load
		var so, sb step
		if _, err := r.calm(ctx, fmt.Sprintf("mqtt step %.0f/s", rate), 3, func() (err error) {
			if so, err = ours.runStep(ctx, rate, stepDur, drain); err != nil {
				return err
			}
			sb, err = bare.runStep(ctx, rate, stepDur, drain)
			return err
		}); err != nil {
			return err
		}
		for _, x := range []struct {
			name string
			s    *step
			sat  *bool
			all  *[]step
		}{{"ours", &so, &oursSat, &ost}, {"bare", &sb, &bareSat, &bst}} {
			s := x.s
			s.Sat = s.Answered < s.Sent || s.Achieved < 0.9*rate
			*x.sat = s.Sat
			*x.all = append(*x.all, *s)
			r.logf("mqtt %-4s %6.0f/s: answered %d/%d, %.0f/s, p50 %s p99 %s p999 %s", x.name, rate, s.Answered, s.Sent, s.Achieved, fmtUS(s.Lat.P50), fmtUS(s.Lat.P99), fmtUS(s.Lat.P999))
		}
	}
	ho := handoff(ctx, rates[0], int(rates[0]*chunkDur.Seconds()))
	r.logf("mqtt: goroutine hand-off at %.0f/s: p50 %s p99 %s", rates[0], fmtUS(ho.P50), fmtUS(ho.P99))
	// CPU per command of each process during the pipelined runs
	type cpu struct{ host, broker, self time.Duration }
	snap := func() cpu {
		h, _ := procCPU(st.Host.Pid())
		m, _ := procCPU(br.pid())
		return cpu{h, m, selfCPU()}
	}
	// pipelined, taking turns; CPU accumulated per series
	var c0, c1, c2, c3 cpu
	add := func(acc *cpu, a, b cpu) {
		acc.host += b.host - a.host
		acc.broker += b.broker - a.broker
		acc.self += b.self - a.self
	}
	var oursRates, bareRates, devRates []float64
	oursDone, bareDone, devDone := 0, 0, 0
	for k := 0; k < pipeRounds; k++ {
		var a, b, c, d cpu
		var xo, xb, xd float64
		var no, nb, nd int
		if _, err := r.calm(ctx, "mqtt pipelined turn", 4, func() (err error) {
			a = snap()
			if xo, no, err = ours.pipelined(ctx, window, pipeDur); err != nil {
				return err
			}
			b = snap()
			if xb, nb, err = bare.pipelined(ctx, window, pipeDur); err != nil {
				return err
			}
			c = snap()
			if xd, nd, err = bdev.pipelined(ctx, window, pipeDur); err != nil {
				return err
			}
			d = snap()
			return nil
		}); err != nil {
			return err
		}
		add(&c1, a, b)
		add(&c2, b, c)
		add(&c3, c, d)
		oursRates, oursDone = append(oursRates, xo), oursDone+no
		bareRates, bareDone = append(bareRates, xb), bareDone+nb
		devRates, devDone = append(devRates, xd), devDone+nd
	}
	oursPipe, barePipe, devPipe := median(oursRates), median(bareRates), median(devRates)
	// c1, c2, c3 hold the totals; c0 is zero, so c1-c0 etc. read as before
	c2.host, c2.broker, c2.self = c1.host+c2.host, c1.broker+c2.broker, c1.self+c2.self
	c3.host, c3.broker, c3.self = c2.host+c3.host, c2.broker+c3.broker, c2.self+c3.self
	perCmd := func(d time.Duration, n int) string {
		if n == 0 {
			return "—"
		}
		return fmtUS(float64(d.Microseconds()) / float64(n))
	}
	r.logf("mqtt pipelined (window %d): ours %.0f/s, bare %.0f/s, bare→devices %.0f/s", window, oursPipe, barePipe, devPipe)
	if len(ost) == 0 || len(bst) == 0 {
		return errors.New("no load steps ran")
	}

	// p50 at the lowest load: the round trip without queueing
	o0, b0 := ost[0], bst[0]
	cmd := r.cmd("mqtt")
	r.add(Figure{Bench: "mqtt", Name: fmt.Sprintf("MQTT round trip p50 at %.0f/s", o0.Rate), Ours: fmtUS(o0.Lat.P50), Baseline: fmtUS(b0.Lat.P50) + " (bare paho)",
		Ratio: o0.Lat.P50 / b0.Lat.P50, Target: "≤ 1.3×", Met: yesNo(o0.Lat.P50/b0.Lat.P50 <= 1.3), Command: cmd})
	r.add(Figure{Bench: "mqtt", Name: fmt.Sprintf("MQTT round trip p99 / p99.9 at %.0f/s", o0.Rate), Ours: fmtUS(o0.Lat.P99) + " / " + fmtUS(o0.Lat.P999),
		Baseline: fmtUS(b0.Lat.P99) + " / " + fmtUS(b0.Lat.P999), Ratio: o0.Lat.P99 / b0.Lat.P99, Target: "reported", Met: "—", Command: cmd})
	bestOurs := 0.0
	for _, s := range ost {
		if !s.Sat {
			bestOurs = max(bestOurs, s.Achieved)
		}
	}
	r.add(Figure{Bench: "mqtt", Name: fmt.Sprintf("MQTT throughput, %d commands outstanding", window), Ours: fmtInt(oursPipe) + "/s",
		Baseline: fmtInt(barePipe) + "/s (bare paho, pipelined QoS 1)", Ratio: oursPipe / barePipe, Target: "≥ 0.7×", Met: yesNo(oursPipe/barePipe >= 0.7), Command: cmd})

	var b strings.Builder
	fmt.Fprintf(&b, "**Ours:** a chat message `msg userK devJ <id> -- set_interval 3600` written to `mesibo-host`'s stdin; the module (log level warn, no rate limits) checks it, encodes the command and publishes it (QoS 1) on Mosquitto (loopback, `set_tcp_nodelay true`); one of %d simulated environment sensors (firmware-sim, one paho client each, `set_interval` answers at once) decodes it and publishes its reply (QoS 1); the module decodes it and sends the chat answer. Measured with `mesibo-host --stamp` from the host's on_message call to the module's send_message call of the final answer (host CLOCK_MONOTONIC), so the stdin/stdout pipes are not in the figure. %d senders, commands spread over the devices.\n\n", ndev, nusers)
	b.WriteString("**Baseline (bare paho):** in the same run, on the same Mosquitto, two `paho.mqtt.golang` clients: the requester publishes the same CBOR command (QoS 1), the responder decodes it, encodes a reply and publishes it (QoS 1), the requester decodes it; timed from Publish to the reply's arrival.\n\n")
	fmt.Fprintf(&b, "Open-loop load steps, up to the first step at which either saturates (answers < sent, or < 90 %% of the offered rate; answers per second counted from the first request to the last answer): the lowest (%.0f/s) in %d chunks of %v each for ours, bare paho and bare → simulated devices taking turns, pooled; the others %v each, ours then bare. Then pipelined runs of %v with %d requests outstanding (a new one for each answer), %d turn(s) each, median: the throughput figure.\n\n", rates[0], chunks, chunkDur, stepDur, pipeDur, window, pipeRounds)
	b.WriteString("| offered /s | ours answered | ours /s | ours p50 | p99 | p99.9 | bare answered | bare /s | bare p50 | p99 | p99.9 | p50 ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := 0; i < max(len(ost), len(bst)); i++ {
		row := []string{}
		rate := 0.0
		if i < len(ost) {
			rate = ost[i].Rate
		} else {
			rate = bst[i].Rate
		}
		row = append(row, fmtInt(rate))
		cell := func(ss []step) {
			if i >= len(ss) {
				row = append(row, "—", "—", "—", "—", "—")
				return
			}
			s := ss[i]
			sat := ""
			if s.Sat {
				sat = " (saturated)"
			}
			row = append(row, fmt.Sprintf("%s/%s%s", fmtInt(float64(s.Answered)), fmtInt(float64(s.Sent)), sat), fmtInt(s.Achieved), fmtUS(s.Lat.P50), fmtUS(s.Lat.P99), fmtUS(s.Lat.P999))
		}
		cell(ost)
		cell(bst)
		if i < len(ost) && i < len(bst) && bst[i].Lat.P50 > 0 {
			row = append(row, fmt.Sprintf("%.2f×", ost[i].Lat.P50/bst[i].Lat.P50))
		} else {
			row = append(row, "—")
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	fmt.Fprintf(&b, "\nPipelined, %d outstanding: ours %s answers/s (%s in all), bare %s/s (%s); ratio %.2f. Highest open-loop step ours kept up with: %s/s.\n\n",
		window, fmtInt(oursPipe), fmtInt(float64(oursDone)), fmtInt(barePipe), fmtInt(float64(bareDone)), oursPipe/barePipe, fmtInt(bestOurs))
	fmt.Fprintf(&b, "**Where the difference comes from.** A third series in the same run: a bare paho requester that sends the same commands straight to the same %d simulated devices (their command topics, a reply-to of its own): everything but the bridge. At %s/s its p50 was %s (ours %s, bare paho %s); pipelined it reached %s/s (ours %s, bare paho %s). CPU time per command during the pipelined runs (`/proc/<pid>/stat`, `getrusage`; the machine's %d CPUs were saturated in each):\n\n| process | ours | bare paho | bare → simulated devices |\n|---|---:|---:|---:|\n| mesibo-host + module (the bridge) | %s | — | — |\n| Mosquitto | %s | %s | %s |\n| benchrun: simulated devices, load driver, bare clients | %s | %s | %s |\n\n",
		ndev, fmtInt(dev0.Rate), fmtUS(dev0.Lat.P50), fmtUS(o0.Lat.P50), fmtUS(b0.Lat.P50), fmtInt(devPipe), fmtInt(oursPipe), fmtInt(barePipe), r.rep.Machine.CPUs,
		perCmd(c1.host-c0.host, oursDone), perCmd(c1.broker-c0.broker, oursDone), perCmd(c2.broker-c1.broker, bareDone), perCmd(c3.broker-c2.broker, devDone),
		perCmd(c1.self-c0.self, oursDone), perCmd(c2.self-c1.self, bareDone), perCmd(c3.self-c2.self, devDone))
	r.logf("mqtt cpu/cmd ours: host %s broker %s self %s; bare: broker %s self %s; bare→devices: broker %s self %s", perCmd(c1.host-c0.host, oursDone), perCmd(c1.broker-c0.broker, oursDone), perCmd(c1.self-c0.self, oursDone), perCmd(c2.broker-c1.broker, bareDone), perCmd(c2.self-c1.self, bareDone), perCmd(c3.broker-c2.broker, devDone), perCmd(c3.self-c2.self, devDone))
	hostUS := float64((c1.host - c0.host).Microseconds()) / float64(max(oursDone, 1))
	oursUS := float64((c1.host-c0.host)+(c1.broker-c0.broker)+(c1.self-c0.self)) / 1e3 / float64(max(oursDone, 1))
	bareUS := float64((c2.broker-c1.broker)+(c2.self-c1.self)) / 1e3 / float64(max(bareDone, 1))
	verdict := "target met"
	if o0.Lat.P50/b0.Lat.P50 > 1.3 {
		verdict = "target missed"
	}
	fmt.Fprintf(&b, "**p50: %s** (%.2f×). Of ours' %s, the simulated devices account for %s (bare → simulated devices %s against bare paho %s) and the bridge for the rest, %s. "+
		"The bridge's path has hand-offs between threads and goroutines that a bare client does not: on_message, on mesibo's C thread, → the C inbox → its drainer goroutine → the core goroutine; the core → the device's sender goroutine; and paho's handler goroutine for the reply → the core. "+
		"The sender calls `Transport.Send` and waits for the PUBACK there, so that the core never waits on the network: paho's `Publish` is not safe to call from the core, it passes the packet over unbuffered channels to paho's writer goroutine, and with that writer stuck on a full socket (a frozen broker) it blocks for up to `mqtt_publish_timeout`. "+
		"The last two hand-offs cost a goroutine switch and no thread wake-up: the core parks right after the dispatch and its thread runs the sender next, and the reply's handler yields to the core it has just woken (and the simulated device's handler to its outbox sender, as firmware answering from its handler would). "+
		"The first crosses from a C thread into Go: on_message only queues the message in C (Accept path), and the drainer, asleep on an eventfd when commands are more than 2 ms apart, has to be woken, then wakes the core. When the receiver sleeps, a hand-off wakes a thread: measured in this run, passing a value to a sleeping goroutine %s times a second takes **%s** (p50; p99 %s) on this machine. "+
		"The rest is not in any one step: at this load the bridge's process is idle for about %s between commands, so each step runs cold, and each leg through the broker has to wake the bridge's paho goroutines from the network, where the bare clients share one busy process. "+
		"Set `%s` to a directory to have this run print (and this section show) the time of each step, from stamps taken in the module and the simulator; [bench/mqtt-trace.md](bench/mqtt-trace.md) is such a run (`make bench-trace`).\n\n",
		verdict, o0.Lat.P50/b0.Lat.P50, fmtUS(o0.Lat.P50), fmtUS(max(dev0.Lat.P50-b0.Lat.P50, 0)), fmtUS(dev0.Lat.P50), fmtUS(b0.Lat.P50), fmtUS(max(o0.Lat.P50-dev0.Lat.P50, 0)),
		fmtInt(rates[0]), fmtUS(ho.P50), fmtUS(ho.P99), fmtUS(1e6/rates[0]), rttrace.Env)
	if oursPipe/barePipe < 0.7 {
		fmt.Fprintf(&b, "**Throughput: target missed** (%.2f). Both pipelined runs keep the machine's %d CPUs busy, so the rates are inversely proportional to the CPU time each answer costs everything on the machine: %s for ours (the bridge alone %s: `mesibo-host`'s line protocol and the module) against %s for bare paho, a ratio of %.2f that matches the throughput ratio. A bare requester does nothing per message but encode and decode; the bridge checks each command against the sender's rights and the device's profile, keeps its state, queues it per device, answers in chat and takes the receipt back. On a machine whose CPUs are not shared with the broker, the simulated devices and the load driver, the bridge's share would decide; here it is one part in %.1f.\n\n",
			oursPipe/barePipe, r.rep.Machine.CPUs, fmtUS(oursUS), fmtUS(hostUS), fmtUS(bareUS), bareUS/oursUS, oursUS/max(hostUS, 1))
	}
	if len(breakdown) > 0 {
		fmt.Fprintf(&b, "**Breakdown (trace on, `%s`).** Per command at %.0f/s, CLOCK_MONOTONIC stamps taken in mesibo-host's module and in the simulator (`transports/mqtt/rttrace`), joined by command id; p50 and mean of each interval (the p50s need not add up to the total's):\n\n| interval | p50 | mean |\n|---|---:|---:|\n", rttrace.Env, rates[0])
		for _, l := range breakdown {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", l.name, fmtUS(l.p50), fmtUS(l.mean))
		}
		b.WriteString("\n")
	}
	plot := "mqtt-roundtrip.png"
	lines := cdfSeries(ost, bst)
	if dev0.Lat.N > 0 {
		lines = append(lines, cdfLine{Name: fmt.Sprintf("bare → simulated devices %.0f/s", dev0.Rate), US: dev0.Lat.sorted})
	}
	if err := plotCDF(filepath.Join(r.cfg.PlotDir, plot), "MQTT command round trip (latency CDF)", lines); err != nil {
		return err
	}
	fmt.Fprintf(&b, "![MQTT round trip latency distribution](bench/%s)\n\n", plot)
	r.section("mqtt", "MQTT command round trip", b.String())
	return nil
}

// cdfSeries picks the lowest load and the highest load both kept up with.
func cdfSeries(ost, bst []step) []cdfLine {
	var out []cdfLine
	add := func(name string, s step) {
		if s.Lat.N > 0 {
			out = append(out, cdfLine{Name: name, US: s.Lat.sorted})
		}
	}
	add(fmt.Sprintf("ours %.0f/s", ost[0].Rate), ost[0])
	add(fmt.Sprintf("bare paho %.0f/s", bst[0].Rate), bst[0])
	hi := -1
	for i := 1; i < min(len(ost), len(bst)); i++ {
		if !ost[i].Sat && !bst[i].Sat {
			hi = i
		}
	}
	if hi > 0 {
		add(fmt.Sprintf("ours %.0f/s", ost[hi].Rate), ost[hi])
		add(fmt.Sprintf("bare paho %.0f/s", bst[hi].Rate), bst[hi])
	}
	return out
}

// ---- trace (MESIBO_IOT_TRACE): where the round trip's time goes ----

type traceLine struct {
	name      string
	p50, mean float64
	n         int
}

// traceBreakdown reads the trace files (the module's, written by
// mesibo-host, and this process's: the simulator and the bare requester) and
// returns, for the chat messages in host (id → on_message and send_message
// stamps), the p50 and mean of each interval of the round trip; then the
// same for the bare requester's commands to the simulated devices (bareIDs).
func traceBreakdown(host map[uint64][2]int64, bareIDs map[uint64]bool) ([]traceLine, error) {
	rttrace.Flush()
	time.Sleep(600 * time.Millisecond) // the module flushes every 200 ms
	files, err := filepath.Glob(filepath.Join(os.Getenv(rttrace.Env), "*.trace"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no trace files in %s (%v)", os.Getenv(rttrace.Env), err)
	}
	// stage → key → first stamp
	st := map[rttrace.Stage]map[uint64]int64{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, ln := range strings.Split(string(data), "\n") {
			var name string
			var key uint64
			var t int64
			if n, _ := fmt.Sscan(ln, &name, &key, &t); n != 3 || key == 0 {
				continue
			}
			s, ok := rttrace.ParseStage(name)
			if !ok {
				continue
			}
			m := st[s]
			if m == nil {
				m = map[uint64]int64{}
				st[s] = m
			}
			if _, dup := m[key]; !dup {
				m[key] = t
			}
		}
	}
	msgOf := map[uint64]uint64{}
	for cmd, msg := range st[rttrace.BrMap] {
		msgOf[uint64(msg)] = cmd
	}
	const hostIn, hostOut = rttrace.Stage(254), rttrace.Stage(255) // mesibo-host --stamp's figures
	type point struct {
		name string
		s    rttrace.Stage
	}
	device := []point{{"device handler (broker, paho)", rttrace.SimHandler}, {"device decoded", rttrace.SimDecoded}, {"device ran it, reply queued", rttrace.SimQueued},
		{"device outbox picked up", rttrace.SimDeliver}, {"device Publish called", rttrace.SimPublish}, {"device Publish returned", rttrace.SimPublished},
		{"reply written to the socket", rttrace.SimWrote}}
	ours := []point{{"host on_message", hostIn}, {"module accept", rttrace.BrAccept}, {"core took the message", rttrace.BrCoreIn},
		{"core dispatched the command", rttrace.BrDispatch}, {"sender goroutine", rttrace.BrSender}, {"paho Publish called", rttrace.BrPublish},
		{"paho Publish returned", rttrace.BrPublished}, {"command written to the socket", rttrace.BrWrote}}
	ours = append(ours, device...)
	ours = append(ours, []point{{"bridge handler (broker, paho)", rttrace.BrHandler}, {"reply decoded", rttrace.BrWorker},
		{"core took the reply", rttrace.BrCoreReply}, {"core answers", rttrace.BrAnswer}, {"host send_message", hostOut}}...)
	bare := []point{{"bare Publish called", rttrace.BarePublish}, {"command written to the socket", rttrace.BareWrote}}
	bare = append(bare, device...)
	bare = append(bare, point{"bare handler (broker, paho)", rttrace.BareHandler})

	line := func(name string, us []float64) traceLine {
		sum := 0.0
		for _, v := range us {
			sum += v
		}
		return traceLine{name: name, p50: summarize(us).P50, mean: sum / float64(len(us)), n: len(us)}
	}
	// chain returns the total and each interval of path over the commands
	// keys gives (chat message id → command id for ours); a stage nobody
	// recorded (a hop that is gone) is skipped.
	chain := func(prefix string, path []point, cmds map[uint64]uint64) []traceLine {
		var used []point
		for _, p := range path {
			if p.s == hostIn || p.s == hostOut || len(st[p.s]) > 0 {
				used = append(used, p)
			}
		}
		iv := make([][]float64, len(used)) // iv[i]: used[i-1] → used[i]; iv[0]: total
		for msg, cmd := range cmds {
			ts := make([]int64, len(used))
			complete := true
			for i, p := range used {
				switch p.s {
				case hostIn:
					ts[i] = host[msg][0]
				case hostOut:
					ts[i] = host[msg][1]
				default:
					key := cmd
					if p.s == rttrace.BrAccept || p.s == rttrace.BrCoreIn {
						key = msg
					}
					t, ok := st[p.s][key]
					complete = complete && ok
					ts[i] = t
				}
			}
			if !complete {
				continue
			}
			iv[0] = append(iv[0], float64(ts[len(ts)-1]-ts[0])/1e3)
			for i := 1; i < len(used); i++ {
				iv[i] = append(iv[i], float64(ts[i]-ts[i-1])/1e3)
			}
		}
		if len(used) < 2 || len(iv[0]) == 0 {
			return nil
		}
		out := []traceLine{line(prefix+"total ("+used[0].name+" → "+used[len(used)-1].name+")", iv[0])}
		for i := 1; i < len(used); i++ {
			out = append(out, line(prefix+used[i-1].name+" → "+used[i].name, iv[i]))
		}
		return out
	}
	oc := map[uint64]uint64{}
	for msg := range host {
		if cmd, ok := msgOf[msg]; ok {
			oc[msg] = cmd
		}
	}
	bc := map[uint64]uint64{}
	for id := range bareIDs {
		bc[id] = id
	}
	out := chain("", ours, oc)
	if len(out) == 0 {
		return nil, errors.New("no command has every stamp")
	}
	out = append(out, chain("bare → devices: ", bare, bc)...)
	return out, nil
}
