package verify_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// TestConcurrentVerifyAndChange verifies keys from 8 goroutines while their keys are disabled,
// rotated and revoked one after another. A verification that starts after a change has returned must
// see it: a cached answer, or a store read that began before the change, must never be served once the
// change is committed. The race detector watches the cache and the service meanwhile.
func TestConcurrentVerifyAndChange(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := setup(t, d)
			ctx := context.Background()
			sys := keyplane.System("test")
			const n = 12
			type target struct {
				id    string
				value string
				// after is the code the value must get once change has returned; changed is set then.
				after   keyplane.VerifyCode
				changed atomic.Bool
			}
			targets := make([]*target, n)
			for i := range targets {
				k, v := f.key(t)
				after := [...]keyplane.VerifyCode{keyplane.VerifyDisabled, keyplane.VerifyExpired, keyplane.VerifyRevoked}[i%3]
				targets[i] = &target{id: k.ID, value: v, after: after}
			}

			var stop atomic.Bool
			var wg sync.WaitGroup
			var verified atomic.Int64
			for w := range 8 {
				wg.Go(func() {
					for i := w; !stop.Load(); i++ {
						tg := targets[i%n]
						changed := tg.changed.Load()
						r, err := f.ver.Verify(ctx, tg.value, req)
						if err != nil {
							t.Errorf("verify: %v", err)
							return
						}
						verified.Add(1)
						switch {
						case changed && r.Code != tg.after:
							t.Errorf("key %s: %s after its change returned, want %s", tg.id, r.Code, tg.after)
							return
						case !changed && r.Code != keyplane.VerifyValid && r.Code != tg.after:
							t.Errorf("key %s: %s, want VALID or %s", tg.id, r.Code, tg.after)
							return
						}
					}
				})
			}
			for _, tg := range targets {
				var err error
				switch tg.after {
				case keyplane.VerifyDisabled:
					_, err = f.svc.UpdateAPIKey(ctx, sys, f.ws, tg.id, service.KeyPatch{Enabled: keyplane.Some(false)})
				case keyplane.VerifyExpired: // rotated with no grace: the old value is expired at once
					_, _, err = f.svc.RotateAPIKey(ctx, sys, f.ws, tg.id, 0)
				case keyplane.VerifyRevoked:
					_, err = f.svc.RevokeAPIKey(ctx, sys, f.ws, tg.id)
				}
				if err != nil {
					t.Fatal(err)
				}
				tg.changed.Store(true)
			}
			// Let every goroutine verify every changed key at least once more.
			for start := verified.Load(); verified.Load() < start+8*n && !t.Failed(); {
				runtime.Gosched()
			}
			stop.Store(true)
			wg.Wait()
			if verified.Load() < 100 {
				t.Errorf("only %d verifications ran", verified.Load())
			}
		})
	}
}
