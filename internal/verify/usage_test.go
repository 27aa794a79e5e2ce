package verify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// usageSetup is setup with a Bank on the service, as serve wires it.
func usageSetup(tb testing.TB, driver string, mods ...func(*verify.Options)) *fixture {
	tb.Helper()
	st := &counting{Store: storetest.Open(tb, driver)}
	var ver *verify.Verifier
	svc := servicetest.New(tb, st, service.Options{Catalog: servicetest.Catalog(tb, []string{"orders:read"}, nil),
		Forget: func(h ...[]byte) { ver.Forget(h...) }})
	bank := credits.NewBank(svc, credits.Options{NoLoop: true})
	tb.Cleanup(func() { bank.Close(context.Background()) })
	o := verify.Options{KeyPrefix: "kp", Bank: bank}
	for _, m := range mods {
		m(&o)
	}
	var err error
	if ver, err = verify.New(st, o); err != nil {
		tb.Fatal(err)
	}
	w, err := svc.CreateWorkspace(context.Background(), keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{st: st, ver: ver, svc: svc, ws: w.ID}
}

func (f *fixture) usageKey(tb testing.TB, in service.CreateKeyInput) (*keyplane.APIKey, string) {
	tb.Helper()
	in.Name, in.KeyType = "metered", keyplane.KeyTypeSecret
	k, v, err := f.svc.CreateAPIKey(context.Background(), keyplane.System("test"), f.ws, in)
	if err != nil {
		tb.Fatal(err)
	}
	return k, v
}

func n64(n int64) *int64 { return &n }

func verifyOK(tb testing.TB, f *fixture, value string, req *keyplane.VerifyRequest) verify.Result {
	tb.Helper()
	r, err := f.ver.Verify(context.Background(), value, req)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// names lists a result's limit decisions as name=allowed.
func names(r *verify.Result) []string {
	var out []string
	for i := range r.Limits.Len() {
		d := r.Limits.At(i)
		s := d.Name + "="
		if d.Allowed {
			s += "ok"
		} else {
			s += "refused"
		}
		out = append(out, s)
	}
	return out
}

func same(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNamedLimits: the default limit and the auto-applied named ones count every verification;
// the others only those that name them, at their cost; a refusal stops at the first.
func TestNamedLimits(t *testing.T) {
	f := usageSetup(t, "sqlite")
	_, v := f.usageKey(t, service.CreateKeyInput{
		RateLimit: &keyplane.RateLimit{Limit: 100, WindowMs: 60_000},
		RateLimits: []keyplane.NamedRateLimit{
			{Name: "burst", Limit: 3, WindowMs: 60_000, AutoApply: true},
			{Name: "tokens", Limit: 10, WindowMs: 60_000},
		},
	})
	plain := &keyplane.VerifyRequest{Cost: 1}
	r := verifyOK(t, f, v, plain)
	if r.Code != keyplane.VerifyValid || !same(names(&r), []string{"default=ok", "burst=ok"}) {
		t.Fatalf("plain: %s %v; want VALID with default and burst", r.Code, names(&r))
	}
	if d, ok := r.Limits.Default(); !ok || d.Limit != 100 || d.Remaining != 99 {
		t.Errorf("default decision: %+v %v", d, ok)
	}
	tokens := &keyplane.VerifyRequest{Limits: []keyplane.LimitCost{{Name: "tokens", Cost: 7}}}
	r = verifyOK(t, f, v, tokens)
	if r.Code != keyplane.VerifyValid || !same(names(&r), []string{"default=ok", "burst=ok", "tokens=ok"}) || r.Limits.At(2).Remaining != 3 {
		t.Fatalf("tokens 7: %s %v; want VALID, 3 tokens left", r.Code, names(&r))
	}
	// 7 more tokens do not fit: refused by tokens, after default and burst counted it.
	r = verifyOK(t, f, v, tokens)
	if r.Code != keyplane.VerifyRateLimited || !same(names(&r), []string{"default=ok", "burst=ok", "tokens=refused"}) {
		t.Fatalf("tokens 7 again: %s %v; want RATE_LIMITED by tokens", r.Code, names(&r))
	}
	if d, ok := r.Limits.Refused(); !ok || d.Name != "tokens" || d.RetryAfter <= 0 {
		t.Errorf("refused: %+v %v", d, ok)
	}
	// burst (3) is used up by the three verifications: the next is refused there, before tokens.
	r = verifyOK(t, f, v, &keyplane.VerifyRequest{Limits: []keyplane.LimitCost{{Name: "tokens", Cost: 1}}})
	if r.Code != keyplane.VerifyRateLimited || !same(names(&r), []string{"default=ok", "burst=refused"}) {
		t.Fatalf("fourth: %s %v; want RATE_LIMITED by burst, tokens not reached", r.Code, names(&r))
	}
	// Naming an auto-applied limit sets its cost: 0 checks it without counting, and passes with
	// nothing left (there is nothing to take).
	r = verifyOK(t, f, v, &keyplane.VerifyRequest{Limits: []keyplane.LimitCost{{Name: "burst", Cost: 0}, {Name: "default", Cost: 0}}})
	if r.Code != keyplane.VerifyValid || !same(names(&r), []string{"default=ok", "burst=ok"}) || r.Limits.At(1).Remaining != 0 {
		t.Fatalf("burst at cost 0 with none left: %s %v; want VALID, 0 left", r.Code, names(&r))
	}
	if d, _ := r.Limits.Default(); d.Remaining != 96 {
		t.Errorf("default at cost 0: %d remaining; want 96 (4 counted, this one not)", d.Remaining)
	}
	// A name neither the key nor an identity has: an error naming it, nothing counted.
	_, err := f.ver.Verify(context.Background(), v, &keyplane.VerifyRequest{Limits: []keyplane.LimitCost{
		{Name: "tokens", Cost: 1}, {Name: "nope", Cost: 1}, {Name: "other", Cost: 1}}})
	var u *verify.UnknownLimitError
	if !errors.Is(err, verify.ErrUnknownLimit) || !errors.As(err, &u) || !same(u.Names, []string{"nope", "other"}) || u.Indexes[0] != 1 {
		t.Fatalf("unknown names: %v; want ErrUnknownLimit naming nope and other", err)
	}
	// A key without a plan (only its default limit) knows "default" and nothing else.
	_, plainValue := f.usageKey(t, service.CreateKeyInput{RateLimit: &keyplane.RateLimit{Limit: 5, WindowMs: 1000}})
	if r := verifyOK(t, f, plainValue, &keyplane.VerifyRequest{Limits: []keyplane.LimitCost{{Name: "default", Cost: 2}}}); r.Code != keyplane.VerifyValid {
		t.Fatalf("default by name: %s", r.Code)
	} else if d, _ := r.Limits.Default(); d.Remaining != 3 {
		t.Errorf("default at cost 2: %d remaining; want 3", d.Remaining)
	}
	if _, err := f.ver.Verify(context.Background(), plainValue, &keyplane.VerifyRequest{Limits: []keyplane.LimitCost{{Name: "x", Cost: 1}}}); !errors.Is(err, verify.ErrUnknownLimit) {
		t.Errorf("unknown name on a plain key: %v", err)
	}
}

// TestCreditsSpent: a VALID verification spends its cost; USAGE_EXCEEDED when fewer are left
// (nothing spent); RATE_LIMITED comes first and spends nothing; other codes spend nothing.
func TestCreditsSpent(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := usageSetup(t, d)
			k, v := f.usageKey(t, service.CreateKeyInput{Credits: &service.CreditsInput{Remaining: n64(5)},
				RateLimit: &keyplane.RateLimit{Limit: 3, WindowMs: 60_000}})
			r := verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 2})
			if r.Code != keyplane.VerifyValid || !r.HasCredits || r.CreditsRemaining != 3 || r.CreditsSpent != 2 {
				t.Fatalf("cost 2 of 5: %+v", r)
			}
			r = verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 4})
			if r.Code != keyplane.VerifyUsageExceeded || r.CreditsRemaining != 3 || r.CreditsSpent != 0 {
				t.Fatalf("cost 4 of 3: %s remaining %d spent %d; want USAGE_EXCEEDED, 3, 0", r.Code, r.CreditsRemaining, r.CreditsSpent)
			}
			r = verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 0})
			if r.Code != keyplane.VerifyValid || r.CreditsRemaining != 3 || r.CreditsSpent != 0 {
				t.Fatalf("cost 0: %s remaining %d spent %d", r.Code, r.CreditsRemaining, r.CreditsSpent)
			}
			// Three verifications used the rate limit of 3: the next is RATE_LIMITED, not a spend.
			r = verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 1})
			if r.Code != keyplane.VerifyRateLimited || r.CreditsSpent != 0 || !r.HasCredits || r.CreditsRemaining != 3 {
				t.Fatalf("over the limit: %s spent %d remaining %d; want RATE_LIMITED, nothing spent, 3 reported", r.Code, r.CreditsSpent, r.CreditsRemaining)
			}
			// A disabled key spends nothing.
			if _, err := f.svc.UpdateAPIKey(context.Background(), keyplane.System("test"), f.ws, k.ID, service.KeyPatch{Enabled: keyplane.Some(false)}); err != nil {
				t.Fatal(err)
			}
			if r := verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 1}); r.Code != keyplane.VerifyDisabled || r.CreditsSpent != 0 {
				t.Fatalf("disabled: %s spent %d", r.Code, r.CreditsSpent)
			}
		})
	}
}

