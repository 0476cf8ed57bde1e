package link_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

// pair starts a bridge and a device link over a tap.
func pair(t *testing.T, bo, do link.Options) (b, d *link.Link, br, dr *recorder, tp *tap) {
	t.Helper()
	bc, dc, tp := newTap(t)
	br, dr = &recorder{}, &recorder{}
	if do.Hello == nil {
		do.Hello = testHello()
	}
	b = link.New(bc, br.opts(bo))
	d = link.New(dc, dr.opts(do))
	run(t, b)
	run(t, d)
	return b, d, br, dr, tp
}

func waitUp(t *testing.T, ls ...*link.Link) {
	t.Helper()
	eventually(t, 3*time.Second, "link up", func() bool {
		for _, l := range ls {
			if !l.Up() {
				return false
			}
		}
		return true
	})
}

func TestHandshakeAndRoundTrip(t *testing.T) {
	b, d, br, dr, _ := pair(t, fast(link.Bridge), fast(link.Device))
	waitUp(t, b, d)
	if h := b.Peer(); h == nil || h.Device != "dev-1" || h.Boot != 7 || h.Firmware != "1.0.0" {
		t.Fatalf("bridge peer = %+v", h)
	}
	if err := send(t, b, command(1)); err != nil {
		t.Fatalf("bridge send: %v", err)
	}
	eventually(t, time.Second, "command at the device", func() bool { n, _, _, _ := dr.counts(); return n == 1 })
	reply := &wire.Envelope{Kind: wire.KindReply, Reply: &wire.Reply{ID: 1, Device: "dev-1", Outcome: wire.OutcomeDone}}
	if err := send(t, d, reply); err != nil {
		t.Fatalf("device send: %v", err)
	}
	for i := uint64(0); i < 20; i++ {
		if err := send(t, d, telemetry(i)); err != nil {
			t.Fatalf("telemetry %d: %v", i, err)
		}
	}
	eventually(t, time.Second, "reply and telemetry at the bridge", func() bool { n, _, _, _ := br.counts(); return n == 21 })
	br.mu.Lock()
	if br.envs[0].Reply == nil || br.envs[0].Reply.ID != 1 {
		t.Errorf("first envelope = %+v, want the reply", br.envs[0])
	}
	for i, e := range br.envs[1:] {
		if e.Telemetry == nil || e.Telemetry.Seq != uint64(i) {
			t.Errorf("envelope %d = %+v, want telemetry %d in order", i+1, e, i)
		}
	}
	br.mu.Unlock()
	bs, ds := b.Stats(), d.Stats()
	if bs.Ups != 1 || ds.Ups != 1 || bs.ResetsOut != 0 || ds.ResetsIn != 0 || ds.DataOut != 22 || bs.DataIn != 22 {
		t.Errorf("handshake stats: bridge %+v device %+v", bs, ds)
	}
	if bs.Delivered != 21 || ds.Delivered != 1 || bs.Sent != 1 || ds.Sent != 21 {
		t.Errorf("delivery stats: bridge %+v device %+v", bs, ds)
	}
	if bs.Retransmits != 0 || ds.Retransmits != 0 || bs.DropsTotal() != 0 || ds.DropsTotal() != 0 {
		t.Errorf("clean pipe had retransmits or drops: bridge %+v device %+v", bs, ds)
	}
}

