package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/store"
)

func idemRecord(scope, key, claim, body string, created time.Time) *store.IdempotencyRecord {
	return &store.IdempotencyRecord{Scope: scope, Key: key, Claim: claim, Fingerprint: []byte("fp:" + body),
		CreatedAt: created, LeaseUntil: created.Add(2 * time.Minute), ExpiresAt: created.Add(24 * time.Hour)}
}

// testIdempotencyKeys walks a record through its life: claimed, found while running, finished, found
// done with its answer, not taken over while it counts, taken over once expired or once a crashed
// run's lease ended, released, pruned.
func testIdempotencyKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := idemRecord("rk_1/ws_1", "k1", "c1", "a", at(0))
	ok, found, err := s.ClaimIdempotencyKey(ctx, first, at(0))
	noErr(t, "claim a new key", err)
	if !ok || found != nil {
		t.Fatalf("claim of a new key = %v, %+v; want true, nil", ok, found)
	}
	// The same pair again, while running: not claimed, the running record found as it is.
	again := idemRecord("rk_1/ws_1", "k1", "c2", "a", at(time.Second))
	ok, found, err = s.ClaimIdempotencyKey(ctx, again, at(time.Second))
	noErr(t, "claim while running", err)
	if ok || found == nil {
		t.Fatalf("claim while running = %v, %+v; want false and the record", ok, found)
	}
	equal(t, "running record", *found, store.IdempotencyRecord{Scope: "rk_1/ws_1", Key: "k1", Fingerprint: []byte("fp:a"), Claim: "c1",
		CreatedAt: at(0), LeaseUntil: at(2 * time.Minute), ExpiresAt: at(24 * time.Hour)})
	// Another scope, or another key, is another record.
	for _, r := range []*store.IdempotencyRecord{idemRecord("key_9", "k1", "c3", "a", at(0)), idemRecord("rk_1/ws_2", "k1", "c3", "a", at(0)), idemRecord("rk_1/ws_1", "k2", "c3", "a", at(0))} {
		ok, _, err := s.ClaimIdempotencyKey(ctx, r, at(0))
		noErr(t, "claim in another scope", err)
		if !ok {
			t.Errorf("claim of %s %s was refused: scopes or keys collide", r.Scope, r.Key)
		}
	}
	// Only the holder of the claim finishes it.
	wantErr(t, "finish with another claim", s.FinishIdempotencyKey(ctx, "rk_1/ws_1", "k1", "c2", 201, []byte("x")), store.ErrNotFound)
	noErr(t, "finish", s.FinishIdempotencyKey(ctx, "rk_1/ws_1", "k1", "c1", 201, []byte("sealed answer")))
	wantErr(t, "finish twice", s.FinishIdempotencyKey(ctx, "rk_1/ws_1", "k1", "c1", 500, []byte("other")), store.ErrNotFound)
	// Done, before its expiry, even with a lease long past: found with its answer, never taken over.
	ok, found, err = s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c4", "a", at(time.Hour)), at(time.Hour))
	noErr(t, "claim when done", err)
	if ok || found == nil || !found.Done || found.Status != 201 || !bytes.Equal(found.Answer, []byte("sealed answer")) {
		t.Fatalf("claim when done = %v, %+v; want false and the answer", ok, found)
	}
	// A release by another claim, or of a done record, deletes nothing.
	noErr(t, "release of a done record", s.ReleaseIdempotencyKey(ctx, "rk_1/ws_1", "k1", "c1"))
	if ok, _, _ := s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c5", "a", at(time.Hour)), at(time.Hour)); ok {
		t.Fatal("a release deleted a done record")
	}
	// Expired: taken over, whatever it asked.
	late := idemRecord("rk_1/ws_1", "k1", "c6", "b", at(24*time.Hour))
	ok, _, err = s.ClaimIdempotencyKey(ctx, late, at(24*time.Hour))
	noErr(t, "claim when expired", err)
	if !ok {
		t.Fatal("an expired record was not taken over")
	}
	_, found, _ = s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c7", "b", at(24*time.Hour)), at(24*time.Hour))
	if found == nil || found.Done || found.Claim != "c6" || found.Answer != nil || found.Status != 0 || !bytes.Equal(found.Fingerprint, []byte("fp:b")) {
		t.Fatalf("the record taken over = %+v; want running, claim c6, no answer", found)
	}
	// Running with its lease ended (a crashed run): taken over by the same request only.
	crashAt := at(24*time.Hour + 3*time.Minute)
	ok, found, err = s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c8", "other body", crashAt), crashAt)
	noErr(t, "claim of a crashed run with another body", err)
	if ok || found == nil || found.Claim != "c6" {
		t.Fatalf("a crashed run was taken over by another request: %v, %+v", ok, found)
	}
	ok, _, err = s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c9", "b", crashAt), crashAt)
	noErr(t, "claim of a crashed run", err)
	if !ok {
		t.Fatal("a running record whose lease ended was not taken over")
	}
	// The crashed run cannot finish any more; the new one can release it.
	wantErr(t, "finish by the crashed run", s.FinishIdempotencyKey(ctx, "rk_1/ws_1", "k1", "c6", 201, []byte("x")), store.ErrNotFound)
	noErr(t, "release", s.ReleaseIdempotencyKey(ctx, "rk_1/ws_1", "k1", "c9"))
	ok, _, err = s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c10", "c", crashAt), crashAt)
	noErr(t, "claim after a release", err)
	if !ok {
		t.Fatal("a released key was not claimed again")
	}
	// Pruning: only records expired at the time given, in batches.
	n, err := s.PruneIdempotencyKeys(ctx, at(24*time.Hour), 2)
	noErr(t, "prune", err)
	equal(t, "pruned", n, int64(2))
	n, err = s.PruneIdempotencyKeys(ctx, at(24*time.Hour), 10)
	noErr(t, "prune", err)
	equal(t, "pruned", n, int64(1)) // of the three other scopes' records; k1 expires later
	if ok, found, _ := s.ClaimIdempotencyKey(ctx, idemRecord("rk_1/ws_1", "k1", "c11", "c", crashAt), crashAt); ok || found.Claim != "c10" {
		t.Fatalf("prune deleted a record that had not expired: %v %+v", ok, found)
	}
}