// TestUsageExceededWhenEmpty: a key whose balance is 0 answers USAGE_EXCEEDED, while a rate limit
// that refuses first answers RATE_LIMITED.
func TestUsageExceededWhenEmpty(t *testing.T) {
	f := usageSetup(t, "sqlite")
	_, v := f.usageKey(t, service.CreateKeyInput{Credits: &service.CreditsInput{Remaining: n64(0)},
		RateLimit: &keyplane.RateLimit{Limit: 1, WindowMs: 60_000}})
	if r := verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 1}); r.Code != keyplane.VerifyUsageExceeded || r.CreditsRemaining != 0 {
		t.Fatalf("empty balance: %s %d", r.Code, r.CreditsRemaining)
	}
	if r := verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 1}); r.Code != keyplane.VerifyRateLimited {
		t.Fatalf("empty balance over the limit: %s; want RATE_LIMITED (checked before credits)", r.Code)
	}
}

// TestIdentitySharedCredits: two keys of one identity spend its balance and count against its
// auto-applied limits together; a key with credits of its own spends both.
func TestIdentitySharedCredits(t *testing.T) {
	f := usageSetup(t, "sqlite")
	ctx := context.Background()
	i, err := f.svc.CreateIdentity(ctx, keyplane.System("test"), f.ws, service.IdentityInput{
		ExternalID: "cus_42", Meta: []byte(`{"plan":"pro"}`), Credits: &service.CreditsInput{Remaining: n64(10)},
		RateLimits: []keyplane.NamedRateLimit{{Name: "org", Limit: 1000, WindowMs: 60_000, AutoApply: true},
			{Name: "heavy", Limit: 2, WindowMs: 60_000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, va := f.usageKey(t, service.CreateKeyInput{IdentityID: keyplane.Some(i.ID)})
	_, vb := f.usageKey(t, service.CreateKeyInput{ExternalID: keyplane.Some("cus_42"), Credits: &service.CreditsInput{Remaining: n64(100)}})
	r := verifyOK(t, f, va, &keyplane.VerifyRequest{Cost: 4})
	if r.Code != keyplane.VerifyValid || r.CreditsRemaining != 6 || !same(names(&r), []string{"org=ok"}) {
		t.Fatalf("key a, cost 4: %s remaining %d limits %v", r.Code, r.CreditsRemaining, names(&r))
	}
	if r.Key.Identity == nil || r.Key.Identity.ExternalID != "cus_42" || a.IdentityID != i.ID {
		t.Fatalf("the key's identity: %+v", r.Key.Identity)
	}
	// Key b reports its own balance, and spends the identity's too.
	r = verifyOK(t, f, vb, &keyplane.VerifyRequest{Cost: 5, Limits: []keyplane.LimitCost{{Name: "heavy", Cost: 1}}})
	if r.Code != keyplane.VerifyValid || r.CreditsRemaining != 95 || !same(names(&r), []string{"org=ok", "heavy=ok"}) {
		t.Fatalf("key b, cost 5: %s remaining %d limits %v", r.Code, r.CreditsRemaining, names(&r))
	}
	if d := r.Limits.At(0); d.Remaining != 998 && d.Remaining != 999 {
		t.Errorf("org after two keys' verifications: %d remaining; want 998 (shared)", d.Remaining)
	}
	// The identity has 1 left: key b's cost 2 is refused, and its own balance is not spent.
	r = verifyOK(t, f, vb, &keyplane.VerifyRequest{Cost: 2})
	if r.Code != keyplane.VerifyUsageExceeded || r.CreditsRemaining != 95 {
		t.Fatalf("key b, cost 2 with 1 left on the identity: %s remaining %d; want USAGE_EXCEEDED, 95", r.Code, r.CreditsRemaining)
	}
	if r := verifyOK(t, f, va, &keyplane.VerifyRequest{Cost: 1}); r.Code != keyplane.VerifyValid || r.CreditsRemaining != 0 {
		t.Fatalf("key a, the last credit: %s %d", r.Code, r.CreditsRemaining)
	}
	if r := verifyOK(t, f, va, &keyplane.VerifyRequest{Cost: 1}); r.Code != keyplane.VerifyUsageExceeded {
		t.Fatalf("key a on an empty identity: %s", r.Code)
	}
}

// TestCreditsNeedABank: a verifier without a Bank does not let a key with credits through.
func TestCreditsNeedABank(t *testing.T) {
	f := setup(t, "sqlite")
	_, v, err := f.svc.CreateAPIKey(context.Background(), keyplane.System("test"), f.ws, service.CreateKeyInput{
		Name: "metered", KeyType: keyplane.KeyTypeSecret, Credits: &service.CreditsInput{Remaining: n64(5)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ver.Verify(context.Background(), v, &keyplane.VerifyRequest{Cost: 1}); !errors.Is(err, verify.ErrNoBank) || !errors.Is(err, verify.ErrUnavailable) {
		t.Fatalf("no bank: %v; want ErrNoBank (unavailable)", err)
	}
}

// BenchmarkVerifyCredits is the hot path of a usage-based key: a cached key with credits held
// locally and two auto-applied named limits besides its default one.
func BenchmarkVerifyCredits(b *testing.B) {
	// The limiter's clock runs 100 times faster than time, so that the highest limits there are (a
	// million a second) never refuse, however fast the machine.
	start := time.Now()
	f := usageSetup(b, "sqlite", func(o *verify.Options) {
		o.Now = func() time.Time { return start.Add(100 * time.Since(start)) }
	})
	_, v := f.usageKey(b, service.CreateKeyInput{
		Credits:   &service.CreditsInput{Remaining: n64(keyplane.MaxCredits)},
		RateLimit: &keyplane.RateLimit{Limit: 1_000_000, WindowMs: 1000},
		RateLimits: []keyplane.NamedRateLimit{
			{Name: "api", Limit: 1_000_000, WindowMs: 1000, AutoApply: true},
			{Name: "org", Limit: 1_000_000, WindowMs: 1000, AutoApply: true},
		},
	})
	req := &keyplane.VerifyRequest{Cost: 1}
	ctx := context.Background()
	for range 10_000 { // warm: the key cached, the block grown
		if r, err := f.ver.Verify(ctx, v, req); err != nil || r.Code != keyplane.VerifyValid {
			b.Fatalf("%v %v", r.Code, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r, _ := f.ver.Verify(ctx, v, req); r.Code != keyplane.VerifyValid {
			b.Fatal(r.Code)
		}
	}
}

// TestCreditsMadeUnlimited: a balance made unlimited while a node still caches the key as limited
// (its notice not arrived) lets verifications through: unlimited is the newer truth.
func TestCreditsMadeUnlimited(t *testing.T) {
	f := usageSetup(t, "sqlite")
	k, v := f.usageKey(t, service.CreateKeyInput{Credits: &service.CreditsInput{Remaining: n64(1)}})
	if r := verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 1}); r.Code != keyplane.VerifyValid || r.CreditsRemaining != 0 {
		t.Fatalf("the one credit: %s %d", r.Code, r.CreditsRemaining)
	}
	// Straight to the store: no notice reaches the verifier's cache.
	a := keyplane.CreditAccount{WorkspaceID: f.ws, KeyID: k.ID}
	if err := f.st.InTx(context.Background(), f.ws, func(tx store.Tx) error { return tx.SetCredits(context.Background(), a, nil) }); err != nil {
		t.Fatal(err)
	}
	r := verifyOK(t, f, v, &keyplane.VerifyRequest{Cost: 1})
	if r.Code != keyplane.VerifyValid || r.HasCredits || r.CreditsSpent != 0 {
		t.Fatalf("after the balance was made unlimited: %s credits %v spent %d; want VALID, no credits", r.Code, r.HasCredits, r.CreditsSpent)
	}
}