// The bridge sends nothing until the device's Hello, except RESET: after
// ResetInterval without a Hello, and in answer to other DATA frames.
func TestBridgeSilentUntilHello(t *testing.T) {
	bc, dc := net.Pipe()
	br := &recorder{}
	o := fast(link.Bridge)
	o.Heartbeat = 20 * time.Millisecond
	o.ResetInterval = 800 * time.Millisecond
	o.Silence = time.Minute
	b := link.New(bc, br.opts(o))
	start := time.Now()
	run(t, b)
	dev := newRaw(t, dc)

	dev.expectNothing(400 * time.Millisecond) // no heartbeats, no RESET yet
	dev.expect(wire.FrameReset, 0)
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Fatalf("first RESET after %v, before ResetInterval", el)
	}
	// a 0x00, then RESET (02 13 01 03 d6 af 00)
	eventually(t, time.Second, "8 bytes out", func() bool { return b.Stats().BytesOut == 1+7 })
	dev.expect(wire.FrameReset, 0) // and again after ResetInterval
	dev.sendEnv(40, telemetry(1))  // not a Hello: answered with RESET, not ACKed
	dev.expect(wire.FrameReset, 0)
	dev.send(wire.FrameData, 41, []byte{0xff, 0x00})
	dev.expect(wire.FrameReset, 0)
	if s := b.Stats(); s.Drops[link.DropBeforeHello] != 2 || s.AcksOut != 0 || s.NacksOut != 0 {
		t.Fatalf("stats before hello: %+v", s)
	}
	if n, _, _, _ := br.counts(); n != 0 {
		t.Fatal("an envelope before the hello was delivered")
	}
	dev.sendEnv(41, &wire.Envelope{Kind: wire.KindHello, Hello: testHello()}) // any seq opens the session
	dev.expect(wire.FrameAck, 41)
	eventually(t, time.Second, "bridge up", b.Up)
	hb := dev.expect(wire.FrameData, 0) // the session's first DATA from the bridge is seq 0: a heartbeat
	env, err := wire.Unmarshal(hb.Payload)
	if err != nil || env.Heartbeat == nil || env.Heartbeat.Device != "dev-1" {
		t.Fatalf("expected a heartbeat naming dev-1, got %+v, %v", env, err)
	}
	dev.send(wire.FrameAck, 0, nil)
	dev.expect(wire.FrameData, 1)
}

// A lost ACK makes the sender retransmit; the receiver ACKs the duplicate
// again and does not deliver it twice.
func TestLostAckRetransmitDuplicate(t *testing.T) {
	bo, do := fast(link.Bridge), fast(link.Device)
	do.AckTimeout = 50 * time.Millisecond
	b, d, br, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	dropped := false
	tp.setFilter(func(dr dir, f wire.Frame) action {
		if dr == b2d && f.Type == wire.FrameAck && !dropped { // the ACK of the telemetry
			dropped = true
			return drop
		}
		return pass
	})
	if err := send(t, d, telemetry(1)); err != nil {
		t.Fatal(err)
	}
	if !dropped {
		t.Fatal("the filter dropped nothing")
	}
	eventually(t, time.Second, "delivery", func() bool { n, _, _, _ := br.counts(); return n == 1 })
	time.Sleep(50 * time.Millisecond)
	if n, _, _, _ := br.counts(); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
	// (a stalled test machine may add retransmits, never deliveries)
	if ds, bs := d.Stats(), b.Stats(); ds.Retransmits < 1 || bs.Duplicates < 1 || bs.Duplicates != ds.Retransmits || bs.AcksOut < 2 {
		t.Fatalf("device retransmits %d (want ≥1), bridge duplicates %d (want as many), acks out %d",
			ds.Retransmits, bs.Duplicates, bs.AcksOut)
	}
}

