package sim

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// startLine runs a paced pty's goroutines as plugPty does and stops them
// at cleanup.
func startLine(t *testing.T, baud int) *ptyPair {
	t.Helper()
	p, err := openPty(baud)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	var wg sync.WaitGroup
	for _, f := range []func(){p.reader, p.txLoop, p.rxLoop} {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	t.Cleanup(func() { p.close(); wg.Wait() })
	return p
}

// wireBytes is how many bytes a line at baud (8N1) carries in d.
func wireBytes(baud int, d time.Duration) float64 {
	return d.Seconds() * float64(baud) / 10
}

// The device's side of a paced pty never delivers faster than the line
// (checked at every read: what arrived by then fits in the time since the
// first write) and delivers everything in order. Pass/fail does not depend
// on the machine's speed: a slow machine only delivers later.
func TestPacedLineToBridgeNeverFaster(t *testing.T) {
	const baud = 115200
	p := startLine(t, baud)
	var want []byte
	for i := 0; i < 40; i++ {
		want = append(want, bytes.Repeat([]byte{byte(i + 1)}, 20+i*7)...) // 20..293-byte writes
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		sp := p.newSession()
		defer sp.Close()
		for i, off := 0, 0; i < 40; i++ {
			n := 20 + i*7
			if _, err := sp.Write(want[off : off+n]); err != nil {
				errc <- err
				return
			}
			off += n
		}
		errc <- nil
	}()
	var got []byte
	buf := make([]byte, 4096)
	_ = p.slave.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(got) < len(want) {
		n, err := p.slave.Read(buf)
		el := time.Since(start)
		got = append(got, buf[:n]...)
		if lim := wireBytes(baud, el); float64(len(got)) > lim+1 {
			t.Fatalf("%d bytes arrived %v after the first write: the line carries at most %.0f", len(got), el, lim)
		}
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(got), len(want), err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes arrived changed or out of order")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// The bridge's side: what the bridge writes reaches the device no faster
// than the line carries it, in order.
func TestPacedLineToDeviceNeverFaster(t *testing.T) {
	const baud = 115200
	p := startLine(t, baud)
	sp := p.newSession()
	defer sp.Close()
	want := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes, 0.28 s
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += 100 {
			if _, err := p.slave.Write(want[off:min(off+100, len(want))]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < len(want) {
		n, err := sp.Read(buf)
		el := time.Since(start)
		got = append(got, buf[:n]...)
		if lim := wireBytes(baud, el); float64(len(got)) > lim+1 {
			t.Fatalf("%d bytes reached the device %v after the bridge's first write: the line carries at most %.0f", len(got), el, lim)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes arrived changed or out of order")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A new session empties the device's transmit buffer: a write stuck behind
// a full buffer returns, and the next session's bytes are not held up.
func TestPacedLineResetEmptiesBuffer(t *testing.T) {
	p := startLine(t, 1200) // 120 bytes/s: 4 KiB take half a minute
	old := p.newSession()
	done := make(chan error, 1)
	go func() {
		_, err := old.Write(make([]byte, 4096))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	old.Close() // the session ends (the link stopped): its write returns
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a write into a full buffer returned before the line took it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not return when its session closed")
	}
	p.resetLine()
	sp := p.newSession()
	defer sp.Close()
	_ = p.slave.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := sp.Write([]byte{0, 'h', 'i', 0}); err != nil {
		t.Fatal(err)
	}
	// what the first session left in the buffer (up to txBuffer bytes) is
	// gone: the new bytes arrive within their own line time, not after 4 KiB
	buf := make([]byte, 8192)
	var got []byte
	for !bytes.Contains(got, []byte("hi")) {
		n, err := p.slave.Read(buf)
		if err != nil {
			t.Fatalf("new session's bytes did not arrive: %v (got %d bytes)", err, len(got))
		}
		got = append(got, buf[:n]...)
	}
}
