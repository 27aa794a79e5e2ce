package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/keyplane/keyplane"
)

// typicalKey is a key as the store returns one: every string its own allocation.
func typicalKey(i int) *keyplane.APIKey {
	now := time.Now()
	return &keyplane.APIKey{
		ID: fmt.Sprintf("key_%026d", i), WorkspaceID: strings.Clone("ws_01jbk3m8q7x2v9n4c6d5f0e1a2"),
		Name: fmt.Sprintf("service %d", i), KeyType: keyplane.KeyTypeSecret, Environment: "live",
		Prefix: strings.Clone("kp_sk_live_"), Start: fmt.Sprintf("kp_sk_live_%04d", i%10000), End: fmt.Sprintf("%04d", i%10000),
		Enabled: true, Permissions: []string{strings.Clone("orders:read"), strings.Clone("orders:write")},
		Meta: json.RawMessage(strings.Clone("{}")), CreatedAt: now, UpdatedAt: now,
		CreatedBy: keyplane.Actor{Type: "user", ID: fmt.Sprintf("usr_%026d", i%100)},
	}
}

// TestEntryWeight: the weights the cache bounds its memory by are within a third of what entries
// really take on the heap, cache nodes included, for keys and for unknown digests.
func TestEntryWeight(t *testing.T) {
	const n = 100_000
	for _, tc := range []struct {
		name string
		make func(i int) entry
	}{
		{"key", func(i int) entry { return entry{key: keyplane.Compile(typicalKey(i))} }},
		{"unknown", func(int) entry { return entry{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c, err := otter.New(&otter.Options[[32]byte, entry]{MaximumWeight: 1 << 40, Weigher: func(_ [32]byte, e entry) uint32 { return entryWeight(e) }})
			if err != nil {
				t.Fatal(err)
			}
			var est uint64
			for i := range n {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], uint64(i))
				e := tc.make(i)
				est += uint64(entryWeight(e))
				c.Set(sha256.Sum256(b[:]), e)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			real := float64(after.HeapAlloc-before.HeapAlloc) / n
			runtime.KeepAlive(c)
			t.Logf("%s: %.0f bytes an entry on the heap, %d estimated", tc.name, real, est/n)
			if r := float64(est/n) / real; r < 0.67 || r > 1.5 {
				t.Errorf("estimate %d is %.2f× the measured %.0f", est/n, r, real)
			}
		})
	}
}