// A frame with a bad CRC is NACKed and retransmitted at once, long before the
// ack timeout.
func TestBadCRCNackedRetransmitted(t *testing.T) {
	bo, do := fast(link.Bridge), fast(link.Device)
	bo.AckTimeout, do.AckTimeout = 20*time.Second, 20*time.Second
	bo.Heartbeat, do.Heartbeat = 10*time.Second, 10*time.Second
	bo.Silence, do.Silence = 60*time.Second, 60*time.Second
	b, d, _, dr, tp := pair(t, bo, do)
	waitUp(t, b, d)
	corrupted := 0
	tp.setFilter(func(dr dir, f wire.Frame) action {
		if dr == b2d && f.Type == wire.FrameData && corrupted == 0 {
			corrupted++
			return corrupt
		}
		return pass
	})
	start := time.Now()
	if err := send(t, b, command(9)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("send took %v: the retransmit waited for the timeout instead of the NACK", el)
	}
	eventually(t, time.Second, "command delivered", func() bool { n, _, _, _ := dr.counts(); return n == 1 })
	bs, ds := b.Stats(), d.Stats()
	if corrupted != 1 || bs.Retransmits != 1 || bs.NacksIn != 1 || ds.NacksOut != 1 || ds.Drops[link.DropBadCRC] != 1 {
		t.Fatalf("corrupted %d; bridge retransmits %d nacks in %d; device nacks out %d, drops %v",
			corrupted, bs.Retransmits, bs.NacksIn, ds.NacksOut, ds.Drops)
	}
	_, drops, _, _ := dr.counts()
	if drops != 1 {
		t.Fatalf("device OnDrop called %d times, want 1", drops)
	}
	var de *link.DropError
	if !errors.As(dr.drops[0], &de) || de.Reason != link.DropBadCRC || !de.HasSeq {
		t.Fatalf("OnDrop got %v", dr.drops[0])
	}
}

// No ACK after Retries retransmissions: the link goes down, Send fails with
// ErrLinkDown wrapping ErrNoAck; the device comes back with RESET and Hello.
func TestNoAckLinkDownAndRecovery(t *testing.T) {
	bo, do := fast(link.Bridge), fast(link.Device)
	bo.AckTimeout = 30 * time.Millisecond
	bo.Heartbeat, do.Heartbeat = 10*time.Second, 150*time.Millisecond
	b, d, br, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	tp.blackhole(d2b, true)
	rt0 := b.Stats().Retransmits
	start := time.Now()
	err := send(t, b, command(1))
	el := time.Since(start)
	if !errors.Is(err, link.ErrLinkDown) || !errors.Is(err, link.ErrNoAck) {
		t.Fatalf("send = %v, want ErrLinkDown and ErrNoAck", err)
	}
	if el < 4*30*time.Millisecond || el > 5*time.Second {
		t.Fatalf("gave up after %v, want about (retries+1) × ack timeout", el)
	}
	if s := b.Stats(); s.Retransmits-rt0 != 3 || s.Downs != 1 {
		t.Fatalf("bridge stats %+v", s)
	}
	eventually(t, time.Second, "OnDown(ErrNoAck)", func() bool { return errors.Is(br.lastDown(), link.ErrNoAck) })
	if err := send(t, b, command(2)); !errors.Is(err, link.ErrLinkDown) {
		t.Fatalf("send while down = %v", err)
	}
	tp.blackhole(d2b, false)
	// the device's own heartbeat is not ACKed either (the bridge waits for a
	// hello), so it restarts with RESET + Hello and the link comes back.
	eventually(t, 5*time.Second, "second up", func() bool { _, _, ups, _ := br.counts(); return ups == 2 && b.Up() })
	if err := send(t, b, command(3)); err != nil {
		t.Fatalf("send after recovery: %v", err)
	}
}

// Silence: no frame for Silence takes the link down.
func TestSilenceDown(t *testing.T) {
	bo, do := fast(link.Bridge), fast(link.Device)
	bo.Heartbeat, bo.Silence = 10*time.Second, 300*time.Millisecond
	do.Heartbeat = 10 * time.Second
	b, d, br, _, tp := pair(t, bo, do)
	waitUp(t, b, d)
	tp.blackhole(d2b, true)
	start := time.Now()
	eventually(t, 5*time.Second, "bridge down", func() bool { return !b.Up() })
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("down after %v, before the silence timeout", el)
	}
	eventually(t, time.Second, "OnDown(ErrSilence)", func() bool { return errors.Is(br.lastDown(), link.ErrSilence) })
}

