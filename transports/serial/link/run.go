package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

type evKind uint8

const (
	evFrame evKind = iota + 1
	evDrop
	evReadErr
	evWriteErr
	evWritten
)

type event struct {
	kind evKind
	f    wire.Frame
	d    wire.Drop
	err  error
	tx   uint64
	at   time.Time
}

type wreq struct {
	b  []byte
	tx uint64 // non-zero: a tracked DATA/RESET transmission; the writer reports when written
}

type lstate uint8

const (
	stWaitHello  lstate = iota + 1 // bridge: no Hello yet (or the link went down)
	stConnecting                   // device: Hello outstanding
	stUp
)

type outWhat uint8

const (
	wUser outWhat = iota + 1
	wHeartbeat
	wHello
)

// outFrame is a DATA frame waiting for its ACK: the only one in
// stop-and-wait, one of at most txWindow with a windowed peer (§8.6).
type outFrame struct {
	seq      uint16
	frame    []byte
	req      *sendReq
	what     outWhat
	tries    int // retransmissions so far
	tx       uint64
	deadline time.Time
	slow     bool // device Hello past its retries: once every Heartbeat from now on
}

type loopState struct {
	state     lstate
	outs      []*outFrame // DATA frames waiting for their ACK, oldest first
	txWindow  int         // how many may be outstanding: 1 until the peer announced a window
	windowed  bool        // the peer sends with a window: receive in order (§8.6)
	gapNack   bool        // a NACK for the frame expected next went out (once per gap)
	txSeq     uint16      // next DATA seq
	rxHave    bool
	rxLast    uint16
	lastRx    time.Time // last intact frame received
	lastTx    time.Time // last frame sent (any type)
	nextReset time.Time // bridge, waiting for a Hello: next RESET
	hbSeq     uint64
	txID      uint64
	helloPay  []byte // device: encoded Hello
	sessHello []byte // bridge: the Hello that opened this session
	stopping  bool   // Run is returning: no new Hello
}

// Run runs the link until ctx ends or the port fails, and returns why: ctx's
// error, or the port's read or write error (ErrWriteTimeout, io.EOF, EIO,
// ErrNoData...). Link-level trouble (no ACK, silence, peer reset) does not
// end Run: it calls OnDown and waits for the link to come up again. Run
// starts and waits for a reader, a writer and a callback goroutine; it
// closes the port before it returns, and fails Sends still waiting. Run may
// be called once.
func (l *Link) Run(ctx context.Context) (err error) {
	if !l.run.CompareAndSwap(false, true) {
		return errors.New("link: Run called twice; make a new Link")
	}
	if l.o.Role != Bridge && l.o.Role != Device {
		close(l.quit)
		close(l.done)
		_ = l.port.Close()
		return fmt.Errorf("link: Options.Role must be Bridge or Device")
	}
	if l.o.Role == Device {
		if l.o.Hello == nil || l.o.Hello.Device == "" {
			close(l.quit)
			close(l.done)
			_ = l.port.Close()
			return fmt.Errorf("link: a Device link needs Options.Hello with Device set")
		}
		h := *l.o.Hello
		if l.o.Window > 1 {
			h.Window = uint32(l.o.Window)
		}
		p, err := wire.MarshalHello(&h)
		if err != nil {
			close(l.quit)
			close(l.done)
			_ = l.port.Close()
			return fmt.Errorf("link: cannot encode Options.Hello: %w", err)
		}
		l.s.helloPay = p
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go l.reader(&wg)
	go l.writer(&wg)
	go l.deliverer(&wg)

	err = l.loopSafe(ctx)

	now := time.Now()
	l.s.stopping = true
	if l.s.state == stUp {
		l.goDown(now, fmt.Errorf("%w: %w", ErrStopped, err), false)
	}
	l.setDownErr(fmt.Errorf("%w: %w", ErrStopped, err))
	l.failOut(fmt.Errorf("%w: %w: %w", ErrLinkDown, ErrStopped, err))
	close(l.quit)
	_ = l.port.Close()
	l.drainSendq(fmt.Errorf("%w: %w: %w", ErrLinkDown, ErrStopped, err))
	wg.Wait()
	close(l.done)
	return err
}

func (l *Link) loopSafe(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			l.logf("link: panic in the link loop (recovered): %v\n%s", r, debug.Stack())
			err = fmt.Errorf("link: internal error: %v", r)
		}
	}()
	return l.loop(ctx)
}

