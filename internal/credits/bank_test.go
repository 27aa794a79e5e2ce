package credits_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// clock is real time moved on by the test: blocks grow with real spend rates, and idleness is
// driven by advance.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

type fixture struct {
	st  store.Store
	svc *service.Service
	ws  string
	clk *clock
}

func setup(t *testing.T, driver string) *fixture {
	t.Helper()
	st := storetest.Open(t, driver)
	svc := servicetest.New(t, st, service.Options{})
	w, err := svc.CreateWorkspace(t.Context(), keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, svc: svc, ws: w.ID, clk: &clock{}}
}

// account makes a key with n credits and returns its account and epoch.
func (f *fixture) account(t *testing.T, n int64) credits.Charge {
	t.Helper()
	k, _, err := f.svc.CreateAPIKey(t.Context(), keyplane.System("test"), f.ws, service.CreateKeyInput{
		Name: "metered", KeyType: keyplane.KeyTypeSecret, Credits: &service.CreditsInput{Remaining: &n}})
	if err != nil {
		t.Fatal(err)
	}
	a := keyplane.CreditAccount{WorkspaceID: f.ws, KeyID: k.ID}
	return credits.Charge{Account: a, Epoch: f.balance(t, a).Epoch}
}

func (f *fixture) identity(t *testing.T, n int64) credits.Charge {
	t.Helper()
	i, err := f.svc.CreateIdentity(t.Context(), keyplane.System("test"), f.ws, service.IdentityInput{
		ExternalID: "cus_1", Credits: &service.CreditsInput{Remaining: &n}})
	if err != nil {
		t.Fatal(err)
	}
	a := keyplane.CreditAccount{WorkspaceID: f.ws, IdentityID: i.ID}
	return credits.Charge{Account: a, Epoch: f.balance(t, a).Epoch}
}

// balance reads an account's balance in the store.
func (f *fixture) balance(t *testing.T, a keyplane.CreditAccount) *keyplane.Credits {
	t.Helper()
	c, err := f.st.GetCredits(t.Context(), a)
	if err != nil || c == nil {
		t.Fatalf("GetCredits: %v %v", c, err)
	}
	return c
}

func (f *fixture) bank(t *testing.T) *credits.Bank {
	t.Helper()
	b := credits.NewBank(f.st, credits.Options{Now: f.clk.now, NoLoop: true})
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func spend(t *testing.T, b *credits.Bank, cost int64, ch ...credits.Charge) credits.Outcome {
	t.Helper()
	out, err := b.Spend(t.Context(), cost, ch)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// idle makes every account of the banks idle and sweeps them: the first sweep sees the last
// spends, the second, past the idle delay, gives back.
func (f *fixture) idle(t *testing.T, banks ...*credits.Bank) int64 {
	t.Helper()
	var given int64
	for _, b := range banks {
		given += b.Sweep(t.Context())
	}
	f.clk.advance(credits.DefaultIdle + time.Second)
	for _, b := range banks {
		given += b.Sweep(t.Context())
	}
	return given
}

// TestBankNoOverspend: 64 goroutines on two Banks (two nodes) sharing one store spend a balance of
// 1,000 one credit at a time until refused: exactly 1,000 spends succeed, and nothing is left in
// the store or held by the nodes once they are idle.
func TestBankNoOverspend(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := setup(t, d)
			ch := f.account(t, 1000)
			banks := []*credits.Bank{f.bank(t), f.bank(t)}
			var spent, refused atomic.Int64
			var wg sync.WaitGroup
			for g := range 64 {
				b := banks[g%2]
				wg.Go(func() {
					for {
						out, err := b.Spend(context.Background(), 1, []credits.Charge{ch})
						if err != nil {
							t.Error(err)
							return
						}
						if !out.OK {
							refused.Add(1)
							return
						}
						if out.Remaining[0] < 0 {
							t.Errorf("remaining %d after a spend", out.Remaining[0])
						}
						spent.Add(1)
					}
				})
			}
			wg.Wait()
			if spent.Load() != 1000 || refused.Load() != 64 {
				t.Fatalf("%d spends succeeded and %d were refused; want exactly 1000 and 64", spent.Load(), refused.Load())
			}
			if got := f.idle(t, banks...); got != 0 {
				t.Errorf("%d credits given back after an exhaustion; want 0", got)
			}
			if c := f.balance(t, ch.Account); c.Remaining != 0 {
				t.Errorf("store remaining %d; want 0", c.Remaining)
			}
		})
	}
}

