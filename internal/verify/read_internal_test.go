package verify

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// oneKey stores one key, under any digest, and counts its reads.
type oneKey struct{ reads atomic.Int64 }

func (o *oneKey) VerificationKey(context.Context, []byte) (*keyplane.APIKey, *time.Time, error) {
	o.reads.Add(1)
	return &keyplane.APIKey{ID: "key_1", WorkspaceID: "ws_1", Name: "k", KeyType: keyplane.KeyTypeSecret,
		Environment: keyplane.EnvLive, Enabled: true}, nil, nil
}

func (o *oneKey) GetRootKeyByHash(context.Context, []byte) (*keyplane.RootKey, error) {
	return nil, store.ErrNotFound
}

func (o *oneKey) FindAPIKey(context.Context, string) (*keyplane.APIKey, error) {
	return nil, store.ErrNotFound
}

func (o *oneKey) ListSecrets(context.Context, string) ([]keyplane.Secret, error) { return nil, nil }

// TestReadTakesWhatAnotherFilled: a verification that missed just before another's read filled the
// cache starts a flight of its own once that one has ended, and takes what was filled rather than
// reading the row again (under load, 64 concurrent misses of one key read it up to 10 times before).
// An entry past its TTL, or invalidated, is read again.
func TestReadTakesWhatAnotherFilled(t *testing.T) {
	st := &oneKey{}
	now := time.Unix(1_800_000_000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	v, err := New(st, Options{KeyPrefix: "kp", TTL: time.Minute, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	h := keyformat.Hash(keyformat.Generate("kp", "sk", "live"))
	load := func(ctx context.Context) (entry, error) { return v.readKey(ctx, h) }
	readNow := func() {
		t.Helper()
		e, err := read(t.Context(), v, v.keys, h, h, false, string(h[:]), load)
		if err != nil || e.key == nil || e.key.ID != "key_1" {
			t.Fatalf("read = %+v, %v", e, err)
		}
	}
	readNow()
	readNow() // the second verification's flight, begun after the first's ended
	if n := st.reads.Load(); n != 1 {
		t.Fatalf("two reads one after the other read the store %d times, want 1", n)
	}
	clock.Add(int64(2 * time.Minute)) // past the TTL, while the feed is down: read again
	readNow()
	if n := st.reads.Load(); n != 2 {
		t.Fatalf("after the TTL: %d reads, want 2", n)
	}
	v.Forget(h[:])
	readNow()
	if n := st.reads.Load(); n != 3 {
		t.Fatalf("after an invalidation: %d reads, want 3", n)
	}
}