// post hands an event to the loop; false when the loop has stopped.
func (l *Link) post(ev event) bool {
	select {
	case l.events <- ev:
		return true
	case <-l.quit:
		return false
	}
}

func (l *Link) reader(wg *sync.WaitGroup) {
	defer wg.Done()
	defer func() {
		if r := recover(); r != nil {
			l.logf("link: panic in the port reader (recovered): %v\n%s", r, debug.Stack())
			l.post(event{kind: evReadErr, err: fmt.Errorf("link: reader panic: %v", r)})
		}
	}()
	dec := wire.NewFrameDecoder(wire.FrameDecoderOptions{MaxPayload: wire.MaxFramePayload})
	buf := make([]byte, 4096)
	zeros := 0
	onFrame := func(f wire.Frame) {
		f.Payload = append([]byte(nil), f.Payload...)
		l.post(event{kind: evFrame, f: f, at: time.Now()})
	}
	onDrop := func(d wire.Drop) {
		l.post(event{kind: evDrop, d: d, at: time.Now()})
	}
	for {
		n, err := l.port.Read(buf)
		if l.o.Fault != nil {
			l.o.Fault("reader")
		}
		if n > 0 {
			zeros = 0
			l.stats.bytesIn.Add(uint64(n))
			dec.Feed(buf[:n], onFrame, onDrop)
		}
		if err != nil {
			l.post(event{kind: evReadErr, err: err})
			return
		}
		if n == 0 {
			zeros++
			if zeros >= 1000 {
				l.post(event{kind: evReadErr, err: ErrNoData})
				return
			}
		}
		select {
		case <-l.quit:
			return
		default:
		}
	}
}

func (l *Link) writer(wg *sync.WaitGroup) {
	defer wg.Done()
	defer func() {
		if r := recover(); r != nil {
			l.writing.Store(0)
			l.logf("link: panic in the port writer (recovered): %v\n%s", r, debug.Stack())
			l.post(event{kind: evWriteErr, err: fmt.Errorf("link: writer panic: %v", r)})
		}
	}()
	dl, hasDeadline := l.port.(writeDeadliner)
	first := true
	for {
		select {
		case <-l.quit:
			return
		case w := <-l.wq:
			if first {
				// a 0x00 ends whatever partial frame the peer holds (§7.2)
				w.b = append([]byte{0}, w.b...)
				first = false
			}
			start := time.Now()
			if hasDeadline {
				_ = dl.SetWriteDeadline(start.Add(l.o.WriteTimeout))
			}
			l.writing.Store(start.UnixNano())
			if l.o.Fault != nil {
				l.o.Fault("writer")
			}
			n, err := l.port.Write(w.b)
			l.writing.Store(0)
			l.stats.bytesOut.Add(uint64(n))
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, ErrWriteTimeout) {
					err = fmt.Errorf("%w: the port took %d of %d bytes in %v (is the other side reading?): %w",
						ErrWriteTimeout, n, len(w.b), l.o.WriteTimeout, err)
				}
				l.post(event{kind: evWriteErr, err: err})
				return
			}
			l.stats.framesOut.Add(1)
			if w.tx != 0 {
				l.post(event{kind: evWritten, tx: w.tx, at: time.Now()})
			}
		}
	}
}

// ---- the loop: owns l.s ----

func (l *Link) loop(ctx context.Context) error {
	s := &l.s
	now := time.Now()
	s.lastRx, s.lastTx = now, now
	if l.o.Role == Device {
		l.startHello(now)
	} else {
		s.state = stWaitHello
		s.nextReset = now.Add(l.o.ResetInterval)
	}
	s.txWindow = 1
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now = time.Now()
		if err := l.tick(now); err != nil {
			return err
		}
		timer.Reset(l.nextWake(now))
		var sendq chan *sendReq
		if s.state != stUp || len(s.outs) < s.txWindow {
			sendq = l.sendq // up with room in the window: take the next; not up: fail it
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-l.events:
			if err := l.handle(ev); err != nil {
				return err
			}
		case req := <-sendq:
			l.startUser(req, time.Now())
		case <-timer.C:
		}
	}
}