// TestBankGivesBackWhenIdle: the spends of a node stop before the balance is used up; what it
// holds goes back to the store once it has been idle, so that the other node can spend it all.
func TestBankGivesBackWhenIdle(t *testing.T) {
	f := setup(t, "sqlite")
	ch := f.account(t, 1000)
	a, b := f.bank(t), f.bank(t)
	// a spends fast enough for its blocks to grow past what it needs.
	for range 300 {
		if out := spend(t, a, 1, ch); !out.OK {
			t.Fatal("refused with credits left")
		}
	}
	held := f.balance(t, ch.Account).Remaining
	if held > 700 {
		t.Fatalf("the store has %d after 300 spends; want at most 700", held)
	}
	if rem, ok := a.Remaining(ch.Account); !ok || rem != 700 {
		t.Errorf("node a sees %d (%v) remaining; want 700 (the store's and what it holds)", rem, ok)
	}
	// Not idle yet: nothing goes back.
	if got := a.Sweep(t.Context()); got != 0 {
		t.Fatalf("the first sweep gave back %d; want 0 (just used)", got)
	}
	f.idle(t, a)
	if c := f.balance(t, ch.Account); c.Remaining != 700 {
		t.Fatalf("store remaining %d after a went idle; want 700", c.Remaining)
	}
	var n int
	for spend(t, b, 1, ch).OK {
		n++
	}
	if n != 700 {
		t.Errorf("node b spent %d; want the 700 left", n)
	}
}

// TestBankEpochDropsBlocks: a set moves the balance's epoch on; the block a node held from before
// is dropped, never given back to the new balance.
func TestBankEpochDropsBlocks(t *testing.T) {
	f := setup(t, "sqlite")
	ch := f.account(t, 100_000)
	b := f.bank(t)
	for range 50 {
		spend(t, b, 1, ch)
	}
	if f.balance(t, ch.Account).Remaining == 100_000-50 {
		t.Fatal("no block taken ahead: the test needs one")
	}
	// A set to 500 moves the epoch on.
	if _, err := f.svc.ChangeKeyCredits(t.Context(), keyplane.System("test"), f.ws, ch.Account.KeyID,
		service.CreditsChange{Op: keyplane.CreditSet, Value: 500}); err != nil {
		t.Fatal(err)
	}
	set := f.balance(t, ch.Account)
	if set.Epoch <= ch.Epoch || set.Remaining != 500 {
		t.Fatalf("after the set: %+v; want 500 at a newer epoch than %d", set, ch.Epoch)
	}
	// A verifier that read the set spends at the new epoch: the old block is dropped and a new one
	// taken from the 500.
	now := credits.Charge{Account: ch.Account, Epoch: set.Epoch}
	out := spend(t, b, 10, now)
	if !out.OK || out.Remaining[0] != 490 {
		t.Fatalf("a spend of 10 at the new epoch: %+v; want 490 remaining", out)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c := f.balance(t, ch.Account); c.Remaining != 490 {
		t.Errorf("store remaining %d after Close; want 490 (the old block dropped, the new one given back)", c.Remaining)
	}

	// A node that still spends at the old epoch (its cache not yet told) holds an old block; once
	// the balance moved on, giving it back is refused by the store, and the balance stays as set.
	f2 := setup(t, "sqlite")
	ch2 := f2.account(t, 100_000)
	b2 := f2.bank(t)
	for range 50 {
		spend(t, b2, 1, ch2)
	}
	if _, err := f2.svc.ChangeKeyCredits(t.Context(), keyplane.System("test"), f2.ws, ch2.Account.KeyID,
		service.CreditsChange{Op: keyplane.CreditSet, Value: 500}); err != nil {
		t.Fatal(err)
	}
	if err := b2.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c := f2.balance(t, ch2.Account); c.Remaining != 500 {
		t.Errorf("store remaining %d after Close; want 500 (an old epoch's block is not given back)", c.Remaining)
	}
}

// TestBankCloseGivesBack: a clean shutdown returns every block, idle or not.
func TestBankCloseGivesBack(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := setup(t, d)
			ch := f.account(t, 1_000_000)
			b := credits.NewBank(f.st, credits.Options{}) // with its loop, on the real clock
			for range 1000 {
				spend(t, b, 3, ch)
			}
			if c := f.balance(t, ch.Account); c.Remaining == 1_000_000-3000 {
				t.Fatal("no block taken ahead: the test needs one")
			}
			if err := b.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if c := f.balance(t, ch.Account); c.Remaining != 1_000_000-3000 {
				t.Errorf("store remaining %d after Close; want %d", c.Remaining, 1_000_000-3000)
			}
			// Spends after Close take only what they need: nothing is held.
			spend(t, b, 5, ch)
			if c := f.balance(t, ch.Account); c.Remaining != 1_000_000-3005 {
				t.Errorf("store remaining %d after a spend past Close; want %d", c.Remaining, 1_000_000-3005)
			}
		})
	}
}

