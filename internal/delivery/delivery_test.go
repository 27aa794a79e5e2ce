package delivery_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/delivery"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestSlowEndpointHoldsOnlyItsBound: an endpoint that hangs, with a backlog larger than the node's
// workers, holds at most PerEndpoint requests at once, and another endpoint's attempts still go out
// at once ("one slow endpoint cannot hold the others up", docs/api.md, Durability). The backlog is
// queued before the workers start, oldest first, as it is when a slow endpoint has fallen behind.
func TestSlowEndpointHoldsOnlyItsBound(t *testing.T) {
	const (
		workers     = 32 // the defaults, spelled out for the assertions
		perEndpoint = 8
		slowEvents  = 40 // more than workers: the slow endpoint's due attempts alone fill a lease
		fastEvents  = 5
		hang        = 2 * time.Second
	)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			release := make(chan struct{}) // ends the slow receiver's requests when the test ends
			var inFlight, maxInFlight, slowGot atomic.Int64
			slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
				}
				slowGot.Add(1)
				select {
				case <-time.After(hang):
				case <-r.Context().Done():
				case <-release:
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(slow.Close)
			t.Cleanup(func() { close(release) }) // runs before slow.Close, which waits for handlers

			var mu sync.Mutex
			fastAt := map[string]time.Time{}
			fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				mu.Lock()
				if _, seen := fastAt[r.Header.Get("webhook-id")]; !seen {
					fastAt[r.Header.Get("webhook-id")] = time.Now()
				}
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(fast.Close)

			r := newRig(t, driver, delivery.Options{Workers: workers, PerEndpoint: perEndpoint}, "slow.thing", "fast.thing")
			r.endpoint(slow.URL, "slow.thing")
			r.endpoint(fast.URL, "fast.thing")
			for i := range slowEvents {
				if _, err := r.send("slow.thing", i); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]bool{}
			for i := range fastEvents {
				ev, err := r.send("fast.thing", i)
				if err != nil {
					t.Fatal(err)
				}
				want[ev.ID] = true
			}

			start := time.Now()
			r.start()
			const bound = 1500 * time.Millisecond               // "within ~1 s", with room for a loaded machine
			testkit.Wait(bound-time.Since(start), func() bool { // OthersNotHeldUp says which did not arrive
				mu.Lock()
				defer mu.Unlock()
				return len(fastAt) == fastEvents
			})
			mu.Lock()
			arrived := maps.Clone(fastAt)
			mu.Unlock()
			slowNow := inFlight.Load()
			// Let the slow endpoint go through a second round, so that the bound is also checked
			// while queued attempts take over from finished ones.
			time.Sleep(hang + 500*time.Millisecond)

			t.Run("PerEndpointBound", func(t *testing.T) {
				if m := maxInFlight.Load(); m > perEndpoint {
					t.Errorf("the slow endpoint had %d requests in flight at once, want at most PerEndpoint = %d", m, perEndpoint)
				} else if m < perEndpoint {
					t.Errorf("the slow endpoint had at most %d requests in flight, want it to reach PerEndpoint = %d (the test did not load it)", m, perEndpoint)
				}
				if got := slowGot.Load(); got < perEndpoint+1 {
					t.Errorf("the slow endpoint got %d requests, want more than one round of %d", got, perEndpoint)
				}
			})
			// Fails while the runner counts the attempts queued behind a busy endpoint against
			// Workers: the slow endpoint's backlog (oldest due first) then fills every lease slot, fill
			// asks the store for nothing more, and the fast endpoint waits for the slow one's first
			// round (2 s) and the next poll.
			t.Run("OthersNotHeldUp", func(t *testing.T) {
				for id := range want {
					at, ok := arrived[id]
					switch {
					case !ok:
						t.Errorf("fast endpoint: event %s had not arrived %s after the workers started, while the slow endpoint hung (%d of its requests in flight)",
							id, bound, slowNow)
					case at.Sub(start) > time.Second:
						t.Logf("fast endpoint: event %s arrived after %s", id, at.Sub(start).Round(time.Millisecond))
					}
				}
			})
		})
	}
}