// tick acts on due timers.
func (l *Link) tick(now time.Time) error {
	s := &l.s
	if ws := l.writing.Load(); ws != 0 {
		if d := now.Sub(time.Unix(0, ws)); d > 2*l.o.WriteTimeout+100*time.Millisecond {
			return fmt.Errorf("%w: a frame write has not returned for %v", ErrWriteTimeout, d.Round(time.Millisecond))
		}
	}
	if s.state == stUp && now.Sub(s.lastRx) >= l.o.Silence {
		l.goDown(now, fmt.Errorf("%w: no frame for %v", ErrSilence, l.o.Silence), true)
	}
	if len(s.outs) > 0 && !now.Before(s.outs[0].deadline) {
		o := s.outs[0]
		switch {
		case o.slow:
			l.retransmit(o, now)
			o.deadline = now.Add(l.o.Heartbeat)
		case o.tries >= l.o.Retries:
			l.outFailed(now, fmt.Errorf("%w: DATA seq %d not acknowledged after %d retransmissions", ErrNoAck, o.seq, o.tries))
		default:
			l.goBack(0, now) // the oldest and every frame after it (go-back-N)
		}
	}
	switch {
	case s.state == stWaitHello && !now.Before(s.nextReset):
		l.sendReset(now)
	case s.state == stUp && len(s.outs) == 0 && now.Sub(s.lastTx) >= l.o.Heartbeat && len(l.sendq) == 0:
		l.sendHeartbeat(now)
	}
	return nil
}

func (l *Link) nextWake(now time.Time) time.Duration {
	s := &l.s
	next := now.Add(250 * time.Millisecond) // also paces the write watchdog
	at := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if len(s.outs) > 0 {
		at(s.outs[0].deadline)
	}
	switch s.state {
	case stUp:
		at(s.lastRx.Add(l.o.Silence))
		if len(s.outs) == 0 && len(l.sendq) == 0 {
			at(s.lastTx.Add(l.o.Heartbeat))
		}
	case stWaitHello:
		at(s.nextReset)
	}
	d := next.Sub(now)
	if d < 0 {
		d = 0
	}
	return d
}

func (l *Link) handle(ev event) error {
	s := &l.s
	switch ev.kind {
	case evReadErr:
		return ev.err
	case evWriteErr:
		return ev.err
	case evWritten:
		// the ACK can come once this frame and those before it still
		// waiting (in the port's buffer, on the line) have gone out
		ahead := 0
		for _, o := range s.outs {
			ahead += len(o.frame)
			if o.tx == ev.tx {
				o.deadline = ev.at.Add(l.ackWait(ahead))
				break
			}
		}
	case evDrop:
		l.onDecodeDrop(ev.d)
	case evFrame:
		l.onFrame(ev.f, ev.at)
	}
	return nil
}

// waiting: the bridge has no Hello; it sends nothing but RESET.
func (l *Link) waiting() bool {
	return l.o.Role == Bridge && l.s.state == stWaitHello
}

func (l *Link) dropped(reason string, hasSeq bool, seq uint16, err error) {
	l.stats.drop(reason)
	if l.o.OnDrop != nil {
		l.cb.push(cbItem{kind: cbDrop, err: &DropError{Reason: reason, HasSeq: hasSeq, Seq: seq, Err: err}})
	}
}

func (l *Link) onDecodeDrop(d wire.Drop) {
	l.dropped(d.Reason.String(), d.HasSeq, d.Seq, d.Err)
	if d.Reason != wire.DropBadCRC || !d.HasSeq || l.waiting() {
		return
	}
	s := &l.s
	if !s.windowed {
		l.sendNack(d.Seq, wire.NackCorrupt)
		return
	}
	// A windowed sender takes a NACK as "the receiver has every frame
	// before this seq" (§8.6), which the damaged frame's unverified seq
	// cannot promise after an earlier loss: NACK the frame expected next,
	// once per gap. (Before the first frame of a session that is seq 0:
	// the bridge numbers its frames from 0 after a hello.)
	if s.gapNack {
		return
	}
	next := uint16(0)
	if s.rxHave {
		next = s.rxLast + 1
	}
	s.gapNack = true
	l.sendNack(next, wire.NackCorrupt)
}

