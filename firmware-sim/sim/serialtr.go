package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

// ptyPair is one pty: the master the device talks on, and the slave the
// bridge opens (through the stable symlink). The simulator keeps the slave
// open too (set to raw mode, never read), so the bridge closing and
// reopening the port does not hang up the master.
//
// With a baud rate the pty is paced like a serial line in both directions
// (10 bits a byte, 8N1), never faster:
//
//   - Device → bridge: the device's writes go into a UART transmit buffer
//     (txBuffer bytes, as an MCU's interrupt-driven UART driver has) and a
//     write returns once its last byte is in it, as on the device. The line
//     goroutine (txLoop) hands each chunk to the master when the line would
//     have carried its last byte. The schedule is absolute: a byte starts
//     when the one before it ends, or when it was written if the line was
//     idle by then; a timer that fires late delays a delivery, never the
//     bytes after it. So the line runs back to back while the device keeps
//     its buffer non-empty, whatever the host's timer and scheduling
//     latency.
//   - Bridge → device: the reader stamps each read with its arrival time and
//     rxLoop hands it to the device when the line would have carried it,
//     on the same kind of schedule.
type ptyPair struct {
	master *os.File // pollable: Close unblocks Read, deadlines work
	slave  *os.File
	path   string
	baud   int

	wmu     sync.Mutex
	cur     *sessionPort // guarded by wmu
	tx      txLine       // the line to the bridge (paced)
	rx      chan rxChunk // reader → rxLoop (paced)
	inFree  time.Time    // rxLoop only: when the line from the bridge has carried what was read
	dead    chan struct{}
	closing chan struct{} // closed by close: stops a paced wait
	once    sync.Once
}

// txBuffer is the simulated device's UART transmit buffer: a write returns
// once what it wrote fits in it (Arduino's HardwareSerial has 64 bytes;
// ESP-IDF's driver takes what the firmware gives it, often 1 or 2 KiB).
// One full-size frame: the line keeps running while the device's link
// loop gets the next frame ready, and a stall of the simulator's
// goroutines shorter than the buffer's line time (89 ms at 115200) does
// not idle the line.
const txBuffer = 1024

// maxUndelivered bounds the bytes written and not yet handed to the master
// (which takes them at once unless the bridge's side of the pty is full).
const maxUndelivered = 16 << 10

// lineChunkTime bounds the line time of one delivery to the other end: a
// long frame arrives in pieces as the line carries it, not all at its end.
const lineChunkTime = 10 * time.Millisecond

// lineStall: a master write that takes this long (the bridge's side of the
// pty is full: nobody reads it) loses its bytes, as a UART's bytes are lost
// when nobody listens. The device's writes block (and time out) only once
// maxUndelivered bytes wait.
const lineStall = 2 * time.Second

// txLine is the device's side of the line to the bridge: bytes written and
// not yet handed to the master, each chunk with the time the line has
// carried its last byte.
type txLine struct {
	mu       sync.Mutex
	q        []lineChunk
	pending  int           // bytes in q and being handed over
	free     time.Time     // when the line has carried everything in q
	gen      uint64        // bumped by reset (a new session: the buffer is emptied)
	err      error         // the master failed: every write fails
	kick     chan struct{} // cap 1: q got bytes
	progress chan struct{} // closed (and replaced) when bytes leave the buffer
}

type lineChunk struct {
	b  []byte
	at time.Time // the line has carried the chunk's last byte
}

type rxChunk struct {
	b  []byte
	at time.Time // read from the master (written by the bridge)
}

func openPty(baud int) (*ptyPair, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	// pty.Open leaves the master in blocking mode, where Close does not
	// interrupt a Read. A non-blocking duplicate goes through the poller.
	fd, err := unix.Dup(int(m.Fd()))
	if err != nil {
		m.Close()
		s.Close()
		return nil, fmt.Errorf("dup pty master: %w", err)
	}
	m.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		s.Close()
		return nil, fmt.Errorf("pty master non-blocking: %w", err)
	}
	unix.CloseOnExec(fd)
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(s); err != nil {
		master.Close()
		s.Close()
		return nil, fmt.Errorf("pty raw mode: %w", err)
	}
	p := &ptyPair{master: master, slave: s, path: s.Name(), baud: baud, dead: make(chan struct{}), closing: make(chan struct{}),
		rx: make(chan rxChunk, 64)}
	p.tx.kick = make(chan struct{}, 1)
	p.tx.progress = make(chan struct{})
	return p, nil
}

