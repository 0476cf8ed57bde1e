// Command cabi is mesibo-iot's C ABI: built with -buildmode=c-shared it is
// mesibo_mod_iot.so. trampoline.c holds the init entry point and the
// per-revision callbacks; this file holds the Go side of each crossing.
// on_message is decided in C (fastpath.c) and does not enter Go: the
// module's own messages are queued in a C inbox that a goroutine per
// instance drains (fastpath.go).
//
// Rules kept here: every export recovers panics and returns a safe value
// (PASS for traffic); C never holds a Go pointer (the instance is a slot
// number in a fixed table, see register); host buffers are copied before a
// callback returns (the module package clones what it keeps); host functions
// are called through the C trampolines iot_send and iot_log.
package main

/*
#cgo CFLAGS: -O2 -Wall
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "trampoline.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mesibo-iot/mesibo-iot/module"
)

func main() {}

// instance is one loaded copy of the module.
type instance struct {
	inst *C.iot_instance_t // C memory, owned by this instance until cleanup
	mod  *module.Module
	fp   *fastPath // nil: the C fast path could not be set up
}

// cHost implements module.Host on top of the C trampolines.
type cHost struct {
	inst *C.iot_instance_t
}

func (h cHost) Send(p *module.Params, body []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("send_message panicked: %v", r)
		}
	}()
	to := C.CString(p.To)
	from := C.CString(p.From)
	msg := C.CBytes(append(body[:len(body):len(body)], 0))
	defer C.free(unsafe.Pointer(to))
	defer C.free(unsafe.Pointer(from))
	defer C.free(msg)
	rc := C.iot_send(h.inst, C.uint64_t(p.AID), C.uint64_t(p.ID), C.uint64_t(p.RefID),
		C.uint64_t(p.GroupID), C.uint64_t(p.Flags), C.uint64_t(p.Type), C.uint64_t(p.Expiry),
		to, from, (*C.char)(msg), C.uint64_t(len(body)))
	if rc != 0 {
		return fmt.Errorf("mesibo send_message returned %d", int64(rc))
	}
	return nil
}

func (h cHost) Log(level module.Level, msg string) {
	defer func() { _ = recover() }()
	s := C.CString(msg)
	C.iot_log(h.inst, C.uint64_t(level), s)
	C.free(unsafe.Pointer(s))
}

func cstr(p *C.char, n C.uint64_t) string {
	if p == nil || n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(p)), int(n))
}

// maxInstances bounds how many instances may be loaded at once (mesibo
// loads a module once per declaration in mesibo.conf).
const maxInstances = 64

// instances holds the loaded instances. C keeps slot+1 in mod->ctx: a
// plain number, so C never holds a Go pointer, and a lookup on the hot path
// is one atomic load (a cgo.Handle lookup costs a hash-trie walk, about a
// quarter of the PASS path).
var (
	instances  [maxInstances]atomic.Pointer[instance]
	instanceMu sync.Mutex // serialises register and unregister
)

// register puts i in a free slot and returns slot+1, or 0 when every slot
// is taken.
func register(i *instance) uintptr {
	instanceMu.Lock()
	defer instanceMu.Unlock()
	for k := range instances {
		if instances[k].Load() == nil {
			instances[k].Store(i)
			return uintptr(k + 1)
		}
	}
	return 0
}

func unregister(h C.uintptr_t) {
	if h == 0 || h > maxInstances {
		return
	}
	instanceMu.Lock()
	instances[h-1].Store(nil)
	instanceMu.Unlock()
}

func lookup(h C.uintptr_t) *instance {
	if h == 0 || h > maxInstances {
		return nil
	}
	return instances[h-1].Load()
}

// recovered logs a panic that reached an export.
func recovered(inst *C.iot_instance_t, where string, r any) {
	defer func() { _ = recover() }()
	cHost{inst}.Log(module.LevelError, fmt.Sprintf("iot: recovered panic in %s: %v\n%s", where, r, debug.Stack()))
}

// contain is deferred by a callback that answers with an int64: a panic is
// logged (recovered) and the callback answers fallback instead, so mesibo
// goes on. recover works here because contain is the deferred call itself.
func (i *instance) contain(callback string, res *C.int64_t, fallback C.int64_t) {
	if r := recover(); r != nil {
		recovered(i.inst, callback, r)
		*res = fallback
	}
}

//export mesibo_iot_go_init
func mesibo_iot_go_init(rev C.int, inst *C.iot_instance_t, n C.int64_t, names, values **C.char) (h C.uintptr_t) {
	defer func() {
		if r := recover(); r != nil {
			recovered(inst, "init", r)
			h = 0
		}
	}()
	host := cHost{inst}
	items := make([]module.ConfigItem, 0, int(n))
	if n > 0 {
		ns := unsafe.Slice(names, int(n))
		vs := unsafe.Slice(values, int(n))
		for i := range ns {
			items = append(items, module.ConfigItem{Name: C.GoString(ns[i]), Value: C.GoString(vs[i])})
		}
	}
	items, opts := faultOptions(items)
	items, holdUser := drainHold(items)
	faultAt(opts, "init")
	m, err := module.New(items, host, opts)
	if err != nil {
		host.Log(module.LevelError, "iot: refusing to load: "+err.Error()+explain(err))
		return 0
	}
	i := &instance{inst: inst, mod: m}
	slot := register(i)
	if slot == 0 {
		_ = m.Close()
		host.Log(module.LevelError, fmt.Sprintf("iot: refusing to load: %d instances are loaded already, the most one process takes", maxInstances))
		return 0
	}
	// C installs the callbacks after this returns: the fast path is set up
	// before the first on_message
	i.fp = startFastPath(i, holdUser)
	host.Log(module.LevelInfo, fmt.Sprintf("iot: loaded (ABI revision %s)", revName(int(rev))))
	// Reading a large devices file leaves garbage several times the size of
	// what is kept (10,000 devices: ~10 MiB kept, ~30 MiB more RSS). Give
	// it back to the OS now rather than over the next minute or so.
	debug.FreeOSMemory()
	return C.uintptr_t(slot)
}

func explain(err error) string {
	if errors.Is(err, module.ErrConfig) {
		return " (fix the module's block in mesibo.conf; docs/configuration.md lists every key)"
	}
	return ""
}

func revName(rev int) string {
	switch rev {
	case 1:
		return "doc"
	case 2:
		return "r2019"
	case 3:
		return "r2020"
	}
	return "unknown"
}

// mesibo_iot_go_on_message is on_message for every revision when the C fast
// path has no routing table (it could not be set up or built; fastpath.c
// decides every message otherwise). Messages that are not for the module
// PASS on the first lines: Module.Passes reads an immutable table, cannot
// panic on any input and does not allocate; only a message for the bridge,
// a device or a device group pays for the recover and for building Params.
//
//export mesibo_iot_go_on_message
func mesibo_iot_go_on_message(h C.uintptr_t, p *C.iot_params_t, msg *C.char, n C.uint64_t) C.int64_t {
	i := lookup(h)
	if i == nil || p == nil || i.mod.Passes(cstr(p.to, p.tolen), uint64(p.groupid)) {
		return C.int64_t(module.Pass)
	}
	return onMessage(i, p, msg, n)
}

func onMessage(i *instance, p *C.iot_params_t, msg *C.char, n C.uint64_t) (res C.int64_t) {
	defer i.contain("on_message", &res, C.int64_t(module.Pass))
	params := goParams(p)
	var body []byte
	if msg != nil && n > 0 {
		body = unsafe.Slice((*byte)(unsafe.Pointer(msg)), int(n))
	}
	return C.int64_t(i.mod.OnMessage(&params, body))
}

// goParams views the host's params as module.Params: the strings point
// into the host's buffers (cstr), valid during the callback only; the module
// copies what it keeps.
func goParams(p *C.iot_params_t) module.Params {
	return module.Params{
		AID: uint64(p.aid), ID: uint64(p.id), RefID: uint64(p.refid), GroupID: uint64(p.groupid),
		Flags: uint64(p.flags), Type: uint64(p._type), Expiry: uint64(p.expiry), Status: uint64(p.status),
		To: cstr(p.to, p.tolen), From: cstr(p.from, p.fromlen),
	}
}

//export mesibo_iot_go_on_status
func mesibo_iot_go_on_status(h C.uintptr_t, p *C.iot_params_t) (res C.int64_t) {
	i := lookup(h)
	if i == nil || p == nil {
		return C.int64_t(module.Pass)
	}
	defer i.contain("on_message_status", &res, C.int64_t(module.Pass))
	params := goParams(p)
	return C.int64_t(i.mod.OnMessageStatus(&params))
}

//export mesibo_iot_go_on_login
func mesibo_iot_go_on_login(h C.uintptr_t, addr *C.char, n C.uint64_t, online C.int64_t) (res C.int64_t) {
	i := lookup(h)
	if i == nil {
		return 0
	}
	defer i.contain("on_login", &res, 0)
	a := cstr(addr, n)
	if i.fp != nil && online != 0 && a == i.fp.holdUser {
		i.fp.release()
	}
	i.mod.OnLogin(a, online != 0)
	return 0
}

//export mesibo_iot_go_cleanup
func mesibo_iot_go_cleanup(h C.uintptr_t) (res C.int64_t) {
	i := lookup(h)
	if i == nil {
		return 0
	}
	unregister(h)
	defer func() {
		if r := recover(); r != nil {
			recovered(i.inst, "cleanup", r)
			res = 0
		}
		if i.fp != nil {
			i.mod.PublishRoutes(nil)
		}
		C.iot_free_instance(i.inst) // frees what the inbox still holds
	}()
	// C stopped queueing (iot_fp_close) before it called here
	if i.fp != nil {
		if n := i.fp.close(); n > 0 {
			cHost{i.inst}.Log(module.LevelInfo, fmt.Sprintf("iot: cleanup: %d queued messages handed to the core", n))
		}
	}
	faultAt(module.Options{Fault: i.faultHook()}, "cleanup")
	_ = i.mod.Close()
	return 0
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}

// mesibo_module_debug_allocs returns the number of heap objects the Go
// runtime has allocated so far. mesibo-host's `bench` command reads it before
// and after a run to report allocations per message.
//
//export mesibo_module_debug_allocs
func mesibo_module_debug_allocs() (n C.uint64_t) {
	defer func() { _ = recover() }()
	metrics.Read(allocSample)
	return C.uint64_t(allocSample[0].Value.Uint64())
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// mesibo_module_debug_goroutines returns the number of goroutines in the
// process's Go runtime (every Go module of the process shares it).
// mesibo-host's `debug` command prints it; the soak test compares it before
// and after load.
//
//export mesibo_module_debug_goroutines
func mesibo_module_debug_goroutines() (n C.uint64_t) {
	defer func() { _ = recover() }()
	return C.uint64_t(runtime.NumGoroutine())
}

// mesibo_module_debug_heap_bytes runs a garbage collection and returns the
// bytes of live heap objects (runtime/metrics
// /memory/classes/heap/objects:bytes). A debugging aid: the collection
// stops the world for a moment, so do not call it on a hot path.
// mesibo-host's `debug` command prints it.
//
//export mesibo_module_debug_heap_bytes
func mesibo_module_debug_heap_bytes() (n C.uint64_t) {
	defer func() { _ = recover() }()
	runtime.GC()
	metrics.Read(heapSample)
	return C.uint64_t(heapSample[0].Value.Uint64())
}
