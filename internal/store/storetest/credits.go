package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// creditAccounts makes, in a fresh workspace, a key and an identity with the given credits (nil:
// unlimited), and returns their accounts: the key's first.
func creditAccounts(t testing.TB, s store.Store, slug string, c func() *keyplane.Credits) []keyplane.CreditAccount {
	t.Helper()
	w := createWorkspace(t, s, slug, at(0))
	idn := newIdentity(w, "cus_"+slug, at(0), func(i *keyplane.Identity) { i.Credits = c() })
	insertIdentities(t, s, idn)
	k := newKey(w, at(time.Second), func(k *keyplane.APIKey) { k.Credits = c() })
	insertKeys(t, s, k)
	return []keyplane.CreditAccount{{WorkspaceID: w.ID, KeyID: k.ID}, {WorkspaceID: w.ID, IdentityID: idn.ID}}
}

func accountName(a keyplane.CreditAccount) string {
	if a.IdentityID != "" {
		return "Identity"
	}
	return "Key"
}

func getCredits(t testing.TB, s store.Store, a keyplane.CreditAccount) *keyplane.Credits {
	t.Helper()
	c, err := s.GetCredits(t.Context(), a)
	noErr(t, "GetCredits", err)
	return c
}

// testCredits: every call on a balance, for a key's and an identity's: GetCredits, SetCredits (the
// epoch moves on), AdjustCredits (clamped, ExhaustedAt cleared by an increment), TakeCredits (all,
// part or nothing), ReturnCredits (only to the same epoch), RefillCredits (once), MarkCreditsExhausted
// (once per exhaustion); unlimited and absent accounts and other workspaces' are told apart.
func testCredits(t *testing.T, s store.Store) {
	for i, a := range creditAccounts(t, s, "acme", func() *keyplane.Credits { return nil }) {
		other := creditAccounts(t, s, "globex"+string(rune('0'+i)), func() *keyplane.Credits { return &keyplane.Credits{Remaining: 5} })[i]
		t.Run(accountName(a), func(t *testing.T) { creditsOf(t, s, a, other) })
	}
}

