package logblock

import "math/bits"

// A key filter is a Bloom filter of the key ids of a block's entries, stored beside the block, so
// that a reader of one key's entries decodes only the blocks that may hold some: one key's rows name
// the minutes it has entries in, and a busy workspace writes hundreds of blocks a minute. It never
// answers no for a key the block holds; it answers yes for one it does not about one time in a
// hundred (ten bits a key, six probes).
//
// Layout: a version byte (1), then the bits, a power of two of them and at least 64, bit b in byte
// b/8. The hash is FNV-1a, the same in every process and version: filters are read long after the
// node that wrote them is gone.

const (
	filterVersion = 1
	bitsPerKey    = 10
	probes        = 6
)

// KeyFilter returns the filter of keys (distinct or not).
func KeyFilter(keys []string) []byte {
	m := uint64(64)
	for m < uint64(len(keys))*bitsPerKey {
		m <<= 1
	}
	f := make([]byte, 1+m/8)
	f[0] = filterVersion
	words := f[1:]
	for _, k := range keys {
		h1, h2 := keyHash(k)
		for i := range uint64(probes) {
			b := (h1 + i*h2) & (m - 1)
			words[b/8] |= 1 << (b % 8)
		}
	}
	return f
}

// MayHold reports whether a block whose filter is f may hold entries of key: false only when it
// holds none. A filter it cannot read (none, an unknown version, a bad length) may hold anything.
func MayHold(f []byte, key string) bool {
	if len(f) < 1+8 || f[0] != filterVersion || bits.OnesCount(uint(len(f)-1)) != 1 {
		return true
	}
	words := f[1:]
	m := uint64(len(words)) * 8
	h1, h2 := keyHash(key)
	for i := range uint64(probes) {
		b := (h1 + i*h2) & (m - 1)
		if words[b/8]&(1<<(b%8)) == 0 {
			return false
		}
	}
	return true
}

// keyHash returns the two halves of a key's 64-bit FNV-1a hash, mixed by MurmurHash3's finalizer so
// that every bit depends on every byte, the second half odd, for the probes (h1 + i·h2, double
// hashing: an odd step visits distinct bits of a power-of-two table).
func keyHash(key string) (uint64, uint64) {
	v := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		v ^= uint64(key[i])
		v *= 1099511628211
	}
	v ^= v >> 33
	v *= 0xff51afd7ed558ccd
	v ^= v >> 33
	v *= 0xc4ceb9fe1a85ec53
	v ^= v >> 33
	return v >> 32, (v & 0xffffffff) | 1
}
