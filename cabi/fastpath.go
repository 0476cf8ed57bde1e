package main

/*
#include <stdlib.h>
#include "trampoline.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mesibo-iot/mesibo-iot/module"
)

// fastPath is the Go half of an instance's C fast path (fastpath.h): the
// drainer goroutine that takes the messages mesibo's threads queued in the
// C inbox and hands them to the module.
type fastPath struct {
	i       *instance
	stop    chan struct{}
	stopped atomic.Bool // set before stop is closed
	done    chan struct{}

	// test builds only (fault_on.go): the drainer takes nothing from the
	// inbox until a user named holdUser logs in (or cleanup), so tests can
	// fill it.
	holdUser string
	hold     chan struct{}
	holdOnce sync.Once
}

// drainBatch is how many messages one crossing into C takes.
const drainBatch = 64

// startFastPath sets up the C inbox, publishes the routing table to C (now
// and at every reload) and starts the drainer. If the C side cannot be set
// up, on_message keeps asking Go (mesibo_iot_go_on_message), as before.
func startFastPath(i *instance, holdUser string) *fastPath {
	cfg := i.mod.Config()
	if C.iot_fp_start(i.inst, C.uint32_t(cfg.InboxSize), C.uint32_t(cfg.MaxMessage)) != 0 {
		cHost{i.inst}.Log(module.LevelWarn, "iot: the C fast path could not be set up; on_message enters Go for every message")
		return nil
	}
	f := &fastPath{i: i, stop: make(chan struct{}), done: make(chan struct{}), holdUser: holdUser}
	if holdUser != "" {
		f.hold = make(chan struct{})
	}
	inst := i.inst
	i.mod.PublishRoutes(func(rs module.RouteSet) { publishRoutes(inst, rs) })
	go f.drain()
	return f
}

// publishRoutes hands C a new routing table in one flat buffer (the format
// fastpath.c's build parses). If C cannot build it, C drops its table and
// on_message asks Go until the next reload.
func publishRoutes(inst *C.iot_instance_t, rs module.RouteSet) {
	defer func() {
		if r := recover(); r != nil {
			C.iot_fp_publish(inst, nil, 0) // no table: on_message asks Go
			recovered(inst, "routes publish", r)
		}
	}()
	buf := routeBuffer(rs)
	cbuf := C.CBytes(buf) // C reads C memory only (see batchArray)
	defer C.free(cbuf)
	if C.iot_fp_publish(inst, cbuf, C.size_t(len(buf))) != 0 {
		cHost{inst}.Log(module.LevelWarn, fmt.Sprintf("iot: the C routing table (%d addresses, %d groups) could not be built; on_message enters Go for every message until the next reload", len(rs.Addresses), len(rs.Groups)))
	}
}

// routeBuffer: u64 naddr, u64 ngroups, ngroups × u64 id, naddr × (u32 len,
// bytes), in the host's byte order.
func routeBuffer(rs module.RouteSet) []byte {
	n := 16 + 8*len(rs.Groups)
	for _, a := range rs.Addresses {
		n += 4 + len(a)
	}
	b := make([]byte, 0, n)
	b = binary.NativeEndian.AppendUint64(b, uint64(len(rs.Addresses)))
	b = binary.NativeEndian.AppendUint64(b, uint64(len(rs.Groups)))
	for _, g := range rs.Groups {
		b = binary.NativeEndian.AppendUint64(b, g)
	}
	for _, a := range rs.Addresses {
		b = binary.NativeEndian.AppendUint32(b, uint32(len(a)))
		b = append(b, a...)
	}
	return b
}

// drain runs until stop: it takes batches from the C inbox and, when the
// inbox is empty, waits in C (iot_fp_idle: timed naps for up to 2 ms after
// the last message, then a sleep on the eventfd; no spinning). It runs on
// an OS thread of its own, which it makes SCHED_BATCH
// (iot_fp_thread_batch) so that the producer's wake-up does not preempt
// mesibo's thread inside on_message; the thread ends with the goroutine
// (it stays locked), so no other goroutine inherits the policy.
func (f *fastPath) drain() {
	defer close(f.done)
	runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
	C.iot_fp_thread_batch()
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-f.stop:
			return
		}
	}
	out := batchArray()
	defer C.free(unsafe.Pointer(out))
	n := C.uint32_t(0) // out[:n] is the batch taken last, freed by the next iot_fp_next
	for !f.drainSafely(out, &n) {
	}
}

// batchArray allocates, in C memory, the array iot_fp_next fills with a
// batch. No Go pointer is passed to C, so C never reads or writes Go
// memory. This also keeps valgrind's checks of the C side meaningful: it
// cannot follow the Go heap and goroutine stacks, and takes C's accesses to
// them for errors. C.malloc never returns nil (it crashes the process when
// memory is exhausted, as Go's own allocator does).
func batchArray() *[drainBatch]*C.iot_msg_t {
	var p *C.iot_msg_t
	return (*[drainBatch]*C.iot_msg_t)(C.malloc(C.size_t(drainBatch * unsafe.Sizeof(p))))
}

// drainSafely runs the drain loop until stop (true); a panic outside a
// message's own handling (acceptQueued recovers those) is logged and the
// loop starts again (false).
func (f *fastPath) drainSafely(out *[drainBatch]*C.iot_msg_t, n *C.uint32_t) (stopped bool) {
	defer func() {
		if r := recover(); r != nil {
			recovered(f.i.inst, "inbox drainer", r)
			stopped = false
		}
	}()
	for {
		k := C.iot_fp_next(f.i.inst, &out[0], *n, &out[0], drainBatch) // frees out[:*n]
		*n = k
		if k > 0 {
			for _, m := range out[:k] {
				f.i.acceptQueued(m)
			}
			continue
		}
		if f.stopped.Load() {
			return true
		}
		C.iot_fp_idle(f.i.inst)
	}
}

// release ends a test hold (see holdUser).
func (f *fastPath) release() {
	if f.hold != nil {
		f.holdOnce.Do(func() { close(f.hold) })
	}
}

// close is the Go half of cleanup, after C stopped queueing (iot_fp_close):
// it stops the drainer, hands what is still queued to the module (as if the
// drainer had taken it) and returns how many that was. Whatever C still
// holds after this is freed by iot_free_instance.
func (f *fastPath) close() int {
	f.stopped.Store(true)
	close(f.stop)
	C.iot_fp_wake(f.i.inst) // the drainer sleeps in iot_fp_idle, or will look at stopped first
	<-f.done
	out := batchArray()
	defer C.free(unsafe.Pointer(out))
	total := 0
	for {
		n := C.iot_fp_next(f.i.inst, nil, 0, &out[0], drainBatch)
		if n == 0 {
			return total
		}
		for _, m := range out[:n] {
			f.i.acceptQueued(m)
		}
		total += int(n)
		C.iot_fp_free_msgs(&out[0], n)
	}
}

// acceptQueued hands one queued message to the module. A panic is logged
// as on_message's and the sender is told that the message was not taken
// (it was consumed: mesibo will not deliver it elsewhere); the drainer goes
// on. The C block is freed by the caller's next iot_fp_next.
func (i *instance) acceptQueued(m *C.iot_msg_t) {
	var p module.Params
	defer func() {
		if r := recover(); r != nil {
			recovered(i.inst, "on_message", r)
			if p.From != "" {
				i.notTaken(&p)
			}
		}
	}()
	d := (*C.char)(unsafe.Add(unsafe.Pointer(m), C.sizeof_iot_msg_t))
	to := C.GoStringN(d, C.int(m.tolen))
	from := C.GoStringN((*C.char)(unsafe.Add(unsafe.Pointer(d), m.tolen+1)), C.int(m.fromlen))
	var body []byte
	if m.bodylen > 0 {
		body = C.GoBytes(unsafe.Add(unsafe.Pointer(d), m.tolen+1+m.fromlen+1), C.int(m.bodylen))
	}
	p = module.Params{
		AID: uint64(m.aid), ID: uint64(m.id), RefID: uint64(m.refid), GroupID: uint64(m.groupid),
		Flags: uint64(m.flags), Type: uint64(m._type), Expiry: uint64(m.expiry),
		To: to, From: from,
	}
	i.mod.AcceptCopied(p, body, m.toolong != 0, time.Duration(m.cb_ns))
}

// notTaken answers a message whose hand-over panicked, so that nothing
// the module consumed goes unanswered; a second panic is only logged.
func (i *instance) notTaken(p *module.Params) {
	defer func() {
		if r := recover(); r != nil {
			recovered(i.inst, "on_message (answer)", r)
		}
	}()
	i.mod.NotTaken(p)
}

// mesibo_iot_go_busy answers a message of the module's that the C inbox had
// no room for (fastpath.c): "busy", as when the core's queue is full.
//
//export mesibo_iot_go_busy
func mesibo_iot_go_busy(h C.uintptr_t, p *C.iot_params_t, tooLong C.int) (res C.int64_t) {
	i := lookup(h)
	if i == nil || p == nil {
		return C.int64_t(module.Pass)
	}
	defer i.contain("on_message", &res, C.int64_t(module.Pass))
	params := goParams(p)
	i.mod.Busy(&params, tooLong != 0)
	return C.int64_t(module.Consumed)
}
