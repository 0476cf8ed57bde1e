package link_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

// wfast is fast with a write timeout that a stalled test machine does not
// hit: with a window several frames wait in the synchronous pipes of the
// tap at once, and these tests are not about write timeouts.
func wfast(role link.Role) link.Options {
	o := fast(role)
	o.WriteTimeout = 3 * time.Second
	return o
}

// queueAll queues n telemetry envelopes on l without waiting and returns a
// function that waits for all their results.
func queueAll(t *testing.T, l *link.Link, first, n uint64) func() []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var chs []<-chan error
	for i := first; i < first+n; i++ {
		ch, err := l.Queue(ctx, telemetry(i))
		if err != nil {
			cancel()
			t.Fatalf("queue %d: %v", i, err)
		}
		chs = append(chs, ch)
	}
	return func() []error {
		defer cancel()
		var errs []error
		for _, ch := range chs {
			select {
			case err := <-ch:
				errs = append(errs, err)
			case <-ctx.Done():
				t.Fatalf("queued envelopes not done: %v", ctx.Err())
			}
		}
		return errs
	}
}

func inOrder(t *testing.T, r *recorder, first, n uint64) {
	t.Helper()
	eventually(t, 5*time.Second, "all delivered", func() bool { k, _, _, _ := r.counts(); return k >= int(n) })
	time.Sleep(30 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.envs) != int(n) {
		t.Fatalf("delivered %d envelopes, want %d (duplicates?)", len(r.envs), n)
	}
	for i, e := range r.envs {
		if e.Telemetry.Seq != first+uint64(i) {
			t.Fatalf("envelope %d has seq %d, want %d", i, e.Telemetry.Seq, first+uint64(i))
		}
	}
}

// maxOutstanding watches DATA frames from one side and the ACKs back and
// reports the most DATA frames seen unacknowledged at once.
type outstanding struct {
	mu   sync.Mutex
	open map[uint16]bool
	max  int
}

func (o *outstanding) filter(data dir) func(d dir, f wire.Frame) action {
	return func(d dir, f wire.Frame) action {
		o.mu.Lock()
		defer o.mu.Unlock()
		switch {
		case d == data && f.Type == wire.FrameData:
			o.open[f.Seq] = true
			o.max = max(o.max, len(o.open))
		case d != data && f.Type == wire.FrameAck:
			for s := range o.open {
				if f.Seq-s < 64 { // cumulative
					delete(o.open, s)
				}
			}
		}
		return pass
	}
}

// Both ends take windows: the hello announces the device's, the ACK of the
// hello carries the bridge's, and queued envelopes go out several at a time,
// in order, each delivered once.
func TestWindowNegotiatedAndPipelined(t *testing.T) {
	bo, do := wfast(link.Bridge), wfast(link.Device)
	bo.Window, do.Window = 3, 8
	bc, dc, tp := newTap(t)
	var helloWindow uint32
	var ackPayload []byte
	var mu sync.Mutex
	tp.setFilter(func(dr dir, f wire.Frame) action {
		mu.Lock()
		defer mu.Unlock()
		if dr == d2b && f.Type == wire.FrameData {
			if env, err := wire.Unmarshal(f.Payload); err == nil && env.Hello != nil {
				helloWindow = env.Hello.Window
			}
		}
		if dr == b2d && f.Type == wire.FrameAck && ackPayload == nil {
			ackPayload = append([]byte{}, f.Payload...)
		}
		return pass
	})
	br := &recorder{}
	do.Hello = testHello()
	b, d := link.New(bc, br.opts(bo)), link.New(dc, (&recorder{}).opts(do))
	run(t, b)
	run(t, d)
	waitUp(t, b, d)
	mu.Lock()
	if helloWindow != 8 || len(ackPayload) != 1 || ackPayload[0] != 3 {
		mu.Unlock()
		t.Fatalf("hello window %d, hello ACK payload %x; want 8 and 03", helloWindow, ackPayload)
	}
	mu.Unlock()
	out := &outstanding{open: map[uint16]bool{}}
	tp.setFilter(out.filter(d2b))
	wait := queueAll(t, d, 1, 40)
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
	inOrder(t, br, 1, 40)
	out.mu.Lock()
	most := out.max
	out.mu.Unlock()
	if most < 2 || most > 3 {
		t.Fatalf("at most %d frames outstanding; want 2..3 (the bridge's window)", most)
	}
	// (a stalled test machine may add retransmissions, never deliveries)
	if s := d.Stats(); s.Sent != 40 {
		t.Fatalf("device sent %d", s.Sent)
	}
}