// Heartbeats keep an idle link up, both ways.
func TestHeartbeatKeepsLinkUp(t *testing.T) {
	bo, do := fast(link.Bridge), fast(link.Device)
	bo.Heartbeat, do.Heartbeat = 50*time.Millisecond, 50*time.Millisecond
	bo.Silence, do.Silence = 3*time.Second, 3*time.Second
	b, d, br, dr, _ := pair(t, bo, do)
	waitUp(t, b, d)
	time.Sleep(time.Second)
	bs, ds := b.Stats(), d.Stats()
	if bs.HeartbeatsOut < 4 || ds.HeartbeatsOut < 4 || bs.HeartbeatsIn < 4 || ds.HeartbeatsIn < 4 {
		t.Fatalf("heartbeats: bridge %d out %d in; device %d out %d in",
			bs.HeartbeatsOut, bs.HeartbeatsIn, ds.HeartbeatsOut, ds.HeartbeatsIn)
	}
	if _, _, _, downs := br.counts(); downs != 0 || bs.Downs != 0 || ds.Downs != 0 || !b.Up() || !d.Up() {
		t.Fatalf("idle link went down: %v %v", br.lastDown(), dr.lastDown())
	}
	if n, _, _, _ := br.counts(); n != 0 {
		t.Fatal("heartbeats were delivered as envelopes")
	}
}

// upRaw opens a session between a bridge link and a raw device.
func upRaw(t *testing.T, o link.Options) (*link.Link, *recorder, *raw) {
	t.Helper()
	bc, dc := net.Pipe()
	br := &recorder{}
	o.Heartbeat, o.Silence, o.ResetInterval = time.Minute, time.Minute, time.Minute
	b := link.New(bc, br.opts(o))
	run(t, b)
	dev := newRaw(t, dc)
	dev.sendEnv(5, &wire.Envelope{Kind: wire.KindHello, Hello: testHello()})
	dev.expect(wire.FrameAck, 5)
	eventually(t, time.Second, "up", b.Up)
	return b, br, dev
}

