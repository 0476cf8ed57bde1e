// Package link is the reliable link layer of mesibo-iot's serial protocol
// (docs/protocol.md §7–8): it carries wire envelopes over a byte stream (a
// serial port, a pty, a pipe) in COBS/CRC-16 frames (codecs/wire), makes
// each arrive once and in order, or reports that the link is down.
//
// The same code runs at both ends. The bridge runs a Link with Role Bridge on
// each serial port; a device (or the firmware simulator) runs one with Role
// Device. The rules, as docs/protocol.md §8 states them:
//
//   - Stop-and-wait: each direction has its own 16-bit sequence numbers
//     (wrapping 65535 → 0) and at most one DATA frame waiting for its ACK;
//     when both ends announce a window (§8.6), up to the smaller window,
//     received in order, with cumulative ACKs and go-back-N.
//   - A DATA frame not ACKed within AckTimeout (plus the time this frame and
//     a full-size frame from the peer take on the wire, when Baud is known)
//     is retransmitted with the same seq; after Retries retransmissions the
//     link is down. With a window the interval counts from when the frame
//     was written or from the ACK of the frame before it, whichever is
//     later. A NACK (corrupt, unspecified) retransmits at once; a NACK
//     busy after AckTimeout; both count as retransmissions. A NACK rejected
//     ends that frame (Send returns ErrRejected).
//   - Every intact DATA frame is ACKed. One with the seq of the last one
//     taken is a duplicate (its ACK was lost): ACKed again, not delivered.
//     A frame with a bad CRC and a readable header is NACKed corrupt; an
//     intact frame whose envelope does not decode is NACKed rejected; one
//     that does not fit in the delivery queue is NACKed busy. An envelope of
//     an unknown kind is ACKed and ignored. ACK, NACK and RESET frames are
//     never ACKed or retransmitted.
//   - Opening: the device sends a Hello (after a 0x00) when it starts and
//     whenever it receives a RESET; it retransmits it by the normal rules and
//     then every Heartbeat until it is ACKed. The bridge sends nothing until
//     it receives a Hello (a board that resets when the port opens may be in
//     its bootloader), except: if no Hello came within ResetInterval (2 s) of
//     opening, it sends RESET and repeats it every ResetInterval; and before
//     the link is up it answers any other DATA frame with a RESET.
//   - A Hello starts a new session on both sides: the bridge delivers it
//     whatever its seq (unless it is a retransmission of the session's own
//     Hello: same seq, same bytes), takes its seq as the last delivered, and
//     numbers its own next DATA frame 0. A new Hello while up takes the link
//     down and up again (the device restarted).
//   - While up, a side that has sent nothing for Heartbeat sends a Heartbeat
//     envelope; a side that has received no intact frame for Silence
//     declares the link down. The bridge then waits for a Hello (sending
//     RESET every ResetInterval); the device sends a new Hello.
//
// Run reads and writes the port until the port fails or its context ends;
// Send hands an envelope to the link and returns once the peer has ACKed it.
// A Link is used once: after Run returns, make a new Link for a new port.
package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// Role says which end of the link this is.
type Role uint8

// Roles.
const (
	// Bridge waits for the device's Hello before it sends anything.
	Bridge Role = iota + 1
	// Device opens the link with RESET and Hello.
	Device
)

func (r Role) String() string {
	switch r {
	case Bridge:
		return "bridge"
	case Device:
		return "device"
	}
	return "role?"
}

// Port is the byte stream under a link. Close must make a blocked Read or
// Write return (an *os.File on a pollable descriptor, a net.Conn and an
// io.Pipe end do). Run closes the port when it returns. Write is called with
// exactly one whole frame each time, from one goroutine; Read from another.
//
// If the port also has SetWriteDeadline(time.Time) error (*os.File,
// net.Conn), the link sets a deadline of WriteTimeout before each write.
type Port interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

type writeDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// Errors. Match them with errors.Is.
var (
	// ErrLinkDown: the link is not up (no Hello yet, or it went down); the
	// envelope was not sent, or not acknowledged. The error also wraps the
	// reason (ErrNoAck, ErrSilence, ErrPeerReset, ErrStopped...).
	ErrLinkDown = errors.New("link down")
	// ErrNoAck: a frame was not acknowledged after Retries retransmissions.
	ErrNoAck = errors.New("no ack from the peer")
	// ErrSilence: no intact frame was heard for Silence.
	ErrSilence = errors.New("peer silent")
	// ErrPeerReset: the peer restarted its link (a RESET, or a new Hello,
	// while up).
	ErrPeerReset = errors.New("peer restarted its link")
	// ErrWriteTimeout: the port did not take a frame within WriteTimeout
	// (the other side does not read, flow control holds the line, the
	// device hangs). Run returns it.
	ErrWriteTimeout = errors.New("write timeout")
	// ErrTooLarge: the envelope does not fit in one frame for this peer.
	ErrTooLarge = errors.New("envelope too large for the link")
	// ErrRejected: the peer NACKed the frame as invalid (reason rejected);
	// sending it again will not help.
	ErrRejected = errors.New("peer rejected the frame")
	// ErrStopped: Run has returned (the port failed or ctx ended).
	ErrStopped = errors.New("link stopped")
	// ErrNoData: the port keeps returning zero bytes without an error, as a
	// vanished device can.
	ErrNoData = errors.New("port returns no data and no error (device gone?)")
)

// Drop reasons, the keys of Stats.Drops. The first six are the frame
// decoder's (wire.DropReason.String()).
const (
	DropBadCOBS     = "bad_cobs"         // invalid COBS: garbage, torn frame
	DropBadCRC      = "bad_crc"          // CRC mismatch (NACKed when the seq is readable)
	DropTooLarge    = "too_large"        // frame over the size limit
	DropTooShort    = "too_short"        // fewer bytes than header and CRC
	DropBadVersion  = "bad_version"      // frame version is not wire.FrameVersion
	DropBadType     = "bad_type"         // unknown frame type
	DropBadEnvelope = "bad_envelope"     // intact frame, envelope does not decode (NACKed rejected)
	DropBeforeHello = "before_hello"     // bridge: DATA other than Hello before the Hello (answered with RESET)
	DropNotUp       = "not_up"           // device: DATA while the link is not up (not ACKed)
	DropBusy        = "busy"             // delivery queue full (NACKed busy)
	DropUnexpected  = "unexpected"       // an envelope this role does not take (ACKed, not delivered)
	DropUnknownKind = "unknown_kind"     // an envelope kind this version does not know (ACKed, ignored)
	DropStale       = "stale_ack"        // ACK/NACK for a frame not outstanding
	DropQueueFull   = "write_queue_full" // the port is not taking frames; frame discarded
	DropOutOfOrder  = "out_of_order"     // windowed peer: a DATA frame after a lost one (the next expected is NACKed once)
)

// DropError describes something received and dropped. OnDrop gets one.
type DropError struct {
	Reason string // one of the Drop* constants
	HasSeq bool   // Seq is meaningful (for bad_crc: read from an unverified header)
	Seq    uint16
	Err    error // detail, may be nil
}