// A device with Window 1 announces nothing: stop-and-wait, an empty ACK.
func TestWindowOneIsStopAndWait(t *testing.T) {
	bo, do := wfast(link.Bridge), wfast(link.Device)
	do.Window = 1
	bc, dc, tp := newTap(t)
	var ackPayload []byte
	seen := false
	var mu sync.Mutex
	tp.setFilter(func(dr dir, f wire.Frame) action {
		mu.Lock()
		defer mu.Unlock()
		if dr == b2d && f.Type == wire.FrameAck && !seen {
			seen, ackPayload = true, append([]byte{}, f.Payload...)
		}
		return pass
	})
	br := &recorder{}
	do.Hello = testHello()
	b, d := link.New(bc, br.opts(bo)), link.New(dc, (&recorder{}).opts(do))
	run(t, b)
	run(t, d)
	waitUp(t, b, d)
	mu.Lock()
	if !seen || len(ackPayload) != 0 {
		mu.Unlock()
		t.Fatalf("hello ACK payload %x (seen %v); want empty", ackPayload, seen)
	}
	mu.Unlock()
	wantStopAndWait(t, d, br, tp)
}

// A bridge with Window 1 (or one that predates windows) ACKs the hello
// without a payload: the device keeps to one frame.
func TestOldBridgeKeepsDeviceStopAndWait(t *testing.T) {
	bo, do := wfast(link.Bridge), wfast(link.Device)
	bo.Window = 1
	b, d, br, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	wantStopAndWait(t, d, br, tp)
}

// A lost DATA frame in the middle of a window: the receiver drops what
// follows it, NACKs the one it expects, the sender goes back; every
// envelope arrives once and in order.
func TestWindowLostFrameGoBack(t *testing.T) {
	for _, how := range []action{drop, corrupt} {
		name := map[action]string{drop: "dropped", corrupt: "corrupted"}[how]
		t.Run(name, func(t *testing.T) {
			bo, do := wfast(link.Bridge), wfast(link.Device)
			do.AckTimeout = 100 * time.Millisecond
			b, d, br, _, tp := pair(t, bo, do)
			waitUp(t, b, d)
			var mu sync.Mutex
			n := 0
			tp.setFilter(func(dr dir, f wire.Frame) action {
				mu.Lock()
				defer mu.Unlock()
				if dr == d2b && f.Type == wire.FrameData {
					n++
					if n == 3 || n == 11 { // two losses
						return how
					}
				}
				return pass
			})
			wait := queueAll(t, d, 1, 30)
			for i, err := range wait() {
				if err != nil {
					t.Fatalf("envelope %d: %v", i, err)
				}
			}
			inOrder(t, br, 1, 30)
			if ds := d.Stats(); ds.Retransmits < 2 || ds.Downs != 0 {
				t.Fatalf("device retransmits %d (want ≥ 2), downs %d", ds.Retransmits, ds.Downs)
			}
			if bs := b.Stats(); bs.Delivered != 30 {
				t.Fatalf("bridge delivered %d", bs.Delivered)
			}
		})
	}
}

// A lost frame followed by a corrupted one: the receiver NACKs the frame it
// expects, not the damaged one's seq (which would tell the sender that the
// lost frame had arrived).
func TestWindowLossThenCorruption(t *testing.T) {
	bo, do := wfast(link.Bridge), wfast(link.Device)
	do.AckTimeout = 100 * time.Millisecond
	b, d, br, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	var mu sync.Mutex
	n := 0
	tp.setFilter(func(dr dir, f wire.Frame) action {
		mu.Lock()
		defer mu.Unlock()
		if dr == d2b && f.Type == wire.FrameData {
			n++
			switch n {
			case 2:
				return drop
			case 3:
				return corrupt
			}
		}
		return pass
	})
	wait := queueAll(t, d, 1, 12)
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
	inOrder(t, br, 1, 12)
}

// Lost ACKs are covered by the next (cumulative) ACK: nothing is sent twice
// when a later ACK arrives before the timeout.
func TestWindowCumulativeAck(t *testing.T) {
	bo, do := wfast(link.Bridge), wfast(link.Device)
	b, d, br, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	var mu sync.Mutex
	k := 0
	tp.setFilter(func(dr dir, f wire.Frame) action {
		mu.Lock()
		defer mu.Unlock()
		if dr == b2d && f.Type == wire.FrameAck {
			k++
			if k%2 == 0 { // every other ACK lost
				return drop
			}
		}
		return pass
	})
	wait := queueAll(t, d, 1, 21)
	for _, err := range wait() {
		if err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, br, 1, 21)
	if b.Stats().Delivered != 21 {
		t.Fatal("not all delivered once")
	}
}

