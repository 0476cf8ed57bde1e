//go:build linux

package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- a pty ----

// newPTY opens a pty. The test keeps the slave open (so the master does not
// read EIO before the transport opens the slave) in raw mode (so nothing the
// device writes is echoed back to it).
//
// creack/pty calls Fd() on the master, which puts it in blocking mode: a
// Read then sits in read(2) and Close cannot interrupt it. The master is
// re-wrapped here as a non-blocking descriptor, which os.NewFile hands to
// the runtime poller (deadlines work, Close wakes a blocked Read).
func newPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m0, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	fd, err := unix.Dup(int(m0.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	m0.Close()
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "/dev/ptmx")
	rc, err := s.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var terr error
	rc.Control(func(sfd uintptr) {
		tio, err := unix.IoctlGetTermios(int(sfd), unix.TCGETS)
		if err != nil {
			terr = err
			return
		}
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cflag &^= unix.CSIZE | unix.PARENB
		tio.Cflag |= unix.CS8
		terr = unix.IoctlSetTermios(int(sfd), unix.TCSETS, tio)
	})
	if terr != nil {
		t.Fatal(terr)
	}
	return m, s
}

// pointLink makes the stable name link point at target (atomically, as
// udev replaces a /dev/serial/by-id link).
func pointLink(t testing.TB, link, target string) {
	t.Helper()
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// ---- the device side: a port wrapper that can pace, corrupt, inject, stall ----

type pacer struct {
	rate float64 // bytes per second; 0 = no pacing
	next time.Time
}

// dur is how long n bytes take at the pacer's rate.
func (p *pacer) dur(n int) time.Duration {
	return time.Duration(float64(n) / p.rate * float64(time.Second))
}

// wait sleeps until n bytes sent now (or after the previous ones) have left
// a UART at rate bytes per second.
func (p *pacer) wait(n int) {
	if p.rate == 0 {
		return
	}
	now := time.Now()
	// A UART sends the next bytes back to back when they are in its FIFO
	// (or the driver's buffer) before the line goes idle: a writer that
	// is late by a sleep's overshoot only is not an idle line.
	if p.next.Before(now.Add(-2 * time.Millisecond)) {
		p.next = now
	}
	p.next = p.next.Add(p.dur(n))
	time.Sleep(time.Until(p.next))
}

// devTxBuffer is the paced device's UART transmit buffer: Write returns
// once what it wrote is in it, and a line goroutine hands the bytes to the
// pty when the line has carried them (as firmware-sim's paced ptys do).
const devTxBuffer = 1024

type lineBytes struct {
	b  []byte
	at time.Time // the line has carried the last byte
}

// paceOut queues out on the paced line to the bridge: it starts when the
// bytes before it end, or now if the line is idle (an absolute schedule:
// a late timer delays a delivery, not the bytes after it), and returns
// once out is in the transmit buffer.
func (p *devPort) paceOut(out []byte) error {
	p.lineMu.Lock()
	if p.lineErr != nil {
		err := p.lineErr
		p.lineMu.Unlock()
		return err
	}
	if p.line == nil {
		p.line = make(chan lineBytes, 256)
		p.lineDone = make(chan struct{})
		go p.lineLoop(p.line, p.lineDone)
	}
	ps := &p.outPace
	now := time.Now()
	if ps.next.Before(now) {
		ps.next = now
	}
	ps.next = ps.next.Add(ps.dur(len(out)))
	at, room := ps.next, ps.next.Add(-ps.dur(devTxBuffer))
	line := p.line
	p.lineMu.Unlock()
	select {
	case line <- lineBytes{b: append([]byte(nil), out...), at: at}:
	case <-p.closed:
		return os.ErrClosed
	}
	if d := time.Until(room); d > 0 {
		select {
		case <-time.After(d):
		case <-p.closed:
			return os.ErrClosed
		}
	}
	return nil
}

func (p *devPort) lineLoop(line <-chan lineBytes, done chan struct{}) {
	defer close(done)
	for {
		select {
		case lb := <-line:
			if d := time.Until(lb.at); d > 0 {
				select {
				case <-time.After(d):
				case <-p.closed:
					return
				}
			}
			if _, err := p.f.Write(lb.b); err != nil {
				p.lineMu.Lock()
				p.lineErr = err
				p.lineMu.Unlock()
				return
			}
		case <-p.closed:
			return
		}
	}
}

type devPort struct {
	f      *os.File
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex
	inject     []byte                // written in front of the next frame
	corruptOut func(wire.Frame) bool // corrupt this outgoing frame (CRC)
	corruptIn  func(wire.Frame) bool // corrupt this incoming frame (CRC)
	stall      chan struct{}         // non-nil: Read and Write block until it is closed (a hung device)
	outPace    pacer                 // device → bridge wire time (guarded by lineMu)
	inPace     pacer                 // bridge → device wire time
	acc, ready []byte                // corruptIn: bytes held / ready
	buf        [4096]byte

	lineMu   sync.Mutex
	line     chan lineBytes // paced output (outPace.rate > 0): to lineLoop
	lineDone chan struct{}  // closed when lineLoop returns
	lineErr  error
}

func newDevPort(f *os.File) *devPort { return &devPort{f: f, closed: make(chan struct{})} }

func (p *devPort) set(fn func(p *devPort)) {
	p.mu.Lock()
	fn(p)
	p.mu.Unlock()
}

func corruptFrame(enc []byte) []byte {
	raw, err := wire.DecodeCOBS(nil, enc)
	if err != nil || len(raw) < 5 {
		return enc
	}
	raw[len(raw)-1] ^= 0x5a
	return wire.AppendCOBS(nil, raw)
}

func parseFrame(enc []byte) (wire.Frame, bool) {
	raw, err := wire.DecodeCOBS(nil, enc)
	if err != nil || len(raw) < 5 {
		return wire.Frame{}, false
	}
	return wire.Frame{Type: wire.FrameType(raw[0] & 0x0f), Seq: uint16(raw[1])<<8 | uint16(raw[2]), Payload: raw[3 : len(raw)-2]}, true
}

// rewrite applies fn's decision to each whole frame in b (b holds whole frames).
func rewrite(b []byte, fn func(wire.Frame) bool) []byte {
	var out []byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, b...)
			break
		}
		enc := b[:i]
		if f, ok := parseFrame(enc); ok && fn(f) {
			enc = corruptFrame(enc)
		}
		out = append(append(out, enc...), 0)
		b = b[i+1:]
	}
	return out
}

