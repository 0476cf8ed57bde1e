package module

import (
	"fmt"
	"testing"
)

// Every address put in the filter is found (no false negatives, which would
// PASS a message meant for a device), and most others are not.
func TestAddrFilter(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 10000} {
		var addrs []string
		for i := 0; i < n; i++ {
			addrs = append(addrs, fmt.Sprintf("robot%d", i), fmt.Sprintf("+1555%07d", i))
		}
		addrs = append(addrs, "", "x", "a-much-longer-address@example.org")
		f := newAddrFilter(addrs)
		for _, a := range addrs {
			if !f.mayContain(a) {
				t.Fatalf("n=%d: %q not in the filter", n, a)
			}
		}
		fp := 0
		const probes = 20000
		for i := 0; i < probes; i++ {
			if f.mayContain(fmt.Sprintf("user-%d", i)) {
				fp++
			}
		}
		if rate := float64(fp) / probes; rate > 0.1 {
			t.Errorf("n=%d: false positive rate %.3f", n, rate)
		}
	}
}

func BenchmarkAddrFilterMiss(b *testing.B) {
	var addrs []string
	for i := 0; i < 1000; i++ {
		addrs = append(addrs, fmt.Sprintf("robot%d", i))
	}
	f := newAddrFilter(addrs)
	probe := "alice@example.org"
	for i := 0; f.mayContain(probe); i++ {
		probe = fmt.Sprintf("alice%d@example.org", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if f.mayContain(probe) {
			b.Fatal("false positive")
		}
	}
}