func (l *Link) onFrame(f wire.Frame, at time.Time) {
	s := &l.s
	l.stats.framesIn.Add(1)
	s.lastRx = at
	switch f.Type {
	case wire.FrameAck:
		l.stats.acksIn.Add(1)
		l.onAck(f.Seq, f.Payload, at)
	case wire.FrameNack:
		l.stats.nacksIn.Add(1)
		reason := wire.NackUnspecified
		if len(f.Payload) > 0 {
			reason = wire.NackReason(f.Payload[0])
		}
		l.onNack(f.Seq, reason, at)
	case wire.FrameReset:
		l.stats.resetsIn.Add(1)
		l.onReset(at)
	case wire.FrameData:
		l.onData(f, at)
	}
}

// onReset: the peer reset its link state; reset ours. A device answers with
// a Hello; a bridge waits for one.
func (l *Link) onReset(now time.Time) {
	s := &l.s
	if l.o.Role == Device {
		switch {
		case s.state == stUp:
			l.goDown(now, fmt.Errorf("%w: RESET from the bridge", ErrPeerReset), false)
		case len(s.outs) > 0 && s.outs[0].what == wHello:
			// already saying hello: say it again now
			o := s.outs[0]
			o.tries, o.slow = 0, false
			l.stats.retransmits.Add(1)
			l.transmit(o, now)
		default:
			l.startHello(now)
		}
		return
	}
	if s.state == stUp {
		l.goDown(now, fmt.Errorf("%w: RESET from the device", ErrPeerReset), false)
	}
	s.rxHave = false
}

func (l *Link) onData(f wire.Frame, at time.Time) {
	s := &l.s
	env, derr := wire.Unmarshal(f.Payload)
	hello := derr == nil && env.Kind == wire.KindHello && l.o.Role == Bridge
	if hello {
		l.onHello(f, env.Hello, at)
		return
	}
	if l.waiting() { // any other DATA before the Hello: ask for one
		l.dropped(DropBeforeHello, true, f.Seq, errors.New("DATA frame before the device's hello; answered with RESET"))
		l.sendReset(at)
		return
	}
	if l.o.Role == Device && s.state != stUp {
		l.dropped(DropNotUp, true, f.Seq, errors.New("DATA frame before our hello was acknowledged"))
		return
	}
	if s.windowed && s.rxHave && f.Seq != s.rxLast+1 {
		if back := s.rxLast - f.Seq; back < maxWindow*4 { // taken before: its ACK was lost
			l.stats.duplicates.Add(1)
			l.sendAck(s.rxLast) // cumulative: covers f.Seq
			return
		}
		// ahead of the next one: a frame in between was lost. In-order
		// receiving drops it; the sender goes back to the one we expect.
		l.dropped(DropOutOfOrder, true, f.Seq, fmt.Errorf("expected seq %d", s.rxLast+1))
		if !s.gapNack {
			s.gapNack = true
			l.sendNack(s.rxLast+1, wire.NackUnspecified)
		}
		return
	}
	if !s.windowed && s.rxHave && f.Seq == s.rxLast {
		l.stats.duplicates.Add(1)
		l.sendAck(f.Seq)
		return
	}
	if derr != nil {
		if errors.Is(derr, wire.ErrUnknownKind) { // a newer peer: ACK and ignore
			l.sendAck(f.Seq)
			s.rxHave, s.rxLast, s.gapNack = true, f.Seq, false
			l.dropped(DropUnknownKind, true, f.Seq, derr)
			return
		}
		l.sendNack(f.Seq, wire.NackRejected)
		s.rxHave, s.rxLast, s.gapNack = true, f.Seq, false // counts as delivered for duplicate detection
		l.dropped(DropBadEnvelope, true, f.Seq, derr)
		return
	}
	if env.Kind != wire.KindHeartbeat && env.Kind != wire.KindHello && l.cb.full() {
		l.dropped(DropBusy, true, f.Seq, errors.New("delivery queue full"))
		l.sendNack(f.Seq, wire.NackBusy)
		s.gapNack = true // the sender comes back to it after its timeout
		return
	}
	l.sendAck(f.Seq)
	s.rxHave, s.rxLast, s.gapNack = true, f.Seq, false
	l.stats.dataIn.Add(1)
	switch env.Kind {
	case wire.KindHeartbeat:
		l.stats.hbIn.Add(1)
	case wire.KindHello: // to a device
		l.dropped(DropUnexpected, true, f.Seq, errors.New("hello from the bridge"))
	default:
		l.stats.delivered.Add(1)
		l.cb.push(cbItem{kind: cbEnvelope, env: env})
	}
}