func (p *devPort) Write(b []byte) (int, error) {
	p.mu.Lock()
	inj, co, stall := p.inject, p.corruptOut, p.stall
	p.inject = nil
	p.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-p.closed:
			return 0, os.ErrClosed
		}
	}
	out := b
	if co != nil {
		out = rewrite(b, co)
	}
	if len(inj) > 0 {
		out = append(append([]byte(nil), inj...), out...)
	}
	p.lineMu.Lock()
	paced := p.outPace.rate > 0
	p.lineMu.Unlock()
	if paced {
		if err := p.paceOut(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	if _, err := p.f.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *devPort) Read(b []byte) (int, error) {
	for {
		p.mu.Lock()
		stall := p.stall
		if len(p.ready) > 0 {
			n := copy(b, p.ready)
			p.ready = p.ready[n:]
			p.mu.Unlock()
			return n, nil
		}
		p.mu.Unlock()
		if stall != nil {
			select {
			case <-stall:
				continue
			case <-p.closed:
				return 0, os.ErrClosed
			}
		}
		n, err := p.f.Read(p.buf[:])
		p.inPace.wait(n)
		if n > 0 {
			p.mu.Lock()
			if ci := p.corruptIn; ci != nil {
				// corrupt whole frames; hold a partial one until it is complete
				p.acc = append(p.acc, p.buf[:n]...)
				if i := bytes.LastIndexByte(p.acc, 0); i >= 0 {
					p.ready = append(p.ready, rewrite(p.acc[:i+1], ci)...)
					p.acc = append([]byte(nil), p.acc[i+1:]...)
				}
			} else {
				p.ready = append(p.ready, p.acc...)
				p.acc = nil
				p.ready = append(p.ready, p.buf[:n]...)
			}
			p.mu.Unlock()
		}
		if err != nil {
			return 0, err
		}
	}
}

func (p *devPort) SetWriteDeadline(t time.Time) error { return p.f.SetWriteDeadline(t) }

func (p *devPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	err := p.f.Close()
	p.lineMu.Lock()
	done := p.lineDone
	p.lineMu.Unlock()
	if done != nil {
		<-done
	}
	return err
}

// ---- a simulated device: link (Role Device) + idempotency memory ----

// memory is what survives a device's link restarts and replugs: which
// idempotency keys it has run, and the replies it gave.
type memory struct {
	mu      sync.Mutex
	runs    map[string]int
	done    map[string]*wire.Reply
	hold    chan struct{} // if set, a new command waits on it between accepted and done
	verbs   []string
	execErr error
}

func newMemory() *memory { return &memory{runs: map[string]int{}, done: map[string]*wire.Reply{}} }

func (m *memory) runsOf(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[key]
}

type device struct {
	t      testing.TB
	id     string
	port   *devPort
	slave  *os.File
	path   string // slave path
	link   *link.Link
	mem    *memory
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	runErr chan error
	boot   uint64
}

type devOpts struct {
	id   string
	boot uint64
	lo   func(*link.Options)
}

// startDevice creates a pty and runs a device link on its master.
func startDevice(t testing.TB, mem *memory, o devOpts) *device {
	t.Helper()
	m, s := newPTY(t)
	d := &device{t: t, id: o.id, port: newDevPort(m), slave: s, path: s.Name(), mem: mem, boot: o.boot,
		runErr: make(chan error, 1)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	lo := link.Options{
		Role:       link.Device,
		Hello:      &wire.Hello{Device: o.id, Firmware: "sim-1.0", Profile: "relay", ProfileVersion: "1", Boot: o.boot},
		OnEnvelope: d.onEnvelope,
	}
	if o.lo != nil {
		o.lo(&lo)
	}
	d.link = link.New(d.port, lo)
	go func() { d.runErr <- d.link.Run(d.ctx) }()
	t.Cleanup(d.unplug)
	return d
}

// unplug stops the device and closes both ends of its pty: the bridge's
// port reads EIO, as when a USB adapter is pulled.
func (d *device) unplug() {
	d.cancel()
	<-d.link.Done()
	d.slave.Close()
	d.wg.Wait()
}

func (d *device) onEnvelope(env *wire.Envelope) {
	c := env.Command
	if c == nil {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.handle(c)
	}()
}

func (d *device) reply(r *wire.Reply) {
	r.Device = d.id
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if err := d.link.Send(ctx, &wire.Envelope{Kind: wire.KindReply, Reply: r}); err != nil {
		if d.ctx.Err() == nil {
			d.t.Logf("device %s: reply %d: %v", d.id, r.ID, err)
		}
	}
}

// handle runs a command once per idempotency key; a repeat gets the stored
// reply (or nothing yet if the first run is still going).
func (d *device) handle(c *wire.Command) {
	m := d.mem
	m.mu.Lock()
	m.verbs = append(m.verbs, c.Verb)
	if prev, ok := m.done[c.IdemKey]; ok {
		m.mu.Unlock()
		r := *prev
		r.ID = c.ID
		d.reply(&r)
		return
	}
	if m.runs[c.IdemKey] > 0 { // running: it will answer
		m.mu.Unlock()
		d.reply(&wire.Reply{ID: c.ID, Outcome: wire.OutcomeAccepted})
		return
	}
	m.runs[c.IdemKey]++
	hold := m.hold
	m.mu.Unlock()
	d.reply(&wire.Reply{ID: c.ID, Outcome: wire.OutcomeAccepted})
	if hold != nil {
		// the work takes a while; unplugging the cable does not stop it
		// (the board stays powered), only the reply is lost
		select {
		case <-hold:
		case <-d.ctx.Done():
		}
	}
	done := &wire.Reply{ID: c.ID, Outcome: wire.OutcomeDone, Result: map[string]wire.Value{"relay": "on"}}
	m.mu.Lock()
	m.done[c.IdemKey] = done
	m.mu.Unlock()
	d.reply(done)
}

func (d *device) telemetry(seq uint64, values map[string]wire.Value) error {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	return d.link.Send(ctx, &wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{Device: d.id, Seq: seq, Values: values}})
}

// ---- the sink ----

type presenceEv struct {
	dev string
	p   transports.Presence
}

type testSink struct {
	mu        sync.Mutex
	replies   map[uint64][]*wire.Reply
	telemetry map[string][]*wire.Telemetry
	presence  []presenceEv
	dropped   []string
	links     []bool
	notify    chan struct{}
}

func newSink() *testSink {
	return &testSink{replies: map[uint64][]*wire.Reply{}, telemetry: map[string][]*wire.Telemetry{},
		notify: make(chan struct{}, 1)}
}

func (s *testSink) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *testSink) Reply(dev string, r *wire.Reply) {
	s.mu.Lock()
	s.replies[r.ID] = append(s.replies[r.ID], r)
	s.mu.Unlock()
	s.poke()
}