// A retransmitted Hello (same seq, same bytes) is a duplicate; a RESET or a
// new Hello from an up device means it restarted: down, then up again.
func TestHelloSessions(t *testing.T) {
	b, br, dev := upRaw(t, fast(link.Bridge))
	hello := &wire.Envelope{Kind: wire.KindHello, Hello: testHello()}
	dev.sendEnv(5, hello) // our ACK was lost
	dev.expect(wire.FrameAck, 5)
	dev.sendEnv(6, telemetry(1))
	dev.expect(wire.FrameAck, 6)
	if _, _, ups, downs := br.counts(); ups != 1 || downs != 0 || b.Stats().Duplicates != 1 {
		t.Fatalf("ups %d downs %d duplicates %d after a repeated hello", ups, downs, b.Stats().Duplicates)
	}

	dev.send(wire.FrameReset, 0, nil) // not ACKed
	eventually(t, time.Second, "down", func() bool { return !b.Up() })
	eventually(t, time.Second, "OnDown(ErrPeerReset)", func() bool { return errors.Is(br.lastDown(), link.ErrPeerReset) })
	// a hello is delivered whatever its seq, even that of the last frame taken
	h2 := testHello()
	h2.Boot = 8
	dev.sendEnv(6, &wire.Envelope{Kind: wire.KindHello, Hello: h2})
	dev.expect(wire.FrameAck, 6)
	eventually(t, time.Second, "up again", func() bool { _, _, ups, _ := br.counts(); return ups == 2 && b.Up() })

	// the bridge numbers each session from 0
	errc := make(chan error, 1)
	go func() { errc <- send(t, b, command(1)) }()
	dev.send(wire.FrameAck, dev.expect(wire.FrameData, 0).Seq, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// a new hello while up (the device rebooted without RESET): down and up
	h3 := testHello()
	h3.Boot = 9
	dev.sendEnv(7, &wire.Envelope{Kind: wire.KindHello, Hello: h3})
	dev.expect(wire.FrameAck, 7)
	eventually(t, time.Second, "third up", func() bool { _, _, ups, downs := br.counts(); return ups == 3 && downs == 2 })
	go func() { errc <- send(t, b, command(2)) }()
	dev.send(wire.FrameAck, dev.expect(wire.FrameData, 0).Seq, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.ups[1].Boot != 8 || br.ups[2].Boot != 9 {
		t.Fatalf("hellos seen: %+v %+v", br.ups[1], br.ups[2])
	}
}

// An intact frame whose envelope does not decode is NACKed rejected (and
// counts as taken); a rejected Send fails with ErrRejected without retries;
// an unknown envelope kind is ACKed and ignored.
func TestRejected(t *testing.T) {
	b, br, dev := upRaw(t, fast(link.Bridge))
	dev.send(wire.FrameData, 6, []byte{0xa1, 0x00}) // a CBOR map cut short
	f := dev.expect(wire.FrameNack, 6)
	if len(f.Payload) != 1 || wire.NackReason(f.Payload[0]) != wire.NackRejected {
		t.Fatalf("NACK payload %x, want rejected", f.Payload)
	}
	dev.send(wire.FrameData, 6, []byte{0xa1, 0x00}) // our NACK was lost: a duplicate now
	dev.expect(wire.FrameAck, 6)
	dev.send(wire.FrameData, 7, []byte{0xa2, 0x00, 0x01, 0x01, 0x18, 0x63}) // {0: 1, 1: 99}: kind 99
	dev.expect(wire.FrameAck, 7)

	errc := make(chan error, 1)
	go func() { errc <- send(t, b, command(5)) }()
	cmd := dev.expect(wire.FrameData, 0)
	dev.send(wire.FrameNack, cmd.Seq, []byte{byte(wire.NackRejected)})
	if err := <-errc; !errors.Is(err, link.ErrRejected) {
		t.Fatalf("send = %v, want ErrRejected", err)
	}
	s := b.Stats()
	if s.Retransmits != 0 || s.Drops[link.DropBadEnvelope] != 1 || s.Drops[link.DropUnknownKind] != 1 || !b.Up() {
		t.Fatalf("stats %+v", s)
	}
	if n, _, _, _ := br.counts(); n != 0 {
		t.Fatalf("%d envelopes delivered, want none", n)
	}
}

// Garbage and torn frames cost at most the frame they hit: the decoder
// resynchronises at the next delimiter; drops are counted and reported.
func TestGarbageResync(t *testing.T) {
	b, br, dev := upRaw(t, fast(link.Bridge))
	p, _ := wire.Marshal(telemetry(2))
	good2 := dev.frame(wire.FrameData, 2, p)
	p3, _ := wire.Marshal(telemetry(3))
	good3 := dev.frame(wire.FrameData, 3, p3)
	// garbage with a delimiter, then a frame: the frame is taken
	dev.write(append([]byte("\x13\x37line noise\xff\xfe"), 0))
	dev.write(good2)
	dev.expect(wire.FrameAck, 2)
	// a torn frame (first half of frame 3, then the delimiter), then frame 3 whole
	dev.write(append(append([]byte(nil), good3[:len(good3)/2]...), 0))
	dev.write(good3)
	dev.expect(wire.FrameAck, 3)
	// garbage glued to the front of a frame (no delimiter): that frame is lost,
	// the next one is fine
	p4, _ := wire.Marshal(telemetry(4))
	good4 := dev.frame(wire.FrameData, 4, p4)
	dev.write(append([]byte{0x02, 0x99, 0x05}, good4...))
	dev.write(good4)
	for {
		f, ok := dev.next(time.Second)
		if !ok {
			t.Fatal("no ACK for frame 4")
		}
		if f.Type == wire.FrameAck && f.Seq == 4 {
			break
		}
	}
	eventually(t, time.Second, "3 deliveries", func() bool { n, _, _, _ := br.counts(); return n == 3 })
	s := b.Stats()
	if s.DropsTotal() < 3 || s.Duplicates != 0 || s.Delivered != 3 {
		t.Fatalf("stats %+v", s)
	}
	_, drops, _, _ := br.counts()
	if uint64(drops) != s.DropsTotal() {
		t.Fatalf("OnDrop called %d times, stats say %d drops", drops, s.DropsTotal())
	}
	for _, err := range br.drops {
		var de *link.DropError
		if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "link: dropped frame: ") {
			t.Fatalf("OnDrop got %T %v", err, err)
		}
	}
}

// A receiver whose OnEnvelope is slow NACKs busy instead of queueing without
// bound; the sender waits and nothing is lost or duplicated.
func TestBusyFlowControl(t *testing.T) {
	bo, do := fast(link.Bridge), fast(link.Device)
	bo.QueueLen = 1 // at most 2 envelopes waiting for OnEnvelope
	do.AckTimeout = 30 * time.Millisecond
	do.Retries = 20 // busy NACKs count as retransmissions
	b, d, br, _, _ := pair(t, bo, do)
	br.block = make(chan struct{})
	waitUp(t, b, d)
	errc := make(chan error, 1)
	go func() {
		for i := uint64(0); i < 6; i++ {
			if err := send(t, d, telemetry(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	eventually(t, 5*time.Second, "a busy NACK", func() bool { return b.Stats().Drops[link.DropBusy] >= 1 })
	close(br.block)
	if err := <-errc; err != nil {
		t.Fatalf("send with a busy receiver: %v", err)
	}
	eventually(t, time.Second, "all delivered", func() bool { n, _, _, _ := br.counts(); return n == 6 })
	for i, e := range br.envs {
		if e.Telemetry.Seq != uint64(i) {
			t.Fatalf("out of order: %d at %d", e.Telemetry.Seq, i)
		}
	}
	if d.Stats().Downs != 0 {
		t.Fatal("busy receiver took the link down")
	}
}

// A port that stops taking bytes makes Run return ErrWriteTimeout.
func TestWriteTimeout(t *testing.T) {
	bc, dc := net.Pipe()
	o := fast(link.Bridge)
	b := link.New(bc, o)
	errc, _ := run(t, b)
	defer dc.Close()
	p, _ := wire.Marshal(telemetry(1))
	fr, _ := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Seq: 3, Payload: p})
	dc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := dc.Write(fr); err != nil { // the bridge answers with RESET; nobody reads
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, link.ErrWriteTimeout) {
			t.Fatalf("Run = %v, want ErrWriteTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// Read errors end Run; Sends waiting then fail.
func TestPortClosedEndsRun(t *testing.T) {
	b, d, _, _, _ := pair(t, fast(link.Bridge), fast(link.Device))
	waitUp(t, b, d)
	_ = d // the device's Run is stopped through its context at cleanup
	bc, dc := net.Pipe()
	o := fast(link.Bridge)
	l := link.New(bc, o)
	errc, _ := run(t, l)
	dc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after the peer closed")
	}
	if err := send(t, l, command(1)); !errors.Is(err, link.ErrLinkDown) || !errors.Is(err, link.ErrStopped) {
		t.Fatalf("send after Run = %v", err)
	}
}

func TestSendLimits(t *testing.T) {
	do := fast(link.Device)
	do.Hello = testHello()
	do.Hello.MaxFrame = 64
	lone, peer := net.Pipe()
	defer peer.Close()
	alone := link.New(lone, fast(link.Bridge))
	if err := alone.Send(context.Background(), command(1)); !errors.Is(err, link.ErrLinkDown) {
		t.Fatalf("send before Run = %v", err)
	}
	run(t, alone)
	if err := alone.Send(context.Background(), command(1)); !errors.Is(err, link.ErrLinkDown) {
		t.Fatalf("send before the hello = %v", err)
	}
	b, d, _, _, _ := pair(t, fast(link.Bridge), do)
	waitUp(t, b, d)
	if b.MaxSend() != 64 || d.MaxSend() != wire.MaxFramePayload {
		t.Fatalf("MaxSend bridge %d device %d", b.MaxSend(), d.MaxSend())
	}
	big := command(2)
	big.Command.Args = map[string]wire.Value{"text": strings.Repeat("x", 100)}
	if err := send(t, b, big); !errors.Is(err, link.ErrTooLarge) {
		t.Fatalf("send of %d-byte command = %v, want ErrTooLarge", 100, err)
	}
	if err := send(t, b, command(3)); err != nil {
		t.Fatalf("small command: %v", err)
	}
	huge := telemetry(1)
	huge.Telemetry.Values["blob"] = []byte(strings.Repeat("y", 2000))
	if err := send(t, d, huge); !errors.Is(err, link.ErrTooLarge) {
		t.Fatalf("send of a 2 kB telemetry = %v, want ErrTooLarge", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Send(ctx, telemetry(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("send with a cancelled ctx = %v", err)
	}
}

// Callbacks may panic without taking the link down.
func TestCallbackPanicRecovered(t *testing.T) {
	bo := fast(link.Bridge)
	var logged []string
	bo.Logf = func(f string, a ...any) { logged = append(logged, f) }
	got := make(chan struct{}, 10)
	bo.OnEnvelope = func(*wire.Envelope) { got <- struct{}{}; panic("boom") }
	bc, dc, _ := newTap(t)
	b := link.New(bc, bo)
	do := fast(link.Device)
	do.Hello = testHello()
	d := link.New(dc, do)
	run(t, b)
	run(t, d)
	waitUp(t, b, d)
	for i := uint64(0); i < 2; i++ {
		if err := send(t, d, telemetry(i)); err != nil {
			t.Fatal(err)
		}
		<-got
	}
	if !b.Up() {
		t.Fatal("link down after a callback panic")
	}
}

// A restarted device takes no DATA frame before its hello is ACKed, so a
// bridge's retransmission from the session before the restart cannot run
// in the new one (docs/protocol.md §8.1).
func TestDeviceTakesNothingBeforeItsHelloIsAcked(t *testing.T) {
	dc, bc := net.Pipe()
	dr := &recorder{}
	o := fast(link.Device)
	o.Hello = testHello()
	o.Heartbeat, o.Silence = time.Minute, time.Minute
	d := link.New(dc, dr.opts(o))
	run(t, d)
	br := newRaw(t, bc)
	hello := br.expect(wire.FrameData, -1)
	br.sendEnv(3, command(1)) // the old session's frame, retransmitted
	eventually(t, time.Second, "the drop", func() bool { return d.Stats().Drops[link.DropNotUp] == 1 })
	if n, _, _, _ := dr.counts(); n != 0 {
		t.Fatal("a command arrived before the device's hello was acknowledged and was delivered")
	}
	br.send(wire.FrameAck, hello.Seq, nil)
	eventually(t, time.Second, "up", d.Up)
	br.sendEnv(0, command(1)) // the new session's first frame
	br.expect(wire.FrameAck, 0)
	eventually(t, time.Second, "delivered", func() bool { n, _, _, _ := dr.counts(); return n == 1 })
}

// A new hello ends the session's outstanding frames: their Sends fail and
// they are never retransmitted into the new session.
func TestNewHelloEndsOutstandingFrames(t *testing.T) {
	o := fast(link.Bridge)
	o.AckTimeout = 100 * time.Millisecond
	b, _, dev := upRaw(t, o)
	errc := make(chan error, 1)
	go func() { errc <- send(t, b, command(1)) }()
	dev.expect(wire.FrameData, 0) // not ACKed: the device restarts
	h := testHello()
	h.Boot = 8
	dev.sendEnv(0, &wire.Envelope{Kind: wire.KindHello, Hello: h})
	for {
		f, ok := dev.next(2 * time.Second)
		if !ok {
			t.Fatal("no ACK of the new hello")
		}
		if f.Type == wire.FrameAck && f.Seq == 0 {
			break
		}
		// retransmissions of the old frame may precede the ACK, never follow it
	}
	if err := <-errc; !errors.Is(err, link.ErrLinkDown) {
		t.Fatalf("the outstanding frame's Send = %v, want ErrLinkDown", err)
	}
	if f, ok := dev.next(5 * o.AckTimeout); ok {
		t.Fatalf("after the new hello's ACK the bridge sent %s seq %d", f.Type, f.Seq)
	}
}