// onHello (bridge): a Hello opens a session, whatever its seq.
func (l *Link) onHello(f wire.Frame, h *wire.Hello, at time.Time) {
	s := &l.s
	if s.state == stUp && bytes.Equal(f.Payload, s.sessHello) && s.rxHave &&
		(f.Seq == s.rxLast || s.windowed && s.rxLast-f.Seq < maxWindow*4) {
		// the session's own Hello again: our ACK was lost
		l.stats.duplicates.Add(1)
		l.sendHelloAck(f.Seq, h)
		return
	}
	if s.state == stUp {
		l.goDown(at, fmt.Errorf("%w: a new hello", ErrPeerReset), false)
	}
	l.sendHelloAck(f.Seq, h)
	s.rxHave, s.rxLast, s.gapNack = true, f.Seq, false
	// §8.6: a device that announces a window sends with one too (up to
	// ours, which the ACK told it) and takes up to its own from us
	s.windowed, s.txWindow = false, 1
	l.windowed.Store(s.windowed)
	if h.Window > 0 && l.o.Window > 1 {
		s.windowed = true
		l.windowed.Store(s.windowed)
		s.txWindow = min(l.o.Window, int(min(h.Window, maxWindow)))
	}
	s.sessHello = f.Payload // a copy made by the reader
	s.txSeq = 0
	lim := l.o.MaxFrame
	if h.MaxFrame > 0 && int(h.MaxFrame) < lim {
		lim = int(h.MaxFrame)
	}
	l.sendLimit.Store(int64(lim))
	l.peerMu.Lock()
	l.peer = h
	l.peerMu.Unlock()
	s.state = stUp
	s.lastRx = at
	l.stats.dataIn.Add(1)
	l.stats.ups.Add(1)
	l.up.Store(true)
	l.cb.push(cbItem{kind: cbUp, hello: h})
}

// outIndex is the position of seq among the outstanding frames, or -1.
func (l *Link) outIndex(seq uint16) int {
	for i, o := range l.s.outs {
		if o.seq == seq {
			return i
		}
	}
	return -1
}

// acked ends the first n outstanding frames: the peer has them.
func (l *Link) acked(n int) {
	s := &l.s
	for _, o := range s.outs[:n] {
		if o.what == wUser {
			l.stats.sent.Add(1)
			o.req.res <- nil
		}
	}
	clear(s.outs[:n])
	s.outs = s.outs[n:]
}

// onAck: an ACK acknowledges its frame and, cumulatively, every frame
// sent before it (§8.6; with one outstanding frame the same thing).
func (l *Link) onAck(seq uint16, payload []byte, now time.Time) {
	s := &l.s
	i := l.outIndex(seq)
	if i < 0 {
		l.stats.drop(DropStale)
		return
	}
	o := s.outs[i]
	l.acked(i + 1)
	if len(s.outs) > 0 {
		// §8.6: the line carries frames in order, so the oldest frame left
		// could not finish before the one just ACKed: its retransmit
		// interval counts from this ACK at the earliest (as TCP restarts
		// its timer on an ACK of new data). Without it, frames queued
		// behind each other on a slow line time out before their turn
		// when the line speed (Baud) is not known.
		h := s.outs[0]
		if d := now.Add(l.ackWait(len(h.frame))); !h.slow && d.After(h.deadline) {
			h.deadline = d
		}
	}
	switch o.what {
	case wHello:
		if s.state == stConnecting {
			// a bridge that takes windows says how many frames in the
			// hello's ACK (§8.6); an older one sends an empty ACK
			s.windowed, s.txWindow = false, 1
			l.windowed.Store(s.windowed)
			if len(payload) > 0 && payload[0] > 0 && l.o.Window > 1 {
				s.windowed = true
				l.windowed.Store(s.windowed)
				s.txWindow = min(l.o.Window, int(payload[0]))
			}
			s.state = stUp
			s.lastRx = now
			l.peerMu.Lock()
			l.peer = l.o.Hello
			l.peerMu.Unlock()
			l.up.Store(true)
			l.stats.ups.Add(1)
			l.cb.push(cbItem{kind: cbUp, hello: l.o.Hello})
		}
	}
}

