// Command noop builds mesibo_mod_gonoop.so, the do-nothing Go module that the
// PASS-path benchmark compares mesibo-iot against (one process can hold one
// Go runtime, so it runs in its own mesibo-host).
package main

/*
#include "../module.h"
*/
import "C"

import (
	"runtime/metrics"
	"unsafe"
)

func main() {}

//export gonoop_on_message
func gonoop_on_message(h C.uintptr_t, p unsafe.Pointer, msg *C.char, n C.mesibo_uint_t) C.mesibo_int_t {
	return 0
}

var sample = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}

//export mesibo_module_debug_allocs
func mesibo_module_debug_allocs() C.uint64_t {
	metrics.Read(sample)
	return C.uint64_t(sample[0].Value.Uint64())
}
