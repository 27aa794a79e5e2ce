package verify

import (
	"sync"

	"github.com/keyplane/keyplane"
)

// internMax bounds the strings an interner keeps: past it, it starts again empty, so that a
// deployment with more distinct workspace or creator ids than that shares fewer of them, never grows.
const internMax = 1 << 16

// interner makes the fields that many cached keys repeat (their workspace, prefix, type,
// environment, creator and permissions) share one copy each, as the store returns every field of
// every row in its own allocation: about 130 bytes of a typical cached key's 840
// (TestInternedKeyWeight).
type interner struct {
	mu   sync.Mutex
	strs map[string]string
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

// key interns k's repeated fields in place: k must be the caller's alone, as a key just read is.
func (in *interner) key(k *keyplane.APIKey) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.strs == nil {
		in.strs = make(map[string]string)
	}
	k.WorkspaceID = in.str(k.WorkspaceID)
	k.Prefix = in.str(k.Prefix)
	k.KeyType = keyplane.KeyType(in.str(string(k.KeyType)))
	k.Environment = keyplane.Environment(in.str(string(k.Environment)))
	k.CreatedBy.Type = keyplane.ActorType(in.str(string(k.CreatedBy.Type)))
	k.CreatedBy.ID = in.str(k.CreatedBy.ID)
	k.CreatedBy.Name = in.str(k.CreatedBy.Name)
	for i, p := range k.Permissions {
		k.Permissions[i] = in.str(p)
	}
}
