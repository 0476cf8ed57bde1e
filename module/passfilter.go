package module

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// addrFilter is a one-hash Bloom filter over the device addresses: a bit
// per hash bucket, at least 16 bits per address. A clear bit proves the
// address is not a device, which is what almost every message mesibo shows
// the module (people chatting with people) finds out; a set bit sends the
// lookup on to the map. It is built once with the routing table and never
// changes, so reading it needs no lock.
type addrFilter struct {
	bits  []uint64
	shift uint // 64 - log2(number of bits)
}

func newAddrFilter(addrs []string) addrFilter {
	n := max(1024, 16*len(addrs))
	lg := bits.Len(uint(n - 1)) // round up to a power of two
	f := addrFilter{bits: make([]uint64, (1<<lg)/64), shift: uint(64 - lg)}
	for _, a := range addrs {
		h := addrHash(a) >> f.shift
		f.bits[h/64] |= 1 << (h % 64)
	}
	return f
}

// mayContain reports false when s is certainly not in the filter.
func (f *addrFilter) mayContain(s string) bool {
	h := addrHash(s) >> f.shift
	return f.bits[h/64]&(1<<(h%64)) != 0
}

// addrHash mixes the length and the first and last 8 bytes of s (all of it
// when shorter). Addresses differ in those bytes in practice; two that do
// not only cost the map lookup the filter saves.
func addrHash(s string) uint64 {
	n := len(s)
	var a, b uint64
	if n >= 8 {
		p := unsafe.Slice(unsafe.StringData(s), n)
		a = binary.LittleEndian.Uint64(p)
		b = binary.LittleEndian.Uint64(p[n-8:])
	} else {
		for i := 0; i < n; i++ {
			a = a<<8 | uint64(s[i])
		}
	}
	h := (a^uint64(n))*0x9e3779b97f4a7c15 ^ bits.RotateLeft64(b*0xc2b2ae3d27d4eb4f, 31)
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h
}