func (s *testSink) Telemetry(dev string, t *wire.Telemetry) {
	s.mu.Lock()
	s.telemetry[dev] = append(s.telemetry[dev], t)
	s.mu.Unlock()
	s.poke()
}

func (s *testSink) Presence(dev string, p transports.Presence) {
	s.mu.Lock()
	s.presence = append(s.presence, presenceEv{dev, p})
	s.mu.Unlock()
	s.poke()
}

func (s *testSink) Dropped(dev string, reason error) {
	s.mu.Lock()
	s.dropped = append(s.dropped, dev+": "+reason.Error())
	s.mu.Unlock()
	s.poke()
}

func (s *testSink) Link(name string, up bool, detail string) {
	s.mu.Lock()
	s.links = append(s.links, up)
	s.mu.Unlock()
}

// onlineCount counts dev's online reports.
func (s *testSink) presences(dev string) []transports.Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []transports.Presence
	for _, e := range s.presence {
		if e.dev == dev {
			out = append(out, e.p)
		}
	}
	return out
}

func (s *testSink) onlineCount(dev string) int {
	n := 0
	for _, p := range s.presences(dev) {
		if p.Online {
			n++
		}
	}
	return n
}

func (s *testSink) outcome(id uint64) (wire.Outcome, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.replies[id]
	if len(rs) == 0 {
		return 0, 0
	}
	return rs[len(rs)-1].Outcome, len(rs)
}

