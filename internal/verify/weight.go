package verify

import (
	"github.com/keyplane/keyplane"
)

// DefaultCacheMemory is the key cache's default bound: 128 MiB holds about 115,000 typical keys
// (entryWeight), the hot set of a million-key deployment, with the rest of a node's memory inside
// the 300 MiB budget (docs/performance.md).
const DefaultCacheMemory = 128 << 20

// Weights, in bytes, measured with TestEntryWeight (heap growth per entry over 100,000 entries, on
// 64-bit Go): a cache node and its entry, and on top of it a key's compiled form with short fields.
const (
	weightNegative = 120 // an unknown digest: the node, its 32-byte key and an entry with no key
	weightKey      = 700 // a compiled key with a few permissions, a name and no metadata
	// Per string byte and per list element of a key's fields, for keys larger than most.
	weightPerElement = 56
)

// entryWeight estimates the heap bytes a cache entry holds, for the cache's byte bound: exact enough
// that the bound holds within some percent, cheap enough to run at every fill.
func entryWeight(e entry) uint32 {
	if e.key == nil {
		return weightNegative
	}
	return weightNegative + keyWeight(e.key.Key)
}

func keyWeight(k *keyplane.APIKey) uint32 {
	n := weightKey + len(k.Name) + len(k.Description) + len(k.Meta) + len(k.ID) + len(k.WorkspaceID)
	for _, l := range [][]string{k.Permissions, k.IPAllowlist, k.AllowedOrigins} {
		for _, s := range l {
			// A permission is a slice element, a map entry and its string.
			n += 2*weightPerElement + len(s)
		}
	}
	return uint32(min(n, 1<<30))
}