func creditsOf(t *testing.T, s store.Store, a, other keyplane.CreditAccount) {
	ctx := t.Context()
	tx := func(fn func(tx store.Tx) error) error { return s.InTx(ctx, a.WorkspaceID, fn) }

	// Unlimited: no balance, and nothing to take, adjust, return, refill or mark.
	if c := getCredits(t, s, a); c != nil {
		t.Fatalf("GetCredits(unlimited) = %+v", c)
	}
	_, err := s.TakeCredits(ctx, a, keyplane.CreditTake{Need: 1, Want: 1})
	wantErr(t, "TakeCredits(unlimited)", err, store.ErrNotFound)
	err = tx(func(tx store.Tx) error { _, err := tx.AdjustCredits(ctx, a, 1); return err })
	wantErr(t, "AdjustCredits(unlimited)", err, store.ErrNotFound)
	ok, err := s.ReturnCredits(ctx, a, 1, 0)
	noErr(t, "ReturnCredits(unlimited)", err)
	equal(t, "ReturnCredits(unlimited)", ok, false)

	// Another workspace's account of the same id is absent.
	wrong := other
	wrong.WorkspaceID = a.WorkspaceID
	_, err = s.GetCredits(ctx, wrong)
	wantErr(t, "GetCredits(other workspace)", err, store.ErrNotFound)
	_, err = s.TakeCredits(ctx, wrong, keyplane.CreditTake{Need: 1, Want: 1})
	wantErr(t, "TakeCredits(other workspace)", err, store.ErrNotFound)
	err = tx(func(tx store.Tx) error { return tx.SetCredits(ctx, wrong, &keyplane.Credits{Remaining: 1}) })
	wantErr(t, "SetCredits(other workspace)", err, store.ErrNotFound)
	if c := getCredits(t, s, other); c.Remaining != 5 {
		t.Errorf("the other workspace's balance is %d, want 5", c.Remaining)
	}

	// Set: the whole balance, and the epoch moves on.
	set := monthly(10, 100, 31, at(24*time.Hour))
	set.LastRefillAt, set.ExhaustedAt, set.Epoch = ptr(at(-time.Hour)), ptr(at(time.Minute)), 42
	noErr(t, "SetCredits", tx(func(tx store.Tx) error { return tx.SetCredits(ctx, a, set) }))
	if set.Epoch != 1 { // 0 at insert
		t.Errorf("SetCredits: epoch %d, want 1", set.Epoch)
	}
	epoch := set.Epoch
	got := getCredits(t, s, a)
	equal(t, "credits after SetCredits", got, set)

	// Take: all of want, then what is left, then nothing; need 0 with nothing left takes nothing.
	// Each says when the balance's refill is due, taken or not, for the service to apply it.
	next := set.NextRefillAt
	g, err := s.TakeCredits(ctx, a, keyplane.CreditTake{Need: 1, Want: 4})
	noErr(t, "TakeCredits", err)
	equal(t, "TakeCredits(1, 4) of 10", g, keyplane.CreditGrant{Got: 4, Remaining: 6, Epoch: epoch, NextRefillAt: next})
	g, err = s.TakeCredits(ctx, a, keyplane.CreditTake{Need: 2, Want: 10})
	noErr(t, "TakeCredits", err)
	equal(t, "TakeCredits(2, 10) of 6", g, keyplane.CreditGrant{Got: 6, Remaining: 0, Epoch: epoch, NextRefillAt: next})
	g, err = s.TakeCredits(ctx, a, keyplane.CreditTake{Need: 1, Want: 1})
	noErr(t, "TakeCredits", err)
	equal(t, "TakeCredits(1, 1) of 0", g, keyplane.CreditGrant{Got: 0, Remaining: 0, Epoch: epoch, NextRefillAt: next})
	g, err = s.TakeCredits(ctx, a, keyplane.CreditTake{Need: 0, Want: 0})
	noErr(t, "TakeCredits", err)
	equal(t, "TakeCredits(0, 0) of 0", g, keyplane.CreditGrant{Got: 0, Remaining: 0, Epoch: epoch, NextRefillAt: next})
	if _, err := s.TakeCredits(ctx, a, keyplane.CreditTake{Need: 2, Want: 1}); err == nil {
		t.Error("TakeCredits(need > want) succeeded")
	}

	// Exhausted: marked once, for this epoch only.
	mark := func(epoch int64, at time.Time) bool {
		var ok bool
		noErr(t, "MarkCreditsExhausted", tx(func(tx store.Tx) error {
			var err error
			ok, err = tx.MarkCreditsExhausted(ctx, a, epoch, at)
			return err
		}))
		return ok
	}
	// The set's ExhaustedAt is still there: set it clear first.
	clear := *getCredits(t, s, a)
	clear.ExhaustedAt = nil
	noErr(t, "SetCredits", tx(func(tx store.Tx) error { return tx.SetCredits(ctx, a, &clear) }))
	epoch = clear.Epoch
	equal(t, "MarkCreditsExhausted(old epoch)", mark(epoch-1, at(time.Hour)), false)
	equal(t, "MarkCreditsExhausted", mark(epoch, at(time.Hour)), true)
	equal(t, "MarkCreditsExhausted again", mark(epoch, at(2*time.Hour)), false)
	equal(t, "ExhaustedAt", getCredits(t, s, a).ExhaustedAt, ptr(at(time.Hour)))

	// Return: to the same epoch only.
	ok, err = s.ReturnCredits(ctx, a, 3, epoch-1)
	noErr(t, "ReturnCredits(old epoch)", err)
	equal(t, "ReturnCredits(old epoch)", ok, false)
	ok, err = s.ReturnCredits(ctx, a, 3, epoch)
	noErr(t, "ReturnCredits", err)
	equal(t, "ReturnCredits", ok, true)
	equal(t, "remaining after a return", getCredits(t, s, a).Remaining, int64(3))

	// Adjust: clamped at 0 and at MaxCredits; an increment clears ExhaustedAt; the epoch stays.
	adjust := func(delta int64) *keyplane.Credits {
		var c *keyplane.Credits
		noErr(t, "AdjustCredits", tx(func(tx store.Tx) error {
			var err error
			c, err = tx.AdjustCredits(ctx, a, delta)
			return err
		}))
		return c
	}
	c := adjust(-10)
	if c.Remaining != 0 || c.Epoch != epoch || c.ExhaustedAt == nil {
		t.Errorf("AdjustCredits(-10) of 3 = %+v, want 0 at epoch %d, still exhausted", c, epoch)
	}
	c = adjust(5)
	if c.Remaining != 5 || c.Epoch != epoch || c.ExhaustedAt != nil || c.Refill == nil {
		t.Errorf("AdjustCredits(+5) = %+v, want 5 at epoch %d, not exhausted, refill kept", c, epoch)
	}
	equal(t, "AdjustCredits(+max)", adjust(1<<62).Remaining, int64(keyplane.MaxCredits))
	equal(t, "AdjustCredits(-huge)", adjust(-1<<62).Remaining, int64(0))
	zero := *c
	zero.Remaining = 0
	equal(t, "credits after adjusting", getCredits(t, s, a), &zero)
	ok, err = s.ReturnCredits(ctx, a, keyplane.MaxCredits, epoch)
	noErr(t, "ReturnCredits(max)", err)
	equal(t, "ReturnCredits(max) at the balance's epoch", ok, true)
	ok, err = s.ReturnCredits(ctx, a, keyplane.MaxCredits, epoch)
	noErr(t, "ReturnCredits(max) again", err)
	equal(t, "ReturnCredits(max) again, capped at the maximum", ok, true)
	equal(t, "remaining returned past the maximum", getCredits(t, s, a).Remaining, int64(keyplane.MaxCredits))

	// Refill: applies once when due, not before, and moves the epoch on.
	refill := func(due time.Time, amount int64, next *time.Time) bool {
		var ok bool
		noErr(t, "RefillCredits", tx(func(tx store.Tx) error {
			var err error
			ok, err = tx.RefillCredits(ctx, a, due, amount, next)
			return err
		}))
		return ok
	}
	noErr(t, "SetCredits", tx(func(tx store.Tx) error { return tx.SetCredits(ctx, a, monthly(2, 100, 1, at(24*time.Hour))) }))
	before := getCredits(t, s, a)
	equal(t, "RefillCredits(not due yet)", refill(at(23*time.Hour), 100, ptr(at(48*time.Hour))), false)
	equal(t, "RefillCredits", refill(at(24*time.Hour), 100, ptr(at(48*time.Hour))), true)
	equal(t, "RefillCredits again", refill(at(24*time.Hour), 100, ptr(at(48*time.Hour))), false)
	after := getCredits(t, s, a)
	want := *before
	want.Remaining, want.LastRefillAt, want.NextRefillAt, want.Epoch = 100, ptr(at(24*time.Hour)), ptr(at(48*time.Hour)), before.Epoch+1
	equal(t, "credits after a refill", after, &want)
	// Credits taken before the refill are not given back to the new balance.
	ok, err = s.ReturnCredits(ctx, a, 1, before.Epoch)
	noErr(t, "ReturnCredits(before the refill)", err)
	equal(t, "ReturnCredits(before the refill)", ok, false)

	// Unlimited again: the epoch still moves on, and nothing is due.
	noErr(t, "SetCredits(nil)", tx(func(tx store.Tx) error { return tx.SetCredits(ctx, a, nil) }))
	if c := getCredits(t, s, a); c != nil {
		t.Errorf("GetCredits after SetCredits(nil) = %+v", c)
	}
	equal(t, "RefillCredits(unlimited)", refill(at(72*time.Hour), 100, nil), false)
	noErr(t, "SetCredits", tx(func(tx store.Tx) error { return tx.SetCredits(ctx, a, &keyplane.Credits{Remaining: 1}) }))
	if c := getCredits(t, s, a); c.Epoch != after.Epoch+2 {
		t.Errorf("epoch after two sets %d, want %d", c.Epoch, after.Epoch+2)
	}
}

