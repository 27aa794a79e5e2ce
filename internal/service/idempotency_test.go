package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// idemReq is a request to create a key with body.
func idemReq(scope, key, body string) service.IdempotentRequest {
	return service.IdempotentRequest{Scope: scope, Key: key, Method: "POST", Path: "/v1/api-keys", Body: []byte(body)}
}

func TestIdempotencyRules(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			svc, st := servicetest.Open(t, d, service.Options{Now: clock.Now, Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}})
			answer := service.StoredAnswer{Status: 201, Header: map[string]string{"Content-Type": "application/json", "Location": "/v1/api-keys/key_1"},
				Body: []byte(`{"success":true,"data":{"keyValue":"kp_live_secretvalue"}}`)}

			first, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"a"}`))
			if err != nil || first.Replay != nil {
				t.Fatalf("first request: %v, replay %v", err, first)
			}
			// While it runs: in use; with another body: reused.
			if _, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"a"}`)); keyplane.ErrorCode(err) != keyplane.CodeIdempotencyKeyInUse {
				t.Fatalf("while running: %v, want in use", err)
			}
			if _, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"b"}`)); keyplane.ErrorCode(err) != keyplane.CodeIdempotencyKeyReused {
				t.Fatalf("another body while running: %v, want reused", err)
			}
			if err := first.Finish(ctx, answer); err != nil {
				t.Fatal(err)
			}
			// The same request: the first answer.
			again, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"a"}`))
			if err != nil || again.Replay == nil {
				t.Fatalf("replay: %v %+v", err, again)
			}
			if !reflect.DeepEqual(*again.Replay, answer) {
				t.Fatalf("replayed %+v, want %+v", *again.Replay, answer)
			}
			// Another method, path or body: reused.
			for _, r := range []service.IdempotentRequest{idemReq("rk_1/ws_1", "k", `{"name":"b"}`),
				{Scope: "rk_1/ws_1", Key: "k", Method: "PATCH", Path: "/v1/api-keys", Body: []byte(`{"name":"a"}`)},
				{Scope: "rk_1/ws_1", Key: "k", Method: "POST", Path: "/v1/identities", Body: []byte(`{"name":"a"}`)}} {
				if _, err := svc.BeginIdempotent(ctx, r); keyplane.ErrorCode(err) != keyplane.CodeIdempotencyKeyReused {
					t.Errorf("%s %s %s: %v, want reused", r.Method, r.Path, r.Body, err)
				}
			}
			// Another scope: its own key.
			for _, scope := range []string{"rk_1/ws_2", "rk_2/ws_1", "key_1"} {
				other, err := svc.BeginIdempotent(ctx, idemReq(scope, "k", `{"name":"a"}`))
				if err != nil || other.Replay != nil {
					t.Errorf("scope %s collides with rk_1/ws_1: %v %+v", scope, err, other)
				}
			}
			// The answer is sealed in the store: its key value is nowhere in the record.
			now := clock.Now()
			ok, rec, err := st.ClaimIdempotencyKey(ctx, &store.IdempotencyRecord{Scope: "rk_1/ws_1", Key: "k", Claim: "peek", Fingerprint: []byte("peek"),
				CreatedAt: now, LeaseUntil: now, ExpiresAt: now.Add(time.Hour)}, now)
			if err != nil || ok || rec == nil || !rec.Done || rec.Status != 201 || len(rec.Answer) == 0 {
				t.Fatalf("the stored record: %v %v %+v", err, ok, rec)
			}
			if bytes.Contains(rec.Answer, []byte("secretvalue")) || bytes.Contains(rec.Answer, []byte("keyValue")) {
				t.Fatal("the stored answer is not sealed")
			}

			// Just before 24 h: replayed; at 24 h: not, the request runs again (no cleanup has run).
			clock.Add(service.IdempotencyTTL - time.Microsecond)
			if r, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"a"}`)); err != nil || r.Replay == nil {
				t.Fatalf("just before 24 h: %v %+v, want a replay", err, r)
			}
			clock.Add(time.Microsecond)
			late, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"a"}`))
			if err != nil || late.Replay != nil {
				t.Fatalf("after 24 h: %v, replay %+v; want the request to run again", err, late.Replay)
			}
			// After 24 h another body is a new request too.
			clock.Add(service.IdempotencyTTL)
			if r, err := svc.BeginIdempotent(ctx, idemReq("rk_1/ws_1", "k", `{"name":"c"}`)); err != nil || r.Replay != nil {
				t.Fatalf("another body after 24 h: %v", err)
			}
		})
	}
}

