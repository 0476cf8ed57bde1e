package link_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast returns options for tests over in-memory pipes. The machine running
// the tests may stall a goroutine for a second or more (measured: a 50 ms
// sleep took 1.5 s under a parallel fuzzer), so only the timeout a test is
// about is short; the others are generous.
func fast(role link.Role) link.Options {
	return link.Options{
		Role:         role,
		AckTimeout:   time.Second,
		Retries:      3,
		Heartbeat:    time.Second,
		Silence:      10 * time.Second,
		WriteTimeout: 300 * time.Millisecond,
	}
}

func testHello() *wire.Hello {
	return &wire.Hello{Device: "dev-1", Firmware: "1.0.0", Profile: "relay", Boot: 7}
}

// recorder collects a link's callbacks.
type recorder struct {
	mu    sync.Mutex
	envs  []*wire.Envelope
	drops []error
	ups   []*wire.Hello
	downs []error
	block chan struct{} // if set, OnEnvelope waits on it
}

func (r *recorder) opts(o link.Options) link.Options {
	o.OnEnvelope = func(e *wire.Envelope) {
		if r.block != nil {
			<-r.block
		}
		r.mu.Lock()
		r.envs = append(r.envs, e)
		r.mu.Unlock()
	}
	o.OnDrop = func(err error) { r.mu.Lock(); r.drops = append(r.drops, err); r.mu.Unlock() }
	o.OnUp = func(h *wire.Hello) { r.mu.Lock(); r.ups = append(r.ups, h); r.mu.Unlock() }
	o.OnDown = func(err error) { r.mu.Lock(); r.downs = append(r.downs, err); r.mu.Unlock() }
	return o
}

func (r *recorder) counts() (envs, drops, ups, downs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.envs), len(r.drops), len(r.ups), len(r.downs)
}

func (r *recorder) lastDown() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.downs) == 0 {
		return nil
	}
	return r.downs[len(r.downs)-1]
}

// run starts l.Run and stops it at cleanup; the returned channel gets Run's error.
func run(t *testing.T, l *link.Link) (<-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
	return ch, cancel
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func telemetry(n uint64) *wire.Envelope {
	return &wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{Device: "dev-1", Seq: n,
		Values: map[string]wire.Value{"temp": 21.5, "n": int64(n)}}}
}

func command(id uint64) *wire.Envelope {
	return &wire.Envelope{Kind: wire.KindCommand, Command: &wire.Command{ID: id, Device: "dev-1", Verb: "on",
		IdemKey: "alice/" + string(rune('a'+id%26))}}
}

func send(t *testing.T, l *link.Link, env *wire.Envelope) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.Send(ctx, env)
}

// ---- tap: a man in the middle that can drop, corrupt or blackhole frames ----

type action int

const (
	pass action = iota
	drop
	corrupt
)

type dir string

const (
	b2d dir = "bridge→device"
	d2b dir = "device→bridge"
)

type tap struct {
	mu     sync.Mutex
	filter func(d dir, f wire.Frame) action
	hole   map[dir]bool
}

func (tp *tap) setFilter(f func(d dir, fr wire.Frame) action) {
	tp.mu.Lock()
	tp.filter = f
	tp.mu.Unlock()
}

func (tp *tap) blackhole(d dir, on bool) {
	tp.mu.Lock()
	tp.hole[d] = on
	tp.mu.Unlock()
}

// newTap returns the bridge's and the device's ends of a tapped pipe.
func newTap(t *testing.T) (bridgeEnd, deviceEnd net.Conn, tp *tap) {
	b1, b2 := net.Pipe()
	d1, d2 := net.Pipe()
	tp = &tap{hole: map[dir]bool{}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); tp.forward(b2d, b2, d2) }()
	go func() { defer wg.Done(); tp.forward(d2b, d2, b2) }()
	t.Cleanup(func() {
		for _, c := range []net.Conn{b1, b2, d1, d2} {
			c.Close()
		}
		wg.Wait()
	})
	return b1, d1, tp
}

func (tp *tap) forward(d dir, src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 4096)
	var acc []byte
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		acc = append(acc, buf[:n]...)
		for {
			i := bytes.IndexByte(acc, 0)
			if i < 0 {
				break
			}
			enc := append([]byte(nil), acc[:i]...)
			acc = acc[i+1:]
			out := append(enc, 0)
			tp.mu.Lock()
			hole, filter := tp.hole[d], tp.filter
			tp.mu.Unlock()
			if hole {
				continue
			}
			if raw, err := wire.DecodeCOBS(nil, enc); err == nil && len(raw) >= 5 && filter != nil {
				f := wire.Frame{Type: wire.FrameType(raw[0] & 0x0f), Seq: uint16(raw[1])<<8 | uint16(raw[2]), Payload: raw[3 : len(raw)-2]}
				switch filter(d, f) {
				case drop:
					continue
				case corrupt:
					raw[len(raw)-1] ^= 0x5a // CRC no longer matches; header still readable
					out = append(wire.AppendCOBS(nil, raw), 0)
				}
			}
			if _, err := dst.Write(out); err != nil {
				return
			}
		}
	}
}

// ---- raw: a peer that speaks frames by hand ----

type raw struct {
	t      *testing.T
	c      net.Conn
	frames chan wire.Frame
	wg     sync.WaitGroup
}

func newRaw(t *testing.T, c net.Conn) *raw {
	r := &raw{t: t, c: c, frames: make(chan wire.Frame, 1024)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		dec := wire.NewFrameDecoder(wire.FrameDecoderOptions{})
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			dec.Feed(buf[:n], func(f wire.Frame) {
				f.Payload = append([]byte(nil), f.Payload...)
				select {
				case r.frames <- f:
				default:
				}
			}, nil)
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); r.wg.Wait() })
	return r
}

func (r *raw) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *raw) frame(typ wire.FrameType, seq uint16, payload []byte) []byte {
	r.t.Helper()
	b, err := wire.AppendFrame(nil, wire.Frame{Type: typ, Seq: seq, Payload: payload})
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *raw) send(typ wire.FrameType, seq uint16, payload []byte) {
	r.t.Helper()
	r.write(r.frame(typ, seq, payload))
}

func (r *raw) sendEnv(seq uint16, env *wire.Envelope) {
	r.t.Helper()
	p, err := wire.Marshal(env)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(wire.FrameData, seq, p)
}

// next returns the next frame, skipping heartbeats' DATA frames if skipHB.
func (r *raw) next(d time.Duration) (wire.Frame, bool) {
	select {
	case f := <-r.frames:
		return f, true
	case <-time.After(d):
		return wire.Frame{}, false
	}
}

func (r *raw) expect(typ wire.FrameType, seq int) wire.Frame {
	r.t.Helper()
	f, ok := r.next(2 * time.Second)
	if !ok {
		r.t.Fatalf("expected a %s frame, got nothing", typ)
	}
	if f.Type != typ || (seq >= 0 && f.Seq != uint16(seq)) {
		r.t.Fatalf("expected %s seq %d, got %s seq %d", typ, seq, f.Type, f.Seq)
	}
	return f
}

func (r *raw) expectNothing(d time.Duration) {
	r.t.Helper()
	if f, ok := r.next(d); ok {
		r.t.Fatalf("expected silence, got %s seq %d", f.Type, f.Seq)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