// testTakeCreditsShare: a take with a Share takes, beyond its need, at most that share of the
// balance it finds (rounded down), and never less than the need; without one, up to want.
func testTakeCreditsShare(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, a := range creditAccounts(t, s, "share", func() *keyplane.Credits { return &keyplane.Credits{Remaining: 10_000} }) {
		t.Run(accountName(a), func(t *testing.T) {
			steps := []struct {
				take      keyplane.CreditTake
				got, left int64
			}{
				{keyplane.CreditTake{Need: 1, Want: 64, Share: 0.005}, 50, 9950},   // 10,000 / 200
				{keyplane.CreditTake{Need: 1, Want: 20, Share: 0.005}, 20, 9930},   // want is less
				{keyplane.CreditTake{Need: 60, Want: 64, Share: 0.005}, 60, 9870},  // need is more
				{keyplane.CreditTake{Need: 0, Want: 9000, Share: 0.5}, 4935, 4935}, // half, rounded down
				{keyplane.CreditTake{Need: 1, Want: 9000}, 4935, 0},                // no share: all there is
			}
			for _, st := range steps {
				g, err := s.TakeCredits(ctx, a, st.take)
				noErr(t, "TakeCredits", err)
				if g.Got != st.got || g.Remaining != st.left {
					t.Errorf("TakeCredits(%+v) = got %d, %d left; want %d, %d left", st.take, g.Got, g.Remaining, st.got, st.left)
				}
			}
		})
	}
}