func (e *DropError) Error() string {
	s := "link: dropped frame: " + e.Reason
	if e.HasSeq {
		s += fmt.Sprintf(" (seq %d)", e.Seq)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DropError) Unwrap() error { return e.Err }

// Options configure a Link. Zero values take the defaults shown.
type Options struct {
	Role Role // required

	AckTimeout   time.Duration // 200ms: retransmit a DATA frame not ACKed in this time
	Retries      int           // 5 retransmissions, then the link is down; negative means 0
	Heartbeat    time.Duration // 1s: send a Heartbeat after this long without sending DATA
	Silence      time.Duration // 3s: link down after this long without an intact frame
	WriteTimeout time.Duration // 1s: a frame write that takes longer fails the port
	// ResetInterval (bridge): with no Hello this long after Run starts or
	// the link goes down, send RESET, and again every ResetInterval. 2s.
	ResetInterval time.Duration

	// MaxFrame is the largest envelope (frame payload) this side sends;
	// 0 or more than wire.MaxFramePayload means wire.MaxFramePayload. On the
	// bridge, the device's Hello.MaxFrame lowers it further. Every side
	// accepts frames up to wire.MaxFramePayload.
	MaxFrame int
	// Baud is the line speed, if known: the retransmit timeout then also
	// covers the time this frame and a full-size frame from the peer take
	// on the wire (10 bits a byte). 0 ignores transmission time.
	Baud int
	// QueueLen bounds the envelopes waiting in Send (default 32) and those
	// waiting for OnEnvelope (default 64; beyond it DATA frames are NACKed
	// busy).
	QueueLen int

	// Window is how many DATA frames may be outstanding (sent, not yet
	// ACKed) in each direction when the peer takes windows too
	// (docs/protocol.md §8.6): a Device announces it in its Hello, a Bridge
	// answers with its own in the Hello's ACK, and each side then sends up
	// to the smaller of the two. 0 means DefaultWindow; 1 is stop-and-wait
	// without announcing anything (the protocol's original rules, which a
	// peer that announces nothing gets in any case). At most MaxWindow.
	Window int

	// Hello is what a Device sends to open the link (required for Device,
	// with Device set; ignored for Bridge).
	Hello *wire.Hello

	// Logf, if set, receives notable events (panics in callbacks, frames
	// discarded because the port is not taking them).
	Logf func(format string, args ...any)

	// Fault, for tests only (nil otherwise), is called with "reader" after
	// each read of the port and "writer" before each write, so that a test
	// can make those goroutines panic (the link then ends like on a port
	// error).
	Fault func(point string)

	// Callbacks run on one goroutine of the link, in order, never on the
	// goroutine that reads the port: a slow callback delays later callbacks
	// (and, past QueueLen envelopes, makes the link NACK busy) but not ACKs
	// or heartbeats. They may call Send. A panic in one is recovered and
	// logged.
	OnEnvelope func(env *wire.Envelope) // a DATA envelope other than Hello and Heartbeat
	OnDrop     func(reason error)       // a *DropError (duplicates are not drops)
	OnUp       func(h *wire.Hello)      // link up: Bridge gets the device's Hello, Device its own
	OnDown     func(reason error)       // link down (was up); reason wraps ErrNoAck, ErrSilence, ErrPeerReset, ErrStopped
}

// Defaults.
const (
	DefaultAckTimeout    = 200 * time.Millisecond
	DefaultRetries       = 5
	DefaultHeartbeat     = time.Second
	DefaultSilence       = 3 * time.Second
	DefaultWriteTimeout  = time.Second
	DefaultResetInterval = 2 * time.Second
	DefaultQueueLen      = 32
	// DefaultWindow frames in flight keep a 115200-baud line busy with
	// small frames while each ACK takes its round trip: the peer's
	// processing, the ACK's bytes and an FTDI adapter's 16 ms latency
	// timer (7 more 50-byte frames, 30 ms at 115200, cover it).
	DefaultWindow = 8
	// MaxWindow is the largest window: the ACK of a hello says it in one
	// byte, and duplicates are told from new frames within 4×MaxWindow.
	MaxWindow = 16
)

const maxWindow = MaxWindow

// Stats counts what a link did. All counters only grow.
type Stats struct {
	BytesIn, BytesOut   uint64 // bytes read from / written to the port
	FramesIn, FramesOut uint64 // intact frames decoded / frames written (any type)
	DataIn              uint64 // DATA frames taken (new, not duplicates), Hello and Heartbeat included
	DataOut             uint64 // DATA frames sent (first transmissions), Hello and Heartbeat included
	Delivered           uint64 // envelopes passed to OnEnvelope
	Sent                uint64 // Send calls that ended ACKed
	AcksIn, AcksOut     uint64
	NacksIn, NacksOut   uint64
	ResetsIn, ResetsOut uint64
	HeartbeatsIn        uint64 // heartbeats taken
	HeartbeatsOut       uint64 // heartbeats sent
	Retransmits         uint64 // DATA frames sent again (timeout or NACK)
	Duplicates          uint64 // DATA frames taken before, ACKed again, not delivered
	Ups, Downs          uint64 // link transitions
	Drops               map[string]uint64
}

// Link is one end of a serial link. Make it with New, start it with Run.
type Link struct {
	port Port
	o    Options

	sendq  chan *sendReq
	events chan event
	wq     chan wreq
	quit   chan struct{} // closed when the loop has stopped
	done   chan struct{} // closed when Run has returned
	run    atomic.Bool

	up        atomic.Bool
	windowed  atomic.Bool // the peer took a window (§8.6), for Windowed
	sendLimit atomic.Int64
	writing   atomic.Int64 // UnixNano when the current write started; 0 when idle
	downMu    sync.Mutex
	downErr   error
	peerMu    sync.Mutex
	peer      *wire.Hello

	cb    callbacks
	stats counters
	born  time.Time

	s loopState // owned by the loop (Run's goroutine)
}

// New returns a link over port. It does nothing until Run.
func New(port Port, opts Options) *Link {
	o := opts
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Silence <= 0 {
		o.Silence = DefaultSilence
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.ResetInterval <= 0 {
		o.ResetInterval = DefaultResetInterval
	}
	if o.MaxFrame <= 0 || o.MaxFrame > wire.MaxFramePayload {
		o.MaxFrame = wire.MaxFramePayload
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	o.Window = min(o.Window, MaxWindow)
	l := &Link{
		port:   port,
		o:      o,
		sendq:  make(chan *sendReq, o.QueueLen),
		events: make(chan event, 64),
		wq:     make(chan wreq, 16+2*o.Window),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		born:   time.Now(),
	}
	l.cb.init(2 * o.QueueLen)
	l.stats.drops = map[string]uint64{}
	l.sendLimit.Store(int64(o.MaxFrame))
	l.downErr = errors.New("no hello yet")
	return l
}

// Up reports whether the link is up.
func (l *Link) Up() bool { return l.up.Load() }

// Windowed reports whether the link is up with a peer that takes windows
// (docs/protocol.md §8.6): both ends then send up to the smaller window and
// receive in order.
func (l *Link) Windowed() bool { return l.windowed.Load() }

// Peer returns the Hello that brought the link up (Bridge: the device's;
// Device: its own), or nil.
func (l *Link) Peer() *wire.Hello {
	l.peerMu.Lock()
	defer l.peerMu.Unlock()
	return l.peer
}

// Done is closed when Run has returned.
func (l *Link) Done() <-chan struct{} { return l.done }

// MaxSend returns the largest envelope Send takes now.
func (l *Link) MaxSend() int { return int(l.sendLimit.Load()) }

// Stats returns a snapshot of the counters.
func (l *Link) Stats() Stats { return l.stats.snapshot() }

// Queue hands env to the link like Send but does not wait for the ACK: the
// result (what Send would return) arrives on the returned channel, which is
// buffered. Envelopes go out in the order they were queued, up to the
// window's worth at a time (§8.6), so a sender that queues several keeps
// the line busy. An error returned at once means env was not queued.
func (l *Link) Queue(ctx context.Context, env *wire.Envelope) (<-chan error, error) {
	req, err := l.queue(ctx, env)
	if err != nil {
		return nil, err
	}
	return req.res, nil
}

// Send marshals env, sends it in a DATA frame and returns once the peer has
// ACKed it. It fails at once with ErrLinkDown when the link is not up and
// with ErrTooLarge when env does not fit; later with ErrLinkDown (wrapping
// the reason) if the link goes down before the ACK, ErrRejected if the peer
// refuses the envelope, or ctx's error. A Send abandoned through ctx after
// its frame went out may still be delivered. Send is safe for concurrent
// use; envelopes go out in the order their Send calls queued them.
func (l *Link) Send(ctx context.Context, env *wire.Envelope) error {
	req, err := l.queue(ctx, env)
	if err != nil {
		return err
	}
	select {
	case err := <-req.res:
		return err
	case <-ctx.Done():
		req.cancelled.Store(true)
		return ctx.Err()
	case <-l.quit:
		select {
		case err := <-req.res:
			return err
		default:
			return fmt.Errorf("%w: %w", ErrLinkDown, ErrStopped)
		}
	}
}

func (l *Link) queue(ctx context.Context, env *wire.Envelope) (*sendReq, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-l.quit:
		return nil, fmt.Errorf("%w: %w", ErrLinkDown, ErrStopped)
	default:
	}
	if !l.up.Load() {
		return nil, l.downError()
	}
	payload, err := wire.Marshal(env)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, err
	}
	if lim := int(l.sendLimit.Load()); len(payload) > lim {
		return nil, fmt.Errorf("%w: envelope is %d bytes, the peer takes at most %d", ErrTooLarge, len(payload), lim)
	}
	req := &sendReq{payload: payload, res: make(chan error, 1)}
	select {
	case l.sendq <- req:
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.quit:
		return nil, fmt.Errorf("%w: %w", ErrLinkDown, ErrStopped)
	}
}

func (l *Link) downError() error {
	l.downMu.Lock()
	defer l.downMu.Unlock()
	return fmt.Errorf("%w: %w", ErrLinkDown, l.downErr)
}

func (l *Link) setDownErr(err error) {
	l.downMu.Lock()
	l.downErr = err
	l.downMu.Unlock()
}

func (l *Link) logf(format string, args ...any) {
	if l.o.Logf != nil {
		l.o.Logf(format, args...)
	}
}

type sendReq struct {
	payload   []byte
	res       chan error // buffered 1; the loop writes at most once
	cancelled atomic.Bool
}

// ---- stats ----

type counters struct {
	bytesIn, bytesOut, framesIn, framesOut, dataIn, dataOut, delivered, sent atomic.Uint64
	acksIn, acksOut, nacksIn, nacksOut, resetsIn, resetsOut                  atomic.Uint64
	hbIn, hbOut, retransmits, duplicates, ups, downs                         atomic.Uint64

	mu    sync.Mutex
	drops map[string]uint64
}

func (c *counters) drop(reason string) {
	c.mu.Lock()
	c.drops[reason]++
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	s := Stats{
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(),
		DataIn: c.dataIn.Load(), DataOut: c.dataOut.Load(),
		Delivered: c.delivered.Load(), Sent: c.sent.Load(),
		AcksIn: c.acksIn.Load(), AcksOut: c.acksOut.Load(),
		NacksIn: c.nacksIn.Load(), NacksOut: c.nacksOut.Load(),
		ResetsIn: c.resetsIn.Load(), ResetsOut: c.resetsOut.Load(),
		HeartbeatsIn: c.hbIn.Load(), HeartbeatsOut: c.hbOut.Load(),
		Retransmits: c.retransmits.Load(), Duplicates: c.duplicates.Load(),
		Ups: c.ups.Load(), Downs: c.downs.Load(),
		Drops: map[string]uint64{},
	}
	c.mu.Lock()
	for k, v := range c.drops {
		s.Drops[k] = v
	}
	c.mu.Unlock()
	return s
}

// DropsTotal sums s.Drops.
func (s Stats) DropsTotal() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// ---- callbacks ----

type cbKind uint8

const (
	cbEnvelope cbKind = iota + 1
	cbDrop
	cbUp
	cbDown
)

type cbItem struct {
	kind  cbKind
	env   *wire.Envelope
	hello *wire.Hello
	err   error
}

// callbacks is the queue between the loop and the deliverer goroutine.
// Envelopes are bounded (the loop NACKs busy beyond); up/down are never
// dropped; drops are skipped when the queue is long.
type callbacks struct {
	mu   sync.Mutex
	q    []cbItem
	envs int
	max  int
	sig  chan struct{}
}

func (c *callbacks) init(max int) {
	c.max = max
	c.sig = make(chan struct{}, 1)
}

func (c *callbacks) full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.envs >= c.max
}

