package module

import (
	"runtime"
	"testing"
	"time"
)

// TestIdleDoesNotAllocate: an idle module (no traffic) allocates next to
// nothing, so the PASS path's allocation count through the host is not
// polluted by background work.
func TestIdleDoesNotAllocate(t *testing.T) {
	e := newEnv(t)
	time.Sleep(200 * time.Millisecond)
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	time.Sleep(time.Second)
	runtime.ReadMemStats(&b)
	_ = e
	if n := b.Mallocs - a.Mallocs; n > 200 {
		t.Fatalf("an idle module allocated %d objects in 1 s", n)
	}
}
