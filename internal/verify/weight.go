package verify

import (
	"github.com/keyplane/keyplane"
)

// DefaultCacheMemory is the key cache's default bound: 72 MiB holds about 150,000 typical keys
// (entryWeight), the hot set of a million-key deployment, with the rest of a node's memory and the
// collector's headroom inside the 300 MiB budget (docs/performance.md, "Memory" and "The cached
// key").
const DefaultCacheMemory = 72 << 20

// Weights, in bytes, measured with TestEntryWeight (heap growth per entry over 100,000 entries, on
// 64-bit Go): a cache node and its entry, and on top of it a key's compiled form with short fields,
// its repeated strings interned (interner). A key whose answer needs escaping also keeps its
// encoding (api.appendVerifiedKey), ~25 % more; such keys are rare, and not weighed apart.
const (
	weightNegative = 120 // an unknown digest: the node, its 32-byte key and an entry with no key
	weightKey      = 285 // a compiled key, without the bytes of its own strings
	weightIdentity = 245 // the identity read with a key, without its strings and limits
	// Per list element of a key's fields, on top of the element's bytes.
	weightPerElement = 56
)

// entryWeight estimates the heap bytes a cache entry holds, for the cache's byte bound: exact enough
// that the bound holds within some percent, cheap enough to run at every fill.
func entryWeight(e entry) uint32 {
	if e.key == nil {
		return weightNegative
	}
	return weightNegative + keyWeight(e.key) + uint32(e.plan.weight())
}

func keyWeight(c *keyplane.CompiledKey) uint32 {
	n := weightKey + len(c.Name) + len(c.Meta) + len(c.ID) + len(c.IdentityID)
	// A permission is a slice element; its string is interned, shared with other keys.
	n += len(c.Permissions) * weightPerElement / 2
	if len(c.Permissions) > keyplane.PermissionSetMin {
		// Many permissions are a set as well (keyplane.Compile).
		n += len(c.Permissions) * weightPerElement
	}
	if id := c.Identity; id != nil {
		// The identity read with the key, and its limits (credits and limits are small and fixed).
		n += weightIdentity + len(id.ID) + len(id.ExternalID) + len(id.Meta) + len(id.RateLimits)*(weightPerElement+64)
	}
	if c.Credits != nil {
		n += weightPerElement
	}
	for _, s := range c.IPAllowlist {
		// A slice element, a parsed prefix, and its string.
		n += 2*weightPerElement + len(s)
	}
	for o := range c.Origins() {
		n += 2*weightPerElement + len(o)
	}
	return uint32(min(n, 1<<30))
}
