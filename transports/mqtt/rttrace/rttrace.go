// Package rttrace is an opt-in trace of the MQTT command round trip: each
// process on the path (the module inside mesibo-host, the device simulator)
// records CLOCK_MONOTONIC stamps per command id at fixed points, and
// firmware-sim/benchrun joins them into a per-stage breakdown.
//
// It is off unless the environment variable MESIBO_IOT_TRACE names a
// directory when the process starts; then each process appends its records
// to <dir>/<name>-<pid>.trace ("stage key t" lines, written by a background
// goroutine every 200 ms and by Flush). Off, every call is one load of a
// package variable and a branch: nothing is recorded, allocated or locked.
package rttrace

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"
	_ "unsafe" // go:linkname

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// Env is the environment variable that turns the trace on (a directory).
const Env = "MESIBO_IOT_TRACE"

// Stage is a point on the round trip.
type Stage uint8

// The stages, in path order. Keys are the command's wire id except where
// noted.
const (
	_ Stage = iota
	// the bridge (module in mesibo-host)
	BrAccept    // on_message took the chat message (key: chat message id)
	BrCoreIn    // the core goroutine took it (key: chat message id)
	BrMap       // key: command id, t: chat message id (not a time)
	BrDispatch  // the core handed the command to the link (sender or direct)
	BrSender    // the device's sender goroutine picked it up
	BrPublish   // paho Publish called (payload encoded)
	BrPublished // paho Publish returned
	BrWrote     // the PUBLISH packet's bytes are written to the socket (write called)
	BrPuback    // the PUBACK completed the publish token (seen by a waiter)
	BrHandler   // paho ran the transport's handler for the reply
	BrWorker    // the reply was decoded (after the inbound worker, if any)
	BrCoreReply // the core took the reply
	BrAnswer    // the core calls send_message with the final answer
	// the simulated device (firmware-sim)
	SimHandler   // paho ran the device's command handler
	SimDecoded   // the command was decoded
	SimQueued    // the device ran it and queued the reply
	SimDeliver   // the reply is being published (outbox picked up, if any)
	SimPublish   // paho Publish called (reply encoded)
	SimPublished // paho Publish returned
	SimWrote     // the reply's bytes were written to the socket
	// a bare paho requester sending to the simulated devices (benchrun)
	BarePublish // paho Publish called
	BareWrote   // the command's bytes were written to the socket
	BareHandler // paho ran the handler for the reply
	numStages
)

var names = [...]string{"?", "br.accept", "br.core_in", "br.map", "br.dispatch", "br.sender", "br.publish", "br.published", "br.wrote", "br.puback",
	"br.handler", "br.worker", "br.core_reply", "br.answer",
	"sim.handler", "sim.decoded", "sim.queued", "sim.deliver", "sim.publish", "sim.published", "sim.wrote",
	"bare.publish", "bare.wrote", "bare.handler"}

func (s Stage) String() string {
	if int(s) < len(names) {
		return names[s]
	}
	return "?"
}

// ParseStage returns the stage named s.
func ParseStage(s string) (Stage, bool) {
	for i, n := range names {
		if n == s && i > 0 {
			return Stage(i), true
		}
	}
	return 0, false
}

var (
	on  bool // set once at init, read-only after
	dir string

	mu   sync.Mutex
	fmu  sync.Mutex
	buf  []rec
	file *os.File
	name string
)

type rec struct {
	key uint64
	t   int64
	s   Stage
}

func init() {
	if d := os.Getenv(Env); d != "" {
		dir = d
		on = true
	}
}

// On reports whether the trace is on.
func On() bool { return on }

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Now returns CLOCK_MONOTONIC in ns (what mesibo-host --stamp prints).
func Now() int64 { return nanotime() }

// Mono converts a time.Time taken in this process (with its monotonic
// reading) to CLOCK_MONOTONIC ns.
func Mono(t time.Time) int64 { return nanotime() - int64(time.Since(t)) }

// Stamp records stage s for key now. Off, it is inlined to a branch.
func Stamp(s Stage, key uint64) {
	if on {
		stampNow(s, key)
	}
}

func stampNow(s Stage, key uint64) { record(s, key, nanotime()) }

// StampAt records stage s for key at t (CLOCK_MONOTONIC ns).
func StampAt(s Stage, key uint64, t int64) {
	if on {
		record(s, key, t)
	}
}

// SetName names this process's trace file (before the first record is
// written; default "proc").
func SetName(n string) {
	if !on {
		return
	}
	mu.Lock()
	if file == nil {
		name = n
	}
	mu.Unlock()
}

var startOnce sync.Once

func record(s Stage, key uint64, t int64) {
	startOnce.Do(func() { go flusher() })
	mu.Lock()
	if len(buf) < 1<<22 { // bounded: ~100 MB at most
		buf = append(buf, rec{key: key, t: t, s: s})
	}
	mu.Unlock()
}

func flusher() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "rttrace: recovered panic: %v\n%s", r, debug.Stack())
		}
	}()
	for {
		time.Sleep(200 * time.Millisecond)
		Flush()
	}
}

// Flush writes the records taken so far to this process's file.
func Flush() {
	if !on {
		return
	}
	mu.Lock()
	recs := buf
	buf = nil
	n := name
	mu.Unlock()
	fmu.Lock() // the file is written without holding mu: stamps do not wait
	defer fmu.Unlock()
	if file == nil {
		if n == "" {
			n = "proc"
		}
		_ = os.MkdirAll(dir, 0o755)
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s-%d.trace", n, os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return
		}
		mu.Lock()
		file = f
		mu.Unlock()
	}
	w := bufio.NewWriter(file)
	for _, r := range recs {
		fmt.Fprintf(w, "%s %d %d\n", r.s, r.key, r.t)
	}
	_ = w.Flush()
}

// Conn wraps c (when the trace is on) so that each MQTT PUBLISH written
// through it is recorded as stage s, keyed by the command or reply id its
// payload carries. Off, it returns c.
func Conn(c net.Conn, s Stage) net.Conn {
	if !on || c == nil {
		return c
	}
	return &conn{Conn: c, s: s}
}

type conn struct {
	net.Conn
	s Stage
}

func (c *conn) Write(b []byte) (int, error) {
	t := nanotime() // when the bytes are handed to the kernel: the thread may run late after the call
	n, err := c.Conn.Write(b)
	if id, ok := publishID(b); ok {
		record(c.s, id, t)
	}
	return n, err
}

// publishID returns the command or reply id of the PUBLISH packet b (one
// whole packet, as paho writes them).
func publishID(b []byte) (uint64, bool) {
	if len(b) < 2 || b[0]>>4 != 3 {
		return 0, false
	}
	qos := (b[0] >> 1) & 3
	i, mult, rl := 1, 1, 0
	for ; i < len(b) && i < 5; i++ {
		rl += int(b[i]&0x7f) * mult
		mult *= 128
		if b[i]&0x80 == 0 {
			i++
			break
		}
	}
	if i+2 > len(b) {
		return 0, false
	}
	tl := int(b[i])<<8 | int(b[i+1])
	i += 2 + tl
	if qos > 0 {
		i += 2
	}
	if i > len(b) {
		return 0, false
	}
	env, err := wire.Unmarshal(b[i:])
	if err != nil {
		return 0, false
	}
	switch {
	case env.Command != nil:
		return env.Command.ID, true
	case env.Reply != nil:
		return env.Reply.ID, true
	}
	return 0, false
}