// makeRaw sets the slave like cfmakeraw: no echo, no line editing, no
// translation, 8 bits.
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// flushInput discards what the device wrote that the bridge has not read
// (a stale backlog from before the bridge opened the port).
func (p *ptyPair) flushInput() {
	_ = unix.IoctlSetInt(int(p.slave.Fd()), unix.TCFLSH, unix.TCIFLUSH)
}

func (p *ptyPair) close() {
	p.once.Do(func() {
		close(p.closing)
		_ = p.master.Close()
		_ = p.slave.Close()
	})
}

// lineTime is how long n bytes take on the line (10 bits a byte), rounded
// up: the schedule never runs ahead of the line.
func (p *ptyPair) lineTime(n int) time.Duration {
	b := time.Duration(p.baud)
	return (time.Duration(n)*10*time.Second + b - 1) / b
}

// chunkBytes is the most bytes delivered at once (lineChunkTime's worth).
func (p *ptyPair) chunkBytes() int {
	return max(1, int(int64(p.baud)/10*int64(lineChunkTime)/int64(time.Second)))
}

// schedule splits b into chunks that follow each other on a line that is
// free from free on (idle lines start at now) and calls f with each chunk
// and the time the line has carried it; it returns when the line is free
// again.
func (p *ptyPair) schedule(free, now time.Time, b []byte, f func(c []byte, at time.Time)) time.Time {
	at := free
	if at.Before(now) {
		at = now // the line was idle: the first byte starts now
	}
	chunk := p.chunkBytes()
	for i := 0; i < len(b); i += chunk {
		c := b[i:min(i+chunk, len(b))]
		at = at.Add(p.lineTime(len(c)))
		f(c, at)
	}
	return at
}

// waitUntil sleeps until t; false if stop, the pty's end or its close came
// first.
func (p *ptyPair) waitUntil(t time.Time, stop <-chan struct{}) (bool, error) {
	d := time.Until(t)
	if d <= 0 {
		return true, nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true, nil
	case <-stop:
		return false, io.ErrClosedPipe
	case <-p.dead:
		return false, os.ErrClosed
	case <-p.closing:
		return false, os.ErrClosed
	}
}

// reader hands what the bridge writes to the current session; without one
// the bytes are lost (the device is not listening). With a baud rate it
// stamps each read and rxLoop paces it.
func (p *ptyPair) reader() {
	defer close(p.dead)
	buf := make([]byte, 4096)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if p.baud > 0 {
				select {
				case p.rx <- rxChunk{b: chunk, at: time.Now()}:
				case <-p.closing:
					return
				}
			} else {
				p.handOver(chunk)
			}
		}
		if err != nil {
			if errors.Is(err, syscall.EIO) {
				// No slave open at all (cannot happen while we hold ours);
				// do not spin. A closed master ends the loop at the next Read.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
	}
}

// handOver gives bytes from the bridge to the current session, if any.
func (p *ptyPair) handOver(b []byte) {
	p.wmu.Lock()
	sp := p.cur
	p.wmu.Unlock()
	if sp != nil {
		select {
		case sp.in <- b:
		case <-sp.closed:
		}
	}
}

// rxLoop (with a baud rate) hands what the bridge wrote to the device when
// the line would have carried it: from when it was read, or back to back
// after the bytes before it.
func (p *ptyPair) rxLoop() {
	for {
		var c rxChunk
		select {
		case c = <-p.rx:
		case <-p.closing:
			return
		case <-p.dead:
			return
		}
		ok := true
		p.inFree = p.schedule(p.inFree, c.at, c.b, func(b []byte, at time.Time) {
			if ok {
				if ok, _ = p.waitUntil(at, nil); ok {
					p.handOver(b)
				}
			}
		})
		if !ok {
			return
		}
	}
}