// The bridge sends with a window too, to a device that announced one.
func TestWindowBridgeToDevice(t *testing.T) {
	b, d, _, dr, _ := pair(t, wfast(link.Bridge), wfast(link.Device))
	waitUp(t, b, d)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var chs []<-chan error
	for i := uint64(1); i <= 12; i++ {
		ch, err := b.Queue(ctx, command(i))
		if err != nil {
			t.Fatal(err)
		}
		chs = append(chs, ch)
	}
	for _, ch := range chs {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 2*time.Second, "12 commands", func() bool { n, _, _, _ := dr.counts(); return n == 12 })
	dr.mu.Lock()
	defer dr.mu.Unlock()
	for i, e := range dr.envs {
		if e.Command.ID != uint64(i+1) {
			t.Fatalf("command %d is #%d", i, e.Command.ID)
		}
	}
}

// Link down while frames are outstanding fails every one of them.
func TestWindowDownFailsAllOutstanding(t *testing.T) {
	bo, do := wfast(link.Bridge), wfast(link.Device)
	do.AckTimeout, do.Retries = 30*time.Millisecond, 1
	b, d, _, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	tp.blackhole(b2d, true)
	wait := queueAll(t, d, 1, 4)
	for i, err := range wait() {
		if !isErr(err, link.ErrLinkDown) {
			t.Fatalf("envelope %d: %v, want ErrLinkDown", i, err)
		}
	}
}

// Frames queued behind each other: the oldest frame left after an ACK gets
// its whole retransmit interval from that ACK (§8.6), not from when it was
// written, which on a slow line of unknown speed can be long before its
// turn on the line. (A lower bound only: a stalled machine makes the
// retransmission later, never earlier.)
func TestWindowAckRestartsRetransmitTimer(t *testing.T) {
	o := fast(link.Bridge)
	o.AckTimeout = 2 * time.Second
	o.Heartbeat, o.Silence, o.ResetInterval = time.Minute, time.Minute, time.Minute
	bc, dc := net.Pipe()
	br := &recorder{}
	b := link.New(bc, br.opts(o))
	run(t, b)
	dev := newRaw(t, dc)
	h := testHello()
	h.Window = 4
	dev.sendEnv(5, &wire.Envelope{Kind: wire.KindHello, Hello: h})
	if f := dev.expect(wire.FrameAck, 5); len(f.Payload) != 1 {
		t.Fatalf("hello ACK payload %x, want the bridge's window", f.Payload)
	}
	eventually(t, time.Second, "up", b.Up)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res []<-chan error
	for id := uint64(1); id <= 2; id++ {
		ch, err := b.Queue(ctx, command(id))
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, ch)
	}
	dev.expect(wire.FrameData, 0)
	dev.expect(wire.FrameData, 1)
	written := time.Now()
	// frame 0's ACK comes late, as after a long frame on a slow line; frame
	// 1 is never ACKed
	time.Sleep(o.AckTimeout * 6 / 10)
	dev.send(wire.FrameAck, 0, nil)
	acked := time.Now()
	f, ok := dev.next(3 * o.AckTimeout)
	if !ok {
		t.Fatal("frame 1 was never retransmitted")
	}
	if f.Type == wire.FrameData && f.Seq == 0 {
		t.Skipf("the machine stalled: frame 0's timer ran out before its ACK was taken (%v after writing)", time.Since(written))
	}
	if f.Type != wire.FrameData || f.Seq != 1 {
		t.Fatalf("got %s seq %d, want DATA seq 1 retransmitted", f.Type, f.Seq)
	}
	if got := time.Since(acked); got < o.AckTimeout*7/10 {
		t.Fatalf("frame 1 retransmitted %v after frame 0's ACK (%v after it was written); want its retransmit interval (%v) from the ACK",
			got.Round(time.Millisecond), time.Since(written).Round(time.Millisecond), o.AckTimeout)
	}
	if err := <-res[0]; err != nil {
		t.Fatalf("frame 0: %v", err)
	}
	dev.send(wire.FrameAck, 1, nil)
	if err := <-res[1]; err != nil {
		t.Fatalf("frame 1: %v", err)
	}
}

// wantStopAndWait queues 10 envelopes on the device d and checks that they
// reach the bridge's recorder br once each, in order, with never more than
// one DATA frame outstanding on the tap.
func wantStopAndWait(t *testing.T, d *link.Link, br *recorder, tp *tap) {
	t.Helper()
	out := &outstanding{open: map[uint16]bool{}}
	tp.setFilter(out.filter(d2b))
	wait := queueAll(t, d, 1, 10)
	for _, err := range wait() {
		if err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, br, 1, 10)
	if out.max != 1 {
		t.Fatalf("%d frames outstanding at once, want 1", out.max)
	}
}