func (l *Link) onNack(seq uint16, reason wire.NackReason, now time.Time) {
	s := &l.s
	i := l.outIndex(seq)
	if i < 0 {
		l.stats.drop(DropStale)
		return
	}
	// an in-order receiver NACKs the frame it expects: it has every frame
	// before it
	l.acked(i)
	o := s.outs[0]
	switch reason {
	case wire.NackRejected:
		switch o.what {
		case wUser:
			l.dropFirst()
			o.req.res <- fmt.Errorf("%w (seq %d)", ErrRejected, seq)
		case wHeartbeat:
			l.dropFirst()
		case wHello:
			l.logf("link: the bridge rejected our hello; saying it again every %v", l.o.Heartbeat)
			o.slow = true
			o.deadline = now.Add(l.o.Heartbeat)
		}
	case wire.NackBusy:
		o.deadline = now.Add(l.o.AckTimeout) // the tick retransmits, counting it
	default:
		if o.slow {
			l.retransmit(o, now)
			o.deadline = now.Add(l.o.Heartbeat)
			return
		}
		if o.tries >= l.o.Retries {
			l.outFailed(now, fmt.Errorf("%w: DATA seq %d still NACKed after %d retransmissions", ErrNoAck, o.seq, o.tries))
			return
		}
		l.goBack(0, now)
	}
}

// dropFirst removes the oldest outstanding frame (rejected by the peer).
func (l *Link) dropFirst() {
	s := &l.s
	s.outs[0] = nil
	s.outs = s.outs[1:]
}

// goBack retransmits outstanding frames from index i on, in order: an
// in-order receiver dropped everything after the frame it missed.
func (l *Link) goBack(i int, now time.Time) {
	for _, o := range l.s.outs[i:] {
		l.retransmit(o, now)
	}
}

// outFailed: the outstanding frame ran out of retries.
func (l *Link) outFailed(now time.Time, reason error) {
	s := &l.s
	o := s.outs[0]
	switch {
	case o.what == wHello: // device: keep saying hello, once every Heartbeat
		o.slow = true
		o.deadline = now.Add(l.o.Heartbeat)
	case s.state == stUp:
		l.goDown(now, reason, true)
	default:
		l.failOut(fmt.Errorf("%w: %w", ErrLinkDown, reason))
	}
}

// goDown takes the link down: fails what waits, calls OnDown if it was up.
// The device says hello again at once; the bridge waits for a Hello, sending
// RESET now (resetNow) or after ResetInterval.
func (l *Link) goDown(now time.Time, reason error, resetNow bool) {
	s := &l.s
	wasUp := s.state == stUp
	l.up.Store(false)
	l.setDownErr(reason)
	if wasUp {
		l.stats.downs.Add(1)
	}
	l.failOut(fmt.Errorf("%w: %w", ErrLinkDown, reason))
	l.drainSendq(fmt.Errorf("%w: %w", ErrLinkDown, reason))
	s.rxHave, s.windowed, s.txWindow, s.gapNack = false, false, 1, false
	l.windowed.Store(false)
	if wasUp {
		l.cb.push(cbItem{kind: cbDown, err: reason})
	}
	if l.o.Role == Device {
		if !s.stopping {
			l.startHello(now)
		}
		return
	}
	s.state = stWaitHello
	s.sessHello = nil
	if resetNow {
		s.nextReset = now
	} else {
		s.nextReset = now.Add(l.o.ResetInterval)
	}
}

func (l *Link) failOut(err error) {
	outs := l.s.outs
	l.s.outs = nil
	for _, o := range outs {
		if o.req != nil {
			o.req.res <- err
		}
	}
}

func (l *Link) drainSendq(err error) {
	for {
		select {
		case req := <-l.sendq:
			req.res <- err
		default:
			return
		}
	}
}

// ---- sending ----

func (l *Link) nextSeq() uint16 {
	seq := l.s.txSeq
	l.s.txSeq++ // wraps 65535 → 0
	return seq
}

// ackWait is how long to wait for the ACK of a frame of n bytes once it is
// written.
func (l *Link) ackWait(n int) time.Duration {
	d := l.o.AckTimeout
	if l.o.Baud > 0 {
		bytes := n + wire.MaxFrameEncoded
		d += time.Duration(bytes) * 10 * time.Second / time.Duration(l.o.Baud)
	}
	return d
}