// testTakeCreditsConcurrently: see CheckNoOverspend.
func testTakeCreditsConcurrently(t *testing.T, s store.Store) { CheckNoOverspend(t, s) }

// CheckNoOverspend takes credits from a balance of 1,000, of a key and of an identity, from many
// goroutines spread over nodes (stores sharing one database; the first makes the accounts) until
// none are left: what they got sums to exactly 1,000, and no take ever got more than was left.
func CheckNoOverspend(t *testing.T, nodes ...store.Store) {
	const balance, workers = 1000, 16
	for _, a := range creditAccounts(t, nodes[0], "spend", func() *keyplane.Credits { return &keyplane.Credits{Remaining: balance} }) {
		t.Run(accountName(a), func(t *testing.T) {
			var got, takes atomic.Int64
			var wg sync.WaitGroup
			for i := range workers {
				s := nodes[i%len(nodes)]
				wg.Go(func() {
					for n := int64(0); ; n++ {
						// need ≤ want, both varying, so that takes of part of what is left happen too.
						need := 1 + n%3
						// Some bounded by a share of the balance, as a node's takes are.
						take := keyplane.CreditTake{Need: need, Want: need + int64(i%5)*20, Share: []float64{0, 0.005, 0.05}[i%3]}
						g, err := s.TakeCredits(t.Context(), a, take)
						if err != nil {
							t.Errorf("TakeCredits: %v", err)
							return
						}
						if g.Got == 0 {
							if g.Remaining >= need {
								t.Errorf("TakeCredits(%d) got nothing with %d left", need, g.Remaining)
							}
							if g.Remaining == 0 {
								return
							}
							continue
						}
						if g.Got < need || g.Remaining < 0 || g.Got > max(need, (g.Remaining+g.Got)/take.ShareDivisor()) {
							t.Errorf("TakeCredits(%+v): %+v", take, g)
						}
						takes.Add(1)
						if got.Add(g.Got) > balance {
							t.Errorf("overspent: %d taken of %d", got.Load(), balance)
						}
					}
				})
			}
			wg.Wait()
			if got.Load() != balance {
				t.Errorf("%d credits taken in %d takes, want exactly %d", got.Load(), takes.Load(), balance)
			}
			if c := getCredits(t, nodes[0], a); c.Remaining != 0 {
				t.Errorf("%d left, want 0", c.Remaining)
			}
		})
	}
}

// testDueRefills: the accounts of every workspace whose refill is due, soonest first, up to limit;
// not those due later, without a refill, or unlimited.
func testDueRefills(t *testing.T, s store.Store) {
	ctx := t.Context()
	due := func(d time.Duration) func() *keyplane.Credits {
		return func() *keyplane.Credits { return monthly(0, 10, 1, at(d)) }
	}
	a := creditAccounts(t, s, "acme", due(time.Hour))                                     // key and identity due at +1h
	b := creditAccounts(t, s, "globex", due(-time.Hour))                                  // due at -1h
	creditAccounts(t, s, "later", due(48*time.Hour))                                      // not due
	creditAccounts(t, s, "flat", func() *keyplane.Credits { return &keyplane.Credits{} }) // no refill
	creditAccounts(t, s, "free", func() *keyplane.Credits { return nil })                 // unlimited
	got, err := s.DueRefills(ctx, at(2*time.Hour), 10)
	noErr(t, "DueRefills", err)
	if len(got) != 4 {
		t.Fatalf("DueRefills = %+v, want 4 accounts", got)
	}
	in := func(list []keyplane.CreditAccount, x keyplane.CreditAccount) bool {
		for _, y := range list {
			if x == y {
				return true
			}
		}
		return false
	}
	for i, x := range got {
		if want := b; i >= 2 {
			want = a
			if !in(want, x) {
				t.Errorf("DueRefills[%d] = %+v, want one of %+v", i, x, want)
			}
		} else if !in(want, x) {
			t.Errorf("DueRefills[%d] = %+v, want one of %+v", i, x, want)
		}
	}
	got, err = s.DueRefills(ctx, at(2*time.Hour), 1)
	noErr(t, "DueRefills(limit 1)", err)
	if len(got) != 1 || !in(b, got[0]) {
		t.Errorf("DueRefills(limit 1) = %+v, want one of %+v", got, b)
	}
	got, err = s.DueRefills(ctx, at(-2*time.Hour), 10)
	noErr(t, "DueRefills(none due)", err)
	equal(t, "DueRefills(none due)", got, []keyplane.CreditAccount{})
}