// TestBankTwoBalances: a spend from a key's and its identity's balances takes both or neither.
func TestBankTwoBalances(t *testing.T) {
	f := setup(t, "sqlite")
	key, idn := f.account(t, 10), f.identity(t, 5)
	b := f.bank(t)
	for i := range 5 {
		out := spend(t, b, 1, key, idn)
		if !out.OK || out.Remaining != [2]int64{int64(9 - i), int64(4 - i)} {
			t.Fatalf("spend %d: %+v", i+1, out)
		}
	}
	out := spend(t, b, 1, key, idn)
	if out.OK || out.Remaining != [2]int64{5, 0} {
		t.Fatalf("a spend the identity cannot cover: %+v; want refused, the key's 5 untouched", out)
	}
	// The key alone still has its 5.
	if out := spend(t, b, 5, key); !out.OK || out.Remaining[0] != 0 {
		t.Fatalf("the key's own 5: %+v", out)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if k, i := f.balance(t, key.Account).Remaining, f.balance(t, idn.Account).Remaining; k != 0 || i != 0 {
		t.Errorf("store: key %d, identity %d; want 0 and 0", k, i)
	}
	if _, err := b.Spend(t.Context(), 1, []credits.Charge{key, idn, key}); err == nil {
		t.Error("three balances in one spend: no error")
	}
}

// TestBankCostZero: a cost of 0 spends nothing, passes on an empty balance, and reports it.
func TestBankCostZero(t *testing.T) {
	f := setup(t, "sqlite")
	ch := f.account(t, 3)
	b := f.bank(t)
	if out := spend(t, b, 0, ch); !out.OK || out.Remaining[0] != 3 {
		t.Fatalf("cost 0: %+v; want OK, 3 remaining", out)
	}
	if out := spend(t, b, 3, ch); !out.OK || out.Remaining[0] != 0 {
		t.Fatalf("cost 3: %+v; want OK, 0 remaining", out)
	}
	if out := spend(t, b, 0, ch); !out.OK || out.Remaining[0] != 0 {
		t.Fatalf("cost 0 on an empty balance: %+v; want OK, 0 remaining", out)
	}
	if out := spend(t, b, 1, ch); out.OK {
		t.Fatalf("cost 1 on an empty balance: %+v; want refused", out)
	}
}

// TestBankStrandedBound: a node that stops spending still holds its block while another node runs
// the balance out; what it holds is at most 1 % of the grant, and goes back once it is idle.
func TestBankStrandedBound(t *testing.T) {
	f := setup(t, "sqlite")
	const grant = 100_000
	ch := f.account(t, grant)
	a, b := f.bank(t), f.bank(t)
	var spentA, spentB int64
	for range 60_000 {
		if !spend(t, a, 1, ch).OK {
			t.Fatal("node a refused with credits left")
		}
		spentA++
	}
	for spend(t, b, 1, ch).OK {
		spentB++
	}
	stranded := grant - spentA - spentB
	if stranded < 0 || stranded > grant/100 {
		t.Fatalf("node a holds %d at exhaustion; want 0 to %d (1 %% of the grant)", stranded, grant/100)
	}
	t.Logf("stranded at exhaustion: %d of %d", stranded, grant)
	if got := f.idle(t, a, b); got != stranded {
		t.Errorf("gave back %d once idle; want %d", got, stranded)
	}
	if c := f.balance(t, ch.Account); c.Remaining != stranded {
		t.Errorf("store remaining %d; want %d", c.Remaining, stranded)
	}
}

// TestBankPrefetch: a first spend of a balance takes more than it needs, so that the next uses of
// a key used now and then cost no take: 64 credits, but never more than Share of the balance.
func TestBankPrefetch(t *testing.T) {
	f := setup(t, "sqlite")
	b := f.bank(t)
	large := f.account(t, 1_000_000)
	if out := spend(t, b, 1, large); !out.OK || out.Remaining[0] != 999_999 {
		t.Fatalf("first spend: %+v", out)
	}
	if c := f.balance(t, large.Account); c.Remaining != 1_000_000-64 {
		t.Fatalf("store remaining %d after the first spend; want %d (64 taken)", c.Remaining, 1_000_000-64)
	}
	for range 63 {
		if out := spend(t, b, 1, large); !out.OK {
			t.Fatalf("spend: %+v", out)
		}
	}
	if c := f.balance(t, large.Account); c.Remaining != 1_000_000-64 {
		t.Fatalf("store remaining %d after 64 spends; want %d: the block covered them", c.Remaining, 1_000_000-64)
	}
	// A balance of 1,000: 0.5 % of it, 5 credits.
	small := f.account(t, 1000)
	if out := spend(t, b, 1, small); !out.OK || out.Remaining[0] != 999 {
		t.Fatalf("first spend of 1,000: %+v", out)
	}
	if c := f.balance(t, small.Account); c.Remaining != 995 {
		t.Fatalf("store remaining %d after the first spend of 1,000; want 995 (5 taken)", c.Remaining)
	}
	// A cost larger than the share is taken whole, and no more.
	tiny := f.account(t, 100)
	if out := spend(t, b, 7, tiny); !out.OK || out.Remaining[0] != 93 {
		t.Fatalf("first spend of 7 from 100: %+v", out)
	}
	if c := f.balance(t, tiny.Account); c.Remaining != 93 {
		t.Fatalf("store remaining %d after a spend of 7 from 100; want 93", c.Remaining)
	}
}

// TestBankHoldsLargeBalances: a block of a balance of at least HoldBalance is kept for Hold after
// its last spend, not for Idle; a smaller balance's goes back after Idle, as before.
func TestBankHoldsLargeBalances(t *testing.T) {
	f := setup(t, "sqlite")
	b := f.bank(t)
	// At the take, the large one has HoldBalance left, the small one one less.
	large, small := f.account(t, credits.HoldBalance+64), f.account(t, credits.HoldBalance+63)
	spend(t, b, 1, large)
	spend(t, b, 1, small)
	if got := f.idle(t, b); got != 63 { // 64 taken from each, 63 left in each block
		t.Fatalf("gave back %d after Idle; want 63 (the small balance's block alone)", got)
	}
	if c := f.balance(t, large.Account); c.Remaining != credits.HoldBalance {
		t.Fatalf("large balance: store remaining %d after Idle; want %d (still held)", c.Remaining, credits.HoldBalance)
	}
	if c := f.balance(t, small.Account); c.Remaining != credits.HoldBalance+62 {
		t.Fatalf("small balance: store remaining %d after Idle; want %d", c.Remaining, credits.HoldBalance+62)
	}
	f.clk.advance(credits.DefaultHold)
	if got := b.Sweep(t.Context()); got != 63 {
		t.Fatalf("gave back %d after Hold; want 63", got)
	}
	if c := f.balance(t, large.Account); c.Remaining != credits.HoldBalance+63 {
		t.Fatalf("large balance: store remaining %d after Hold; want %d", c.Remaining, credits.HoldBalance+63)
	}
}

// TestBankCloseGivesBackMany: Close gives back the blocks of many balances, side by side, every one.
func TestBankCloseGivesBackMany(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := setup(t, d)
			b := credits.NewBank(f.st, credits.Options{Now: f.clk.now, NoLoop: true})
			var chs []credits.Charge
			for range 20 { // a workspace's limit of keys
				ch := f.account(t, credits.HoldBalance)
				spend(t, b, 1, ch)
				chs = append(chs, ch)
			}
			if err := b.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, returns, held := b.Stats(); returns != 20 || held != 0 {
				t.Errorf("after Close: %d give-backs, %d balances held; want 20 and 0", returns, held)
			}
			for _, ch := range chs {
				if c := f.balance(t, ch.Account); c.Remaining != credits.HoldBalance-1 {
					t.Fatalf("store remaining %d after Close; want %d", c.Remaining, credits.HoldBalance-1)
				}
			}
		})
	}
}
