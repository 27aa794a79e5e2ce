package verify_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// outage is a real store whose verification reads fail while down is set, as PostgreSQL's do while
// it restarts.
type outage struct {
	store.Store
	down  atomic.Bool
	reads atomic.Int64
}

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (o *outage) VerificationKey(ctx context.Context, h []byte) (*keyplane.APIKey, *time.Time, error) {
	o.reads.Add(1)
	if o.down.Load() {
		return nil, nil, errDown
	}
	return o.Store.VerificationKey(ctx, h)
}

func (o *outage) GetRootKeyByHash(ctx context.Context, h []byte) (*keyplane.RootKey, error) {
	o.reads.Add(1)
	if o.down.Load() {
		return nil, errDown
	}
	return o.Store.GetRootKeyByHash(ctx, h)
}

// TestStaleIfError: with StaleIfError, keys and root keys read before an outage keep their last
// answer for that long past the TTL while reads fail, one failed read a second at most; a key never
// read fails with ErrUnavailable; once reads work, a stale entry is read again and a change made
// meanwhile (here behind the verifier's back, as another node's would be) is seen. Without it, the
// first failed read fails the verification.
func TestStaleIfError(t *testing.T) {
	ctx := context.Background()
	st := &outage{Store: storetest.Open(t, "sqlite")}
	clk := &testClock{t: time.Now()}
	const ttl, stale = time.Minute, 10 * time.Minute
	ver, err := verify.New(st, verify.Options{KeyPrefix: "kp", TTL: ttl, StaleIfError: stale, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := verify.New(st, verify.Options{KeyPrefix: "kp", TTL: ttl, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	svc := servicetest.New(t, st, service.Options{Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil)})
	w, err := svc.CreateWorkspace(ctx, keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	newKey := func() (*keyplane.APIKey, string) {
		k, v, err := svc.CreateAPIKey(ctx, keyplane.System("test"), w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
		if err != nil {
			t.Fatal(err)
		}
		return k, v
	}
	k, v := newKey()
	_, unread := newKey()
	_, root, err := svc.CreateRootKey(ctx, keyplane.System("test"), "verify", []string{keyplane.ScopeVerify})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, ver *verify.Verifier, value string, want keyplane.VerifyCode, wantErr bool) {
		t.Helper()
		r, err := ver.Verify(ctx, value, &keyplane.VerifyRequest{})
		if wantErr {
			if !errors.Is(err, verify.ErrUnavailable) {
				t.Fatalf("%s: got %s, %v; want ErrUnavailable", what, r.Code, err)
			}
			return
		}
		if err != nil || r.Code != want {
			t.Fatalf("%s: got %s, %v; want %s", what, r.Code, err, want)
		}
	}
	for _, vr := range []*verify.Verifier{ver, strict} {
		check("before the outage", vr, v, keyplane.VerifyValid, false)
		if rk, err := vr.RootKey(ctx, root); err != nil || rk == nil {
			t.Fatalf("root key before the outage: %v, %v", rk, err)
		}
	}

	st.down.Store(true)
	// Within the TTL nothing is read, with or without StaleIfError.
	check("cached, within the TTL", ver, v, keyplane.VerifyValid, false)
	clk.add(ttl + time.Second)
	check("unread key", ver, unread, "", true)
	reads := st.reads.Load()
	check("past the TTL", ver, v, keyplane.VerifyValid, false)
	if rk, err := ver.RootKey(ctx, root); err != nil || rk == nil {
		t.Fatalf("root key past the TTL: %v, %v", rk, err)
	}
	if got := st.reads.Load() - reads; got != 2 {
		t.Fatalf("%d reads for one stale key and one stale root key, want 2", got)
	}
	if ver.StaleServed() != 2 {
		t.Fatalf("StaleServed = %d, want 2", ver.StaleServed())
	}
	// The next second answers from the entries without trying the store again.
	reads = st.reads.Load()
	for range 50 {
		check("stale, retry not due", ver, v, keyplane.VerifyValid, false)
	}
	if got := st.reads.Load() - reads; got != 0 {
		t.Fatalf("%d reads within a second of a failed one, want 0", got)
	}
	clk.add(2 * time.Second)
	check("stale, retried", ver, v, keyplane.VerifyValid, false)
	if got := st.reads.Load() - reads; got != 1 {
		t.Fatalf("%d reads once the retry was due, want 1", got)
	}
	// Without StaleIfError the same lookups fail.
	check("strict, past the TTL", strict, v, "", true)
	if _, err := strict.RootKey(ctx, root); !errors.Is(err, verify.ErrUnavailable) {
		t.Fatalf("strict root key past the TTL: %v", err)
	}

	// Reads work again: the stale entry is read, and a revocation made meanwhile by another node is
	// seen on the first verification.
	if _, err := svc.RevokeAPIKey(ctx, keyplane.System("test"), w.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	check("still down, revoked behind its back", ver, v, keyplane.VerifyValid, false)
	st.down.Store(false)
	clk.add(2 * time.Second)
	check("back", ver, v, keyplane.VerifyRevoked, false)

	// Past TTL + StaleIfError, a failing read fails the verification.
	_, v2 := newKey()
	check("another key", ver, v2, keyplane.VerifyValid, false)
	st.down.Store(true)
	clk.add(ttl + stale + time.Second)
	check("past the stale window", ver, v2, "", true)
}

// waitingRead is a real store whose first verification read waits for open before it reads, and
// records whether the context that read was given had ended by then.
type waitingRead struct {
	store.Store
	entered, open chan struct{}
	calls         atomic.Int64
	ended         atomic.Bool
}

func (g *waitingRead) VerificationKey(ctx context.Context, h []byte) (*keyplane.APIKey, *time.Time, error) {
	if g.calls.Add(1) == 1 {
		close(g.entered)
		<-g.open
		g.ended.Store(ctx.Err() != nil)
	}
	return g.Store.VerificationKey(ctx, h)
}

// TestSharedReadOutlivesItsCaller: a key's read is shared by the verifications of it that arrive
// while it runs, so the one that started it going away (its client hung up, its deadline passed)
// must not end it: the others would all fail with its error.
func TestSharedReadOutlivesItsCaller(t *testing.T) {
	g := &waitingRead{Store: storetest.Open(t, "sqlite"), entered: make(chan struct{}), open: make(chan struct{})}
	ver, err := verify.New(g, verify.Options{KeyPrefix: "kp"})
	if err != nil {
		t.Fatal(err)
	}
	svc := servicetest.New(t, g, service.Options{Catalog: servicetest.Catalog(t, nil, nil), Forget: ver.Forget})
	sys := keyplane.System("test")
	w, err := svc.CreateWorkspace(t.Context(), sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	_, value, err := svc.CreateAPIKey(t.Context(), sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}

	first, hangUp := context.WithCancel(context.Background())
	type answer struct {
		r   verify.Result
		err error
	}
	firstDone, otherDone := make(chan answer, 1), make(chan answer, 1)
	go func() {
		r, err := ver.Verify(first, value, &keyplane.VerifyRequest{})
		firstDone <- answer{r, err}
	}()
	<-g.entered // the read is under way, started by the first verification
	go func() {
		r, err := ver.Verify(context.Background(), value, &keyplane.VerifyRequest{})
		otherDone <- answer{r, err}
	}()
	// Time for the other to join the read: should it not have, it reads alone and answers VALID
	// anyway, so the wait only makes the test stronger; the check of the read's context does not
	// depend on it.
	time.Sleep(50 * time.Millisecond)
	hangUp()
	close(g.open)
	for name, c := range map[string]chan answer{"the first": firstDone, "the other": otherDone} {
		if a := <-c; a.err != nil || a.r.Code != keyplane.VerifyValid {
			t.Errorf("%s verification: %v, %v; want VALID", name, a.r.Code, a.err)
		}
	}
	if g.ended.Load() {
		t.Error("the shared read's context ended with the verification that started it")
	}
}