func (s *testSink) hasOutcome(id uint64, o wire.Outcome) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.replies[id] {
		if r.Outcome == o {
			return true
		}
	}
	return false
}

func (s *testSink) droppedMatching(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.dropped {
		if strings.Contains(d, sub) {
			n++
		}
	}
	return n
}

// ---- the transport ----

// testOptions: production timeouts except faster reconnects.
func testOptions(t testing.TB) Options {
	o := DefaultOptions()
	o.ReconnectMin = 20 * time.Millisecond
	o.ReconnectMax = 200 * time.Millisecond
	o.Logf = func(l LogLevel, msg string) {
		if l <= LogInfo && testing.Verbose() {
			t.Logf("[%d] %s", l, msg)
		}
	}
	return o
}

func serialEP(id, path string) transports.Endpoint {
	return transports.Endpoint{DeviceID: id, Serial: &transports.SerialPort{Path: path, Baud: 115200, DataBits: 8, Parity: "none", StopBits: "1"}}
}

func startTransport(t testing.TB, o Options, eps ...transports.Endpoint) (*Transport, *testSink) {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}
	sink := newSink()
	if err := tr.Start(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, sink
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var cmdSeq atomic.Uint64

func newCmd(verb string) *wire.Command {
	id := cmdSeq.Add(1)
	return &wire.Command{ID: id, Verb: verb, IdemKey: fmt.Sprintf("alice/%d", id)}
}

func sendCmd(t testing.TB, tr *Transport, dev string, c *wire.Command) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tr.Send(ctx, dev, c)
}

// roundTrip sends c and waits for its terminal reply.
func roundTrip(t testing.TB, tr *Transport, sink *testSink, dev string, c *wire.Command) time.Duration {
	t.Helper()
	start := time.Now()
	if err := sendCmd(t, tr, dev, c); err != nil {
		t.Fatalf("send %s to %s: %v", c.Verb, dev, err)
	}
	waitFor(t, 10*time.Second, "done reply", func() bool { return sink.hasOutcome(c.ID, wire.OutcomeDone) })
	return time.Since(start)
}

func isOffline(err error) bool { return errors.Is(err, transports.ErrOffline) }

func stableName(t testing.TB, name string) string {
	return filepath.Join(t.TempDir(), name)
}
