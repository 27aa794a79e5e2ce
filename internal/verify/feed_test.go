package verify_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// feedSetup is setup with a fake clock and a TTL, for the feed's states.
func feedSetup(t *testing.T, driver string, o verify.Options) (*fixture, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Now()}
	st := &counting{Store: storetest.Open(t, driver)}
	o.KeyPrefix, o.Now = "kp", clk.now
	ver, err := verify.New(st, o)
	if err != nil {
		t.Fatal(err)
	}
	svc := servicetest.New(t, st, service.Options{Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil), Forget: ver.Forget, Admit: ver.Admit})
	w, err := svc.CreateWorkspace(context.Background(), keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, ver: ver, svc: svc, ws: w.ID}, clk
}

func (f *fixture) verifyCode(t *testing.T, v string) keyplane.VerifyCode {
	t.Helper()
	r, err := f.ver.Verify(context.Background(), v, req)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r.Code
}

// TestFeedTrustedMeansNoTTL: while the feed is trusted, a cached key, known or unknown, is not read
// again however old it is; once the feed is down, an entry answers for the TTL from then and is read
// again after (a change made behind the verifier's back is seen within the TTL of the break), and one
// read since answers for the TTL from its read;
// when the feed is back after a Purge, entries answer again without a TTL.
func TestFeedTrustedMeansNoTTL(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			const ttl = time.Minute
			f, clk := feedSetup(t, d, verify.Options{TTL: ttl})
			ctx := context.Background()
			k, v := f.key(t)
			unknown := keyformat.Generate("kp", "sk", "live")
			f.ver.FeedUp()
			if c := f.verifyCode(t, v); c != keyplane.VerifyValid {
				t.Fatalf("verify: %s", c)
			}
			f.verifyCode(t, unknown)
			reads := f.st.lookups.Load()
			clk.add(24 * time.Hour)
			for range 10 {
				if c := f.verifyCode(t, v); c != keyplane.VerifyValid {
					t.Fatalf("verify after a day: %s", c)
				}
				if c := f.verifyCode(t, unknown); c != keyplane.VerifyNotFound {
					t.Fatalf("unknown after a day: %s", c)
				}
			}
			if n := f.st.lookups.Load() - reads; n != 0 {
				t.Fatalf("%d store reads a day later while the feed is trusted, want 0", n)
			}

			// The feed breaks, and a change is made that this verifier is not told of. What the
			// feed confirmed until it broke answers for a TTL from then, and is read again after.
			f.ver.FeedDown()
			disableBehindTheBack(t, f.st.Store, f.ws, k.ID)
			reads = f.st.lookups.Load()
			clk.add(ttl - time.Second)
			if c := f.verifyCode(t, v); c != keyplane.VerifyValid || f.st.lookups.Load() != reads {
				t.Fatalf("feed down less than a TTL ago: %s after %d reads, want VALID without a read", c, f.st.lookups.Load()-reads)
			}
			clk.add(time.Second)
			if c := f.verifyCode(t, v); c != keyplane.VerifyDisabled {
				t.Fatalf("feed down a TTL ago: %s, want DISABLED (read again)", c)
			}
			reads = f.st.lookups.Load()
			clk.add(ttl / 2)
			f.verifyCode(t, v)
			if n := f.st.lookups.Load() - reads; n != 0 {
				t.Fatalf("feed down, entry read half a TTL ago: %d reads, want 0", n)
			}
			clk.add(ttl)
			f.verifyCode(t, v)
			if n := f.st.lookups.Load() - reads; n != 1 {
				t.Fatalf("feed down, entry read more than a TTL ago: %d reads, want 1", n)
			}

			// Back: Purge (what the feed's owner does first), then trusted again.
			f.ver.Purge()
			f.ver.FeedUp()
			reads = f.st.lookups.Load()
			f.verifyCode(t, v)
			clk.add(24 * time.Hour)
			f.verifyCode(t, v)
			if n := f.st.lookups.Load() - reads; n != 1 {
				t.Fatalf("after Purge and FeedUp: %d reads, want 1 (the Purge's)", n)
			}
			_ = ctx
		})
	}
}

// disableBehindTheBack disables a key in the store directly, as another node would, without telling
// any verifier.
func disableBehindTheBack(t *testing.T, st store.Store, ws, keyID string) {
	t.Helper()
	err := st.InTx(context.Background(), ws, func(tx store.Tx) error {
		k, err := tx.GetAPIKey(context.Background(), ws, keyID)
		if err != nil {
			return err
		}
		k.Enabled = false
		return tx.UpdateAPIKey(context.Background(), k)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// gated blocks verification reads until released, to put a Forget in the middle of one.
type gated struct {
	store.Store
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gated) VerificationKey(ctx context.Context, h []byte) (*keyplane.APIKey, *time.Time, error) {
	k, s, err := g.Store.VerificationKey(ctx, h)
	g.once.Do(func() {
		close(g.started)
		<-g.release
	})
	return k, s, err
}

// TestForgetDuringReadIsNotUndone: a read that began before a change and ends after its Forget must
// not leave what it read in the cache, where, with no TTL while the feed is trusted, the old state
// would answer for good.
func TestForgetDuringReadIsNotUndone(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			g := &gated{Store: storetest.Open(t, d), started: make(chan struct{}), release: make(chan struct{})}
			ver, err := verify.New(g, verify.Options{KeyPrefix: "kp"})
			if err != nil {
				t.Fatal(err)
			}
			ver.FeedUp()
			svc := servicetest.New(t, g, service.Options{Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil), Forget: ver.Forget})
			w, err := svc.CreateWorkspace(ctx, keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
			if err != nil {
				t.Fatal(err)
			}
			k, v, err := svc.CreateAPIKey(ctx, keyplane.System("test"), w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
			if err != nil {
				t.Fatal(err)
			}
			first := make(chan keyplane.VerifyCode)
			go func() {
				r, _ := ver.Verify(ctx, v, &keyplane.VerifyRequest{})
				first <- r.Code
			}()
			<-g.started // the read has the key as valid
			if _, err := svc.RevokeAPIKey(ctx, keyplane.System("test"), w.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			close(g.release)
			<-first // it may answer VALID: it began before the revocation
			if r, err := ver.Verify(ctx, v, &keyplane.VerifyRequest{}); err != nil || r.Code != keyplane.VerifyRevoked {
				t.Fatalf("after the revocation: %s %v, want REVOKED", r.Code, err)
			}
		})
	}
}
