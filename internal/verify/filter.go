package verify

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Filter is a membership filter over key digests: it answers "certainly not stored" or "maybe
// stored", so that a made-up key costs no store read. It is a scalable Bloom filter (Almeida et al.):
// a chain of Bloom filters, each twice the capacity of the one before and with a lower false-positive
// rate, so that it grows as keys are made without ever rescanning the store, and the rates of the
// chain sum to at most twice the first's. Nothing is ever removed: a deleted key's digest stays a
// false positive, which only costs the read it would have cost anyway.
//
// The digests are SHA-256 outputs, uniformly distributed, so their own bits serve as the hash
// values: no hashing at all. Reads take no lock: the bits are atomic words, set by atomic OR, and the
// chain is swapped whole when it grows. An Add that has returned is seen by every later Has.
type Filter struct {
	chain atomic.Pointer[[]*bloom]
	grow  sync.Mutex
	rate  float64 // the first stage's target false-positive rate
}

// NewFilter returns an empty filter sized for about capacity digests before it first grows, at a
// false-positive rate of rate (0.01 for 1 %) in its first stage.
func NewFilter(capacity int, rate float64) *Filter {
	if rate <= 0 || rate >= 1 {
		rate = 0.01
	}
	f := &Filter{rate: rate}
	chain := []*bloom{newBloom(max(capacity, 1024), rate/2)}
	f.chain.Store(&chain)
	return f
}

// Add records a digest. Safe for concurrent use with Add and Has.
func (f *Filter) Add(h [32]byte) {
	chain := *f.chain.Load()
	last := chain[len(chain)-1]
	last.add(h, len(chain)-1)
	if last.count.Add(1) > last.capacity {
		f.extend(last)
	}
}

// Has reports whether the digest may have been added: false means it never was.
func (f *Filter) Has(h [32]byte) bool {
	for i, b := range *f.chain.Load() {
		if b.has(h, i) {
			return true
		}
	}
	return false
}

// Bytes is the memory the filter's bits take.
func (f *Filter) Bytes() int {
	n := 0
	for _, b := range *f.chain.Load() {
		n += len(b.words) * 8
	}
	return n
}

// extend appends a stage once full is the last one and over its capacity. Adds that race it land in
// full, which stays in the chain: it only grows a little over its rate.
func (f *Filter) extend(full *bloom) {
	f.grow.Lock()
	defer f.grow.Unlock()
	chain := *f.chain.Load()
	if chain[len(chain)-1] != full {
		return
	}
	// Each stage halves the rate of the one before, so that the chain's rate stays under twice
	// the first stage's, whatever its length.
	next := append(chain[:len(chain):len(chain)], newBloom(int(full.capacity)*2, full.rate/2))
	f.chain.Store(&next)
}

// bloom is one stage: m bits (a power of two), k probes.
type bloom struct {
	words    []atomic.Uint64
	mask     uint64 // m-1
	k        int
	capacity int64
	count    atomic.Int64
	rate     float64
}

func newBloom(capacity int, rate float64) *bloom {
	// m = -n ln p / (ln 2)², rounded up to a power of two; k = (m/n) ln 2 for that m.
	m := uint64(math.Ceil(-float64(capacity) * math.Log(rate) / (math.Ln2 * math.Ln2)))
	m = max(uint64(1)<<bits.Len64(m-1), 64)
	k := int(math.Round(float64(m) / float64(capacity) * math.Ln2))
	k = min(max(k, 1), 16)
	return &bloom{words: make([]atomic.Uint64, m/64), mask: m - 1, k: k, capacity: int64(capacity), rate: rate}
}

// probes derives the stage's two hash values from the digest (double hashing, Kirsch and
// Mitzenmacher): the digest's 256 bits are uniform, and each stage reads a different pair of its
// words, so that stages answer independently.
func probes(h [32]byte, stage int) (uint64, uint64) {
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(h[(i%4)*8:]) }
	a := w(stage) ^ bits.RotateLeft64(w(stage+2), stage)
	b := w(stage+1) ^ bits.RotateLeft64(w(stage+3), 3*stage)
	return a, b | 1
}

func (b *bloom) add(h [32]byte, stage int) {
	x, y := probes(h, stage)
	for range b.k {
		i := x & b.mask
		b.words[i>>6].Or(1 << (i & 63))
		x += y
	}
}

func (b *bloom) has(h [32]byte, stage int) bool {
	x, y := probes(h, stage)
	for range b.k {
		i := x & b.mask
		if b.words[i>>6].Load()&(1<<(i&63)) == 0 {
			return false
		}
		x += y
	}
	return true
}