// testClaimIdempotencyKeyConcurrently: of many concurrent claims of one pair, exactly one wins, and
// every other finds the winner's record.
func testClaimIdempotencyKeyConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	var wg sync.WaitGroup
	won := make(chan string, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claim := fmt.Sprintf("c%d", i)
			ok, found, err := s.ClaimIdempotencyKey(ctx, idemRecord("key_1", "dup", claim, "a", at(0)), at(0))
			switch {
			case err != nil:
				errs <- err
			case ok:
				won <- claim
			case found == nil || found.Done:
				errs <- fmt.Errorf("a lost claim found %+v", found)
			}
		}()
	}
	wg.Wait()
	close(won)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var winners []string
	for c := range won {
		winners = append(winners, c)
	}
	if len(winners) != 1 {
		t.Fatalf("%d claims won (%v), want exactly 1", len(winners), winners)
	}
}

// testIdempotencyAnswers: the rotation's read pages through the done records that hold an answer,
// by (scope, key), and its write replaces an answer only while it is the one read.
func testIdempotencyAnswers(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, r := range []struct{ scope, key string }{{"b", "1"}, {"a", "2"}, {"a", "1"}, {"c", "0"}, {"a", "running"}} {
		rec := idemRecord(r.scope, r.key, "c-"+r.scope+r.key, "x", at(0))
		if ok, _, err := s.ClaimIdempotencyKey(ctx, rec, at(0)); err != nil || !ok {
			t.Fatalf("claim %v: %v %v", r, ok, err)
		}
		if r.key != "running" {
			noErr(t, "finish", s.FinishIdempotencyKey(ctx, r.scope, r.key, rec.Claim, 200, []byte("sealed "+r.scope+r.key)))
		}
	}
	var got []string
	scope, key := "", ""
	for {
		page, err := s.IdempotencyAnswers(ctx, scope, key, 2)
		noErr(t, "IdempotencyAnswers", err)
		for _, r := range page {
			got = append(got, r.Scope+"/"+r.Key+"="+string(r.Answer))
		}
		if len(page) < 2 {
			break
		}
		scope, key = page[len(page)-1].Scope, page[len(page)-1].Key
	}
	equal(t, "answers", got, []string{"a/1=sealed a1", "a/2=sealed a2", "b/1=sealed b1", "c/0=sealed c0"})
	wantErr(t, "reseal with a stale answer", s.ResealIdempotencyAnswer(ctx, "a", "1", []byte("stale"), []byte("new")), store.ErrNotFound)
	noErr(t, "reseal", s.ResealIdempotencyAnswer(ctx, "a", "1", []byte("sealed a1"), []byte("resealed a1")))
	_, found, err := s.ClaimIdempotencyKey(ctx, idemRecord("a", "1", "other", "x", at(time.Second)), at(time.Second))
	noErr(t, "claim", err)
	if found == nil || string(found.Answer) != "resealed a1" {
		t.Fatalf("after reseal: %+v", found)
	}
}