// TestIdempotencyFailuresRunAgain: a first answer of 5xx or 429 is not kept, so that a retry runs the
// request again; a 4xx is kept; a run whose node died (no Finish) holds its key until its lease ends,
// then the same request runs again, and another is still refused.
func TestIdempotencyFailuresRunAgain(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			svc, _ := servicetest.Open(t, d, service.Options{Now: clock.Now, Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}})
			for _, status := range []int{500, 503, 429} {
				key := fmt.Sprint("k", status)
				first, err := svc.BeginIdempotent(ctx, idemReq("s", key, "{}"))
				if err != nil {
					t.Fatal(err)
				}
				if err := first.Finish(ctx, service.StoredAnswer{Status: status, Body: []byte(`{"success":false}`)}); err != nil {
					t.Fatal(err)
				}
				again, err := svc.BeginIdempotent(ctx, idemReq("s", key, "{}"))
				if err != nil || again.Replay != nil {
					t.Errorf("after a %d: %v, replay %+v; want the request to run again", status, err, again)
				}
			}
			first, _ := svc.BeginIdempotent(ctx, idemReq("s", "k400", "{}"))
			if err := first.Finish(ctx, service.StoredAnswer{Status: 400, Body: []byte(`{"success":false}`)}); err != nil {
				t.Fatal(err)
			}
			if r, err := svc.BeginIdempotent(ctx, idemReq("s", "k400", "{}")); err != nil || r.Replay == nil || r.Replay.Status != 400 {
				t.Errorf("after a 400: %v %+v; want the 400 again", err, r)
			}

			crashed, err := svc.BeginIdempotent(ctx, idemReq("s", "crash", "{}"))
			if err != nil {
				t.Fatal(err)
			}
			clock.Add(service.IdempotencyLease - time.Second)
			if _, err := svc.BeginIdempotent(ctx, idemReq("s", "crash", "{}")); keyplane.ErrorCode(err) != keyplane.CodeIdempotencyKeyInUse {
				t.Fatalf("within the lease: %v, want in use", err)
			}
			clock.Add(time.Second)
			if _, err := svc.BeginIdempotent(ctx, idemReq("s", "crash", `{"x":1}`)); keyplane.ErrorCode(err) != keyplane.CodeIdempotencyKeyReused {
				t.Fatalf("another body after the lease: %v, want reused", err)
			}
			rerun, err := svc.BeginIdempotent(ctx, idemReq("s", "crash", "{}"))
			if err != nil || rerun.Replay != nil {
				t.Fatalf("after the lease: %v, want the request to run again", err)
			}
			// The first run, back from the dead, cannot overwrite the second's answer.
			if err := crashed.Finish(ctx, service.StoredAnswer{Status: 201, Body: []byte("late")}); err == nil {
				t.Error("a run that lost its lease stored its answer")
			}
			if err := rerun.Finish(ctx, service.StoredAnswer{Status: 201, Body: []byte("rerun")}); err != nil {
				t.Fatal(err)
			}
			if r, _ := svc.BeginIdempotent(ctx, idemReq("s", "crash", "{}")); r == nil || string(r.Replay.Body) != "rerun" {
				t.Errorf("replay after the rerun: %+v", r)
			}

			// Pruning removes what is past 24 h, nothing younger.
			clock.Add(service.IdempotencyTTL)
			if _, err := svc.BeginIdempotent(ctx, idemReq("s", "young", "{}")); err != nil {
				t.Fatal(err)
			}
			n, err := svc.PruneIdempotencyKeys(ctx)
			if err != nil || n != 5 {
				t.Errorf("pruned %d, %v; want 5 (the reruns of k500, k503 and k429, k400, crash)", n, err)
			}
			if _, err := svc.BeginIdempotent(ctx, idemReq("s", "young", "{}")); keyplane.ErrorCode(err) != keyplane.CodeIdempotencyKeyInUse {
				t.Errorf("a young record after pruning: %v, want still in use", err)
			}
		})
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	for _, k := range []string{"", strings.Repeat("a", 256), "tab\there", "é", "nl\n", "\x7f"} {
		err := service.ValidIdempotencyKey(k)
		var e *keyplane.Error
		if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest || !errors.As(err, &e) || len(e.Details) != 1 || e.Details[0].Field != "Idempotency-Key" {
			t.Errorf("key %q: %v, want invalid_request naming Idempotency-Key", k, err)
		}
	}
	for _, k := range []string{"a", strings.Repeat("~", 255), "8e5c1a2b-0d1f-4c3a-9b7e-2f6d5c4b3a21", "with space"} {
		if err := service.ValidIdempotencyKey(k); err != nil {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

// TestIdempotencyConcurrentDuplicates: of 20 concurrent requests with one key, exactly one runs;
// every other is told it is in use or gets the replay.
func TestIdempotencyConcurrentDuplicates(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			svc, _ := servicetest.Open(t, d, service.Options{Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}})
			var ran, inUse, replayed atomic.Int64
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := svc.BeginIdempotent(ctx, idemReq("s", "dup", "{}"))
					switch {
					case keyplane.ErrorCode(err) == keyplane.CodeIdempotencyKeyInUse:
						inUse.Add(1)
					case err != nil:
						t.Error(err)
					case r.Replay != nil:
						replayed.Add(1)
					default:
						ran.Add(1)
						if err := r.Finish(ctx, service.StoredAnswer{Status: 201, Body: []byte("once")}); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			if ran.Load() != 1 || ran.Load()+inUse.Load()+replayed.Load() != 20 {
				t.Fatalf("ran %d, in use %d, replayed %d; want exactly one run", ran.Load(), inUse.Load(), replayed.Load())
			}
		})
	}
}