// txLoop (with a baud rate) is the line to the bridge: it hands each chunk
// to the master when the line has carried it, every chunk that is due at
// once when its timer fired late.
func (p *ptyPair) txLoop() {
	t := &p.tx
	var out []byte
	for {
		t.mu.Lock()
		if len(t.q) == 0 {
			t.mu.Unlock()
			select {
			case <-t.kick:
				continue
			case <-p.closing:
				return
			}
		}
		at := t.q[0].at
		t.mu.Unlock()
		if d := time.Until(at); d > 0 {
			tm := time.NewTimer(d)
			select {
			case <-tm.C:
			case <-t.kick: // more bytes, or a reset: look again
				tm.Stop()
				continue
			case <-p.dead:
				tm.Stop()
				return
			case <-p.closing:
				tm.Stop()
				return
			}
		}
		t.mu.Lock()
		now := time.Now()
		out = out[:0]
		n := 0
		for n < len(t.q) && !t.q[n].at.After(now) {
			out = append(out, t.q[n].b...)
			n++
		}
		clear(t.q[:n])
		t.q = t.q[n:]
		gen := t.gen
		t.mu.Unlock()
		if len(out) == 0 {
			continue // reset meanwhile
		}
		_ = p.master.SetWriteDeadline(time.Now().Add(lineStall))
		_, err := p.master.Write(out)
		t.mu.Lock()
		if t.gen == gen {
			t.pending -= len(out)
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && t.err == nil {
			t.err = fmt.Errorf("pty %s: %w", p.path, err)
			t.q, t.pending = nil, 0
		}
		close(t.progress)
		t.progress = make(chan struct{})
		failed := t.err != nil
		t.mu.Unlock()
		if failed {
			return
		}
	}
}

// resetLine empties the device's transmit buffer (a new link session: the
// device restarted its UART); bytes already on the line still arrive.
func (p *ptyPair) resetLine() {
	t := &p.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	clear(t.q)
	t.q, t.pending = nil, 0
	if now := time.Now(); t.free.After(now) {
		// what was handed over was due by now; nothing else goes out
		t.free = now
	}
	close(t.progress)
	t.progress = make(chan struct{})
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// write writes b to the master, paced to baud/10 bytes per second: into
// the device's transmit buffer, returning once all of b is in it.
func (p *ptyPair) write(b []byte, deadline time.Time, stop <-chan struct{}) (int, error) {
	if deadline.IsZero() {
		deadline = time.Now().Add(2 * time.Second)
	}
	if p.baud <= 0 {
		_ = p.master.SetWriteDeadline(deadline)
		return p.master.Write(b)
	}
	t := &p.tx
	t.mu.Lock()
	if t.err != nil {
		err := t.err
		t.mu.Unlock()
		return 0, err
	}
	t.free = p.schedule(t.free, time.Now(), b, func(c []byte, at time.Time) {
		t.q = append(t.q, lineChunk{b: append([]byte(nil), c...), at: at})
	})
	t.pending += len(b)
	gen := t.gen
	// Like a UART driver's write, return once the last byte is in the
	// transmit buffer: when the line, by its schedule, has at most
	// txBuffer bytes left to carry. The schedule, not the line
	// goroutine's progress, says what is left: a late timer there delays
	// deliveries, not the device. (maxUndelivered bounds the bytes the
	// line goroutine has not handed over, when the master is not taking
	// them.)
	room := t.free.Add(-p.lineTime(txBuffer))
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
	for {
		t.mu.Lock()
		if t.err != nil {
			err := t.err
			t.mu.Unlock()
			return 0, err
		}
		now := time.Now()
		stuck := t.pending > maxUndelivered
		if t.gen != gen || !stuck && !now.Before(room) {
			t.mu.Unlock()
			return len(b), nil
		}
		prog := t.progress
		t.mu.Unlock()
		if !now.Before(deadline) {
			return 0, fmt.Errorf("pty %s: the line did not take %d bytes in time: %w", p.path, len(b), os.ErrDeadlineExceeded)
		}
		wake := deadline
		if !stuck && room.Before(wake) {
			wake = room
		}
		tm := time.NewTimer(time.Until(wake))
		select {
		case <-tm.C:
		case <-prog:
		case <-stop:
			tm.Stop()
			return 0, io.ErrClosedPipe
		case <-p.dead:
			tm.Stop()
			return 0, os.ErrClosed
		case <-p.closing:
			tm.Stop()
			return 0, os.ErrClosed
		}
		tm.Stop()
	}
}

// writeRaw writes injected bytes between the link's frames.
func (p *ptyPair) writeRaw(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.write(b, time.Time{}, nil)
	return err
}

// sessionPort is the link.Port of one link session on a pty. Closing it
// ends the session without closing the pty.
type sessionPort struct {
	p       *ptyPair
	in      chan []byte
	pending []byte
	closed  chan struct{}
	once    sync.Once

	dlmu     sync.Mutex
	deadline time.Time
}

func (p *ptyPair) newSession() *sessionPort {
	sp := &sessionPort{p: p, in: make(chan []byte, 16), closed: make(chan struct{})}
	p.wmu.Lock()
	p.cur = sp
	p.wmu.Unlock()
	return sp
}

func (sp *sessionPort) Read(b []byte) (int, error) {
	if len(sp.pending) == 0 {
		select {
		case c := <-sp.in:
			sp.pending = c
		case <-sp.closed:
			return 0, io.EOF
		case <-sp.p.dead:
			return 0, fmt.Errorf("pty %s: %w", sp.p.path, syscall.EIO)
		}
	}
	n := copy(b, sp.pending)
	sp.pending = sp.pending[n:]
	return n, nil
}

func (sp *sessionPort) Write(b []byte) (int, error) {
	select {
	case <-sp.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	sp.dlmu.Lock()
	dl := sp.deadline
	sp.dlmu.Unlock()
	sp.p.wmu.Lock()
	defer sp.p.wmu.Unlock()
	return sp.p.write(b, dl, sp.closed)
}

// SetWriteDeadline is applied to each Write (the link sets it before each).
func (sp *sessionPort) SetWriteDeadline(t time.Time) error {
	sp.dlmu.Lock()
	sp.deadline = t
	sp.dlmu.Unlock()
	return nil
}

func (sp *sessionPort) Close() error {
	sp.once.Do(func() {
		close(sp.closed)
		sp.p.wmu.Lock()
		if sp.p.cur == sp {
			sp.p.cur = nil
		}
		sp.p.wmu.Unlock()
	})
	return nil
}

// serialTr is a serial device: a pty with a stable symlink, and the link
// layer with the Device role on the master.
type serialTr struct {
	d        *Device
	s        *Sim
	linkPath string
	kick     chan struct{}

	mu         sync.Mutex
	pty        *ptyPair
	plugged    bool
	want       bool
	holdUntil  time.Time
	lnk        *link.Link
	cancelSess context.CancelFunc
	banner     bool // print the boot banner before the next hello
	plugs      uint64

	cur      atomic.Pointer[link.Link] // the session's link, for malformed
	envDataN atomic.Uint64             // link DataOut+1 at the last envelope injection (0: none)
}

// malformed picks the bytes of a malformed injection: on a stop-and-wait
// link an invalid envelope in a seq-0 DATA frame unless the last injection
// was one and the device has sent no DATA frame since (the bridge would
// take it as a duplicate); on a windowed link (§8.6) any kind, with a seq
// 32 ahead of the device's next, which the bridge drops as out of order.
func (t *serialTr) malformed(rng *rand.Rand) (string, []byte) {
	var out uint64
	l := t.cur.Load()
	if l != nil {
		out = l.Stats().DataOut + 1
	}
	if l != nil && l.Windowed() {
		return malformedSerial(rng, true, uint16(out+32))
	}
	envelope := out == 0 || t.envDataN.Load() != out
	name, b := malformedSerial(rng, envelope, 0)
	if strings.HasPrefix(name, "frame:") {
		t.envDataN.Store(out)
	}
	return name, b
}

func newSerialTr(d *Device) *serialTr {
	return &serialTr{d: d, s: d.s, linkPath: filepath.Join(d.s.sc.PtyDir, d.spec.Link),
		kick: make(chan struct{}, 1), want: true, banner: true}
}

func (t *serialTr) where() (bool, string, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := ""
	if t.pty != nil {
		p = t.pty.path
	}
	return t.plugged, t.linkPath, p
}

func (t *serialTr) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// start plugs the device in (synchronously, so that the pty path is known
// when Start returns) and starts the session supervisor.
func (t *serialTr) start(ctx context.Context) error {
	if err := t.plug(); err != nil {
		return err
	}
	t.s.goSafe(t.d.spec.ID+" serial", func() { t.run(ctx) })
	return nil
}

// plug creates a new pty and points the symlink at it.
func (t *serialTr) plug() error {
	p, err := openPty(t.d.spec.Baud)
	if err != nil {
		return fmt.Errorf("%s: %w", t.d.spec.ID, err)
	}
	return t.plugPty(p)
}

// plugPty points the symlink at p and makes it the device's port.
func (t *serialTr) plugPty(p *ptyPair) error {
	if err := repoint(t.linkPath, p.path); err != nil {
		p.close()
		return fmt.Errorf("%s: %w", t.d.spec.ID, err)
	}
	t.mu.Lock()
	if t.s.isClosed() {
		t.mu.Unlock()
		p.close()
		_ = removeLinkIf(t.linkPath, p.path)
		return errClosed
	}
	t.pty = p
	t.plugged = true
	t.plugs++
	t.holdUntil = time.Now().Add(DefaultBootDelay)
	t.mu.Unlock()
	t.s.goSafe(t.d.spec.ID+" pty reader", p.reader)
	if p.baud > 0 {
		t.s.goSafe(t.d.spec.ID+" pty line out", p.txLoop)
		t.s.goSafe(t.d.spec.ID+" pty line in", p.rxLoop)
	}
	t.s.logf("%s serial port %s -> %s", t.d.spec.ID, t.linkPath, p.path)
	t.poke()
	return nil
}

// repoint makes link a symlink to target atomically (symlink to a
// temporary name, then rename over link).
func repoint(linkPath, target string) error {
	if fi, err := os.Lstat(linkPath); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a symlink; not replacing it", linkPath)
	}
	tmp := filepath.Join(filepath.Dir(linkPath), "."+filepath.Base(linkPath)+".tmp"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, linkPath); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// removeLinkIf removes link if it still points to target.
func removeLinkIf(linkPath, target string) error {
	if cur, err := os.Readlink(linkPath); err == nil && cur == target {
		return os.Remove(linkPath)
	}
	return nil
}

func (t *serialTr) unplug() error {
	t.mu.Lock()
	if !t.plugged {
		t.mu.Unlock()
		return fmt.Errorf("%s is not plugged in", t.d.spec.ID)
	}
	p := t.pty
	t.pty, t.plugged = nil, false
	if t.cancelSess != nil {
		t.cancelSess()
	}
	t.mu.Unlock()
	p.close() // the bridge's reads now fail with EIO
	_ = removeLinkIf(t.linkPath, p.path)
	t.d.setOnline(false)
	t.s.logf("%s unplugged (%s closed, %s removed)", t.d.spec.ID, p.path, t.linkPath)
	if t.d.spec.UnplugPowersOff {
		t.d.mu.Lock()
		t.d.powerOffLocked()
		t.d.mu.Unlock()
	}
	return nil
}

func (t *serialTr) replug() error {
	if t.s.isClosed() {
		return errClosed
	}
	// The new pty is opened before the old one is closed, so that it gets
	// another /dev/pts number (after a separate Unplug the number may be
	// reused, as a real ttyUSB0 would be).
	p, err := openPty(t.d.spec.Baud)
	if err != nil {
		return fmt.Errorf("%s: %w", t.d.spec.ID, err)
	}
	t.mu.Lock()
	plugged := t.plugged
	t.mu.Unlock()
	if plugged {
		if err := t.unplug(); err != nil {
			p.close()
			return err
		}
	}
	if t.d.spec.UnplugPowersOff {
		t.d.mu.Lock()
		t.d.powerOffLocked()
		t.d.powerOnLocked()
		t.d.mu.Unlock()
		t.mu.Lock()
		t.banner = true
		t.mu.Unlock()
	}
	return t.plugPty(p)
}

func (t *serialTr) goOffline() {
	t.mu.Lock()
	t.want = false
	if t.cancelSess != nil {
		t.cancelSess()
	}
	t.mu.Unlock()
	t.poke()
}

func (t *serialTr) goOnline() {
	t.mu.Lock()
	t.want = true
	t.mu.Unlock()
	t.poke()
}

func (t *serialTr) reboot() {
	t.mu.Lock()
	t.holdUntil = time.Now().Add(DefaultBootDelay)
	t.banner = true
	if t.cancelSess != nil {
		t.cancelSess()
	}
	t.mu.Unlock()
	t.poke()
}

func (t *serialTr) close() {
	t.mu.Lock()
	p := t.pty
	t.pty, t.plugged = nil, false
	if t.cancelSess != nil {
		t.cancelSess()
	}
	t.mu.Unlock()
	if p != nil {
		p.close()
		_ = removeLinkIf(t.linkPath, p.path)
	}
}

func (t *serialTr) sleep(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-t.kick:
	case <-tm.C:
	}
}

// run starts a link session whenever the device is plugged in and wants to
// be online, after its boot delay.
func (t *serialTr) run(ctx context.Context) {
	for ctx.Err() == nil {
		t.mu.Lock()
		ready := t.plugged && t.want && t.pty != nil
		hold := time.Until(t.holdUntil)
		t.mu.Unlock()
		if !ready {
			t.sleep(ctx, time.Hour)
			continue
		}
		if hold > 0 {
			t.sleep(ctx, hold)
			continue
		}
		err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			t.s.logf("%s serial link: %v", t.d.spec.ID, err)
			t.sleep(ctx, 200*time.Millisecond)
		}
	}
}

func (t *serialTr) session(ctx context.Context) error {
	d := t.d
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t.mu.Lock()
	p := t.pty
	if p == nil || !t.plugged || !t.want {
		t.mu.Unlock()
		return nil
	}
	t.cancelSess = cancel
	banner := t.banner
	t.banner = false
	t.mu.Unlock()
	banner = banner && d.Faults().BootBanner // d.mu is never taken under t.mu
	defer func() {
		t.mu.Lock()
		t.lnk, t.cancelSess = nil, nil
		t.mu.Unlock()
		d.setOnline(false)
	}()

	port := p.newSession()
	p.resetLine()
	p.flushInput()
	if banner {
		_ = p.writeRaw(bootBanner(d.spec.ID, d.Boot()))
	}
	_ = p.writeRaw([]byte{0}) // end any partial frame in the bridge's buffer (§7.2)

	wt := link.DefaultWriteTimeout
	if b := d.spec.Baud; b > 0 {
		wt = max(wt, time.Duration(2*wire.MaxFrameEncoded*10)*time.Second/time.Duration(b))
	}
	l := link.New(port, link.Options{
		Role:         link.Device,
		Hello:        d.hello(),
		Baud:         d.spec.Baud,
		WriteTimeout: wt,
		Logf:         func(f string, a ...any) { t.s.logf(d.spec.ID+" "+f, a...) },
		OnEnvelope:   t.onEnvelope,
		OnUp:         func(*wire.Hello) { d.setOnline(true) },
		OnDown: func(reason error) {
			d.setOnline(false)
			t.s.logf("%s link down: %v", d.spec.ID, reason)
		},
		OnDrop: func(reason error) {
			var de *link.DropError
			if errors.As(reason, &de) && (de.Reason == link.DropStale || de.Reason == link.DropNotUp) {
				return
			}
			d.badInput("%v", reason)
		},
	})
	t.mu.Lock()
	t.lnk = l
	t.mu.Unlock()
	t.cur.Store(l)
	t.envDataN.Store(0)
	defer t.cur.CompareAndSwap(l, nil)
	err := l.Run(sctx)
	if sctx.Err() != nil {
		return nil // stopped on purpose (offline, reboot, unplug, Close)
	}
	return err
}

// LinkStats returns the counters of a serial device's current link session
// (what the device wrote and read, frames, retransmissions); false for an
// MQTT device or when no session runs.
func (d *Device) LinkStats() (link.Stats, bool) {
	t, ok := d.tr.(*serialTr)
	if !ok {
		return link.Stats{}, false
	}
	l := t.cur.Load()
	if l == nil {
		return link.Stats{}, false
	}
	return l.Stats(), true
}

func (t *serialTr) onEnvelope(env *wire.Envelope) {
	if env.Kind != wire.KindCommand {
		t.d.badInput("%s envelope from the bridge", env.Kind)
		return
	}
	if dev := env.Command.Device; dev != "" && dev != t.d.spec.ID {
		t.d.badInput("command #%d names device %q", env.Command.ID, dev)
		return
	}
	t.d.onCommand(env.Command)
}

func (t *serialTr) deliver(ctx context.Context, m outMsg) error {
	t.mu.Lock()
	p, l := t.pty, t.lnk
	t.mu.Unlock()
	if m.raw != nil {
		if p == nil {
			return errOffline
		}
		return p.writeRaw(m.raw)
	}
	if l == nil || !l.Up() {
		return errOffline
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if m.what == "telemetry" {
		// telemetry does not wait for its ACK: the link keeps a window of
		// frames on the line (docs/protocol.md §8.6) when the bridge takes
		// one, so a device streaming telemetry uses the whole line
		_, err := l.Queue(sctx, m.env)
		return err
	}
	return l.Send(sctx, m.env)
}