func (l *Link) enqueue(w wreq, now time.Time) bool {
	select {
	case l.wq <- w:
		l.s.lastTx = now
		return true
	default:
		l.dropped(DropQueueFull, false, 0, errors.New("the port is not taking frames; frame discarded"))
		return false
	}
}

func (l *Link) transmit(o *outFrame, now time.Time) {
	s := &l.s
	s.txID++
	o.tx = s.txID
	o.deadline = now.Add(l.o.WriteTimeout + l.ackWait(len(o.frame)))
	l.enqueue(wreq{b: o.frame, tx: o.tx}, now)
}

func (l *Link) retransmit(o *outFrame, now time.Time) {
	o.tries++
	l.stats.retransmits.Add(1)
	l.transmit(o, now)
}

func (l *Link) sendData(what outWhat, payload []byte, req *sendReq, now time.Time) {
	seq := l.nextSeq()
	fr, err := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Seq: seq, Payload: payload})
	if err != nil { // sizes are checked in Send; only a bug gets here
		if req != nil {
			req.res <- fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return
	}
	o := &outFrame{seq: seq, frame: fr, req: req, what: what}
	l.s.outs = append(l.s.outs, o)
	l.stats.dataOut.Add(1)
	l.transmit(o, now)
}

func (l *Link) startUser(req *sendReq, now time.Time) {
	s := &l.s
	if req.cancelled.Load() {
		req.res <- context.Canceled
		return
	}
	if s.state != stUp {
		req.res <- l.downError()
		return
	}
	if lim := int(l.sendLimit.Load()); len(req.payload) > lim {
		req.res <- fmt.Errorf("%w: envelope is %d bytes, the peer takes at most %d", ErrTooLarge, len(req.payload), lim)
		return
	}
	l.sendData(wUser, req.payload, req, now)
}

func (l *Link) sendHeartbeat(now time.Time) {
	s := &l.s
	s.hbSeq++
	dev := ""
	if h := l.Peer(); h != nil {
		dev = h.Device
	}
	p, err := wire.MarshalHeartbeat(&wire.Heartbeat{Device: dev, Seq: s.hbSeq,
		Uptime: uint64(now.Sub(l.born).Milliseconds())})
	if err != nil {
		s.lastTx = now
		return
	}
	l.stats.hbOut.Add(1)
	l.sendData(wHeartbeat, p, nil, now)
}

// startHello (device) opens a session: forget the bridge's sequence numbers
// and send the Hello.
func (l *Link) startHello(now time.Time) {
	s := &l.s
	s.state = stConnecting
	s.rxHave, s.windowed, s.txWindow, s.gapNack = false, false, 1, false
	l.windowed.Store(false)
	l.failOut(fmt.Errorf("%w: saying hello again", ErrLinkDown))
	l.sendData(wHello, s.helloPay, nil, now)
}

// sendReset (bridge) asks the device for a Hello.
func (l *Link) sendReset(now time.Time) {
	fr, _ := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameReset, Seq: 0})
	if l.enqueue(wreq{b: fr}, now) {
		l.stats.resetsOut.Add(1)
	}
	l.s.nextReset = now.Add(l.o.ResetInterval)
}

func (l *Link) sendAck(seq uint16) {
	fr, _ := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameAck, Seq: seq})
	if l.enqueue(wreq{b: fr}, time.Now()) {
		l.stats.acksOut.Add(1)
	}
}

// sendHelloAck (bridge) ACKs a hello; to a device that announced a window
// (§8.6) the ACK carries ours, one byte.
func (l *Link) sendHelloAck(seq uint16, h *wire.Hello) {
	f := wire.Frame{Type: wire.FrameAck, Seq: seq}
	if h.Window > 0 && l.o.Window > 1 {
		f.Payload = []byte{byte(l.o.Window)}
	}
	fr, _ := wire.AppendFrame(nil, f)
	if l.enqueue(wreq{b: fr}, time.Now()) {
		l.stats.acksOut.Add(1)
	}
}

func (l *Link) sendNack(seq uint16, reason wire.NackReason) {
	fr, _ := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameNack, Seq: seq, Payload: []byte{byte(reason)}})
	if l.enqueue(wreq{b: fr}, time.Now()) {
		l.stats.nacksOut.Add(1)
	}
}