// TestIdempotencyRewrap: a master key rotation re-seals the kept answers, so that replays still work
// once the previous key is dropped.
func TestIdempotencyRewrap(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
			box := func(keys ...[]byte) *masterkey.Box {
				b, err := masterkey.New(keys[0], keys[1:]...)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			before, st := servicetest.Open(t, d, service.Options{Box: box(oldKey), Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}})
			for _, k := range []string{"a", "b", "c"} {
				r, err := before.BeginIdempotent(ctx, idemReq("s", k, "{}"))
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Finish(ctx, service.StoredAnswer{Status: 201, Body: []byte("answer " + k)}); err != nil {
					t.Fatal(err)
				}
			}
			rotating := servicetest.New(t, st, service.Options{Box: box(newKey, oldKey), Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}})
			res, err := rotating.Rewrap(ctx, keyplane.System("test"))
			if err != nil || res.IdempotentAnswers != 3 {
				t.Fatalf("rewrap: %+v, %v; want 3 answers re-sealed", res, err)
			}
			if res, err := rotating.Rewrap(ctx, keyplane.System("test")); err != nil || res.IdempotentAnswers != 0 || res.AlreadyCurrent < 3 {
				t.Fatalf("rewrap again: %+v, %v; want nothing to do", res, err)
			}
			after := servicetest.New(t, st, service.Options{Box: box(newKey), Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}})
			for _, k := range []string{"a", "b", "c"} {
				r, err := after.BeginIdempotent(ctx, idemReq("s", k, "{}"))
				if err != nil || r.Replay == nil || string(r.Replay.Body) != "answer "+k {
					t.Errorf("replay of %s with the new key alone: %v %+v", k, err, r)
				}
			}
		})
	}
}
