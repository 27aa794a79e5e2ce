package verify

import (
	"encoding/json"
	"sync"

	"github.com/keyplane/keyplane"
)

// internMax bounds the strings an interner keeps: past it, it starts again empty, so that a
// deployment with more distinct workspace or creator ids than that shares fewer of them, never grows.
const internMax = 1 << 16

// interner makes the fields that many cached keys repeat (their workspace, type, environment,
// permissions and empty meta) share one copy each, as the store returns every
// field of every row in its own allocation (TestInterner; TestEntryWeight measures what a cached key
// takes).
type interner struct {
	mu        sync.Mutex
	strs      map[string]string
	emptyMeta json.RawMessage
}

func (in *interner) str(s string) string {
	if s == "" {
		return s
	}
	if v, ok := in.strs[s]; ok {
		return v
	}
	if len(in.strs) >= internMax {
		clear(in.strs)
	}
	in.strs[s] = s
	return s
}

// key interns k's repeated fields, and packs its own (pack), in place: k must be the caller's
// alone, as a key just read is.
func (in *interner) key(k *keyplane.APIKey) {
	pack(k)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.strs == nil {
		in.strs = make(map[string]string)
		in.emptyMeta = json.RawMessage("{}")[:2:2] // full, so that an append cannot write into it
	}
	if string(k.Meta) == "{}" {
		// The meta most keys have: one copy for all (a cached key is never written to).
		k.Meta = in.emptyMeta
	}
	k.WorkspaceID = in.str(k.WorkspaceID)
	k.KeyType = keyplane.KeyType(in.str(string(k.KeyType)))
	k.Environment = keyplane.Environment(in.str(string(k.Environment)))
	for i, p := range k.Permissions {
		k.Permissions[i] = in.str(p)
	}
}

// pack moves the short strings of k that are its own and that its compiled form keeps (its id,
// name and identity) into one allocation, substrings of one string. The store returns each column
// in an allocation of its own, and the collector marks every object of every cached key at each
// cycle, ~100,000 keys on a busy million-key node (TestEntryWeight counts them).
func pack(k *keyplane.APIKey) {
	all := k.ID + k.Name + k.IdentityID
	next := func(n int) string {
		s := all[:n]
		all = all[n:]
		return s
	}
	k.ID = next(len(k.ID))
	k.Name = next(len(k.Name))
	k.IdentityID = next(len(k.IdentityID))
}
