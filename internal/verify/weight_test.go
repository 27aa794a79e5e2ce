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
	"unsafe"

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

// encodeAnswer stands for the API's encoding of a key in verification answers (api.encodeVerifiedKey),
// which a key whose answer needs escaping keeps once it has answered over HTTP: the same fields and
// bytes, in another order.
func encodeAnswer(k *keyplane.CompiledKey) []byte {
	b, _ := json.Marshal(map[string]any{"keyId": k.ID, "workspaceId": k.WorkspaceID, "name": k.Name,
		"keyType": k.KeyType, "environment": k.Environment, "permissions": k.Permissions, "meta": k.Meta, "expiresAt": nil})
	return b[1 : len(b)-1]
}

// TestEntryWeight: the weights the cache bounds its memory by are within 15 % of what entries
// really take on the heap, cache nodes included, for keys and for unknown digests.
func TestEntryWeight(t *testing.T) {
	const n = 100_000
	var in interner
	for _, tc := range []struct {
		name string
		make func(i int) entry
		// unweighed: the estimate does not count this kind apart (too rare); its weight is logged.
		unweighed bool
	}{
		{"key", func(i int) entry {
			k := typicalKey(i)
			in.key(k)
			return entry{key: keyplane.Compile(k)}
		}, false},
		{"key with its answer kept", func(i int) entry {
			// A key with a character its answer escapes keeps its encoding (api.appendVerifiedKey).
			k := typicalKey(i)
			in.key(k)
			e := entry{key: keyplane.Compile(k)}
			e.key.Encoded(encodeAnswer)
			return e
		}, true},
		{"unknown", func(int) entry { return entry{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
			// The heap with the cache and without it, back to back: measured across the fill instead,
			// whatever else the process frees meanwhile (an earlier test's leftovers, at -count > 1)
			// is taken off the cache's size.
			var with, without runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&with)
			runtime.KeepAlive(c)
			c = nil
			runtime.GC()
			runtime.ReadMemStats(&without)
			real := float64(int64(with.HeapAlloc)-int64(without.HeapAlloc)) / n
			objects := float64(int64(with.HeapObjects)-int64(without.HeapObjects)) / n
			t.Logf("%s: %.0f bytes and %.1f objects an entry on the heap, %d bytes estimated", tc.name, real, objects, est/n)
			if r := float64(est/n) / real; !tc.unweighed && (r < 0.85 || r > 1.15) {
				t.Errorf("estimate %d is %.2f× the measured %.0f", est/n, r, real)
			}
		})
	}
}

// TestInterner: keys read apart share one copy of their repeated strings, and the interner forgets
// everything rather than grow past its bound.
func TestInterner(t *testing.T) {
	var in interner
	a, b := typicalKey(1), typicalKey(2)
	in.key(a)
	in.key(b)
	if unsafe.StringData(a.WorkspaceID) != unsafe.StringData(b.WorkspaceID) ||
		unsafe.StringData(a.Permissions[1]) != unsafe.StringData(b.Permissions[1]) {
		t.Fatal("equal strings of two keys are not shared")
	}
	if a.WorkspaceID != "ws_01jbk3m8q7x2v9n4c6d5f0e1a2" || a.Permissions[0] != "orders:read" || a.Prefix != "kp_sk_live_" {
		t.Fatalf("interning changed a value: %+v", a)
	}
	// A key's own short strings that its compiled form keeps are packed into one allocation, their
	// values kept; its empty meta is shared, and full, so that an append to one key's copies it.
	want := typicalKey(1)
	want.IdentityID = "idn_7"
	c := typicalKey(1)
	c.IdentityID = strings.Clone(want.IdentityID)
	in.key(c)
	if c.ID != want.ID || c.Name != want.Name || c.IdentityID != want.IdentityID || string(c.Meta) != "{}" {
		t.Fatalf("packing changed a value: %+v", c)
	}
	base := uintptr(unsafe.Pointer(unsafe.StringData(c.ID)))
	if uintptr(unsafe.Pointer(unsafe.StringData(c.IdentityID))) != base+uintptr(len(c.ID)+len(c.Name)) {
		t.Fatal("a key's own strings are not packed one after another")
	}
	if &a.Meta[0] != &b.Meta[0] || cap(a.Meta) != len(a.Meta) {
		t.Fatalf("empty meta not shared, or not full (cap %d)", cap(a.Meta))
	}
	if m := append(a.Meta, 'x'); &m[0] == &b.Meta[0] || string(b.Meta) != "{}" {
		t.Fatal("an append to one key's meta wrote into another's")
	}
	for i := range internMax + 10 {
		in.str(fmt.Sprint(i))
	}
	if len(in.strs) > internMax {
		t.Fatalf("%d strings kept, bound %d", len(in.strs), internMax)
	}
}