func (c *callbacks) push(it cbItem) {
	c.mu.Lock()
	if it.kind == cbDrop && len(c.q) >= 2*c.max {
		c.mu.Unlock()
		return
	}
	c.q = append(c.q, it)
	if it.kind == cbEnvelope {
		c.envs++
	}
	c.mu.Unlock()
	select {
	case c.sig <- struct{}{}:
	default:
	}
}

func (c *callbacks) pop() (cbItem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.q) == 0 {
		return cbItem{}, false
	}
	it := c.q[0]
	c.q[0] = cbItem{}
	c.q = c.q[1:]
	if it.kind == cbEnvelope {
		c.envs--
	}
	return it, true
}

func (l *Link) deliverer(wg *sync.WaitGroup) {
	defer wg.Done()
	defer func() {
		if r := recover(); r != nil {
			l.logf("link: panic in the callback goroutine (recovered; callbacks stop): %v", r)
		}
	}()
	for {
		for {
			it, ok := l.cb.pop()
			if !ok {
				break
			}
			l.callback(it)
		}
		select {
		case <-l.cb.sig:
		case <-l.quit:
			for {
				it, ok := l.cb.pop()
				if !ok {
					return
				}
				l.callback(it)
			}
		}
	}
}

func (l *Link) callback(it cbItem) {
	defer func() {
		if r := recover(); r != nil {
			l.logf("link: panic in a callback (recovered): %v", r)
		}
	}()
	switch it.kind {
	case cbEnvelope:
		if l.o.OnEnvelope != nil {
			l.o.OnEnvelope(it.env)
		}
	case cbDrop:
		if l.o.OnDrop != nil {
			l.o.OnDrop(it.err)
		}
	case cbUp:
		if l.o.OnUp != nil {
			l.o.OnUp(it.hello)
		}
	case cbDown:
		if l.o.OnDown != nil {
			l.o.OnDown(it.err)
		}
	}
}
