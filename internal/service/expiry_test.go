package service_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// queuedTypes lists the event types queued for an endpoint, oldest first: every event of a type it
// wants queues one attempt, so the deliveries log is the list of events sent.
func queuedTypes(t *testing.T, svc *service.Service, wsID, endpointID string) []string {
	t.Helper()
	ds, _, err := svc.ListDeliveries(context.Background(), keyplane.System("test"), wsID, endpointID, store.DeliveryFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(ds) - 1; i >= 0; i-- {
		out = append(out, ds[i].EventType)
	}
	return out
}

// listBarrier holds every KeysToNotify call of a kind until nodes calls of it have listed, so that
// concurrent runs all see the same keys before any sends a notice: the race that the notice's
// unique row must settle.
type listBarrier struct {
	store.Store
	nodes int
	mu    sync.Mutex
	armed bool
	seen  map[string]int
	ready map[string]chan struct{}
}

func (b *listBarrier) KeysToNotify(ctx context.Context, kind string, after, until time.Time, limit int) ([]keyplane.APIKey, error) {
	keys, err := b.Store.KeysToNotify(ctx, kind, after, until, limit)
	b.mu.Lock()
	if !b.armed {
		b.mu.Unlock()
		return keys, err
	}
	if b.ready[kind] == nil {
		b.ready[kind] = make(chan struct{})
	}
	ch := b.ready[kind]
	if b.seen[kind]++; b.seen[kind] == b.nodes {
		close(ch)
	}
	b.mu.Unlock()
	<-ch
	return keys, err
}

func TestNotifyExpiries(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { testNotifyExpiries(t, driver) })
	}
}

func testNotifyExpiries(t *testing.T, driver string) {
	clk := &fakeClock{now: time.Date(2030, 1, 31, 10, 0, 0, 0, time.UTC)}
	st := &listBarrier{Store: storetest.Open(t, driver), nodes: 4, seen: map[string]int{}, ready: map[string]chan struct{}{}}
	svc := servicetest.New(t, st, service.Options{Now: clk.Now,
		Webhooks: localWebhooks(t)})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{keyplane.EventAPIKeyExpiring, keyplane.EventAPIKeyExpired}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(name string, in time.Duration) *keyplane.APIKey {
		k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: name, KeyType: keyplane.KeyTypeSecret,
			ExpiresAt: keyplane.Some(clk.Now().Add(in))})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	soon := key("soon", 12*time.Hour)
	later := key("later", 48*time.Hour)
	revoked := key("revoked", time.Hour)
	if _, err := svc.RevokeAPIKey(ctx, sys, w.ID, revoked.ID); err != nil {
		t.Fatal(err)
	}
	notify := func(want int) {
		t.Helper()
		n, err := svc.NotifyExpiries(ctx)
		if err != nil || n != want {
			t.Fatalf("NotifyExpiries = %d, %v; want %d", n, err, want)
		}
	}

	// Only the key expiring within 24 hours, once; the revoked one never.
	notify(1)
	notify(0)
	if got := queuedTypes(t, svc, w.ID, ep.ID); len(got) != 1 || got[0] != keyplane.EventAPIKeyExpiring {
		t.Fatalf("events after the first run: %v", got)
	}

	// Several nodes at once: each notice still goes out once.
	clk.Add(25 * time.Hour) // soon expired 13 h ago; later expires in 23 h
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	st.mu.Lock()
	st.armed = true
	st.mu.Unlock()
	for range st.nodes {
		wg.Go(func() {
			n, err := svc.NotifyExpiries(ctx)
			if err != nil {
				t.Errorf("concurrent NotifyExpiries: %v", err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	st.mu.Lock()
	st.armed = false
	st.mu.Unlock()
	if total != 2 {
		t.Errorf("four concurrent runs sent %d notices, want 2 (soon expired, later expiring)", total)
	}
	got := queuedTypes(t, svc, w.ID, ep.ID)
	if len(got) != 3 {
		t.Fatalf("events: %v; want expiring, then expired and expiring", got)
	}

	// A new expiry is a new notice; the old one's is not repeated.
	if _, err := svc.UpdateAPIKey(ctx, sys, w.ID, later.ID, service.KeyPatch{ExpiresAt: keyplane.Some(clk.Now().Add(10 * time.Hour))}); err != nil {
		t.Fatal(err)
	}
	notify(1)
	clk.Add(11 * time.Hour)
	notify(1) // later expired
	notify(0)
	// A key deleted before its notice gets none, and leaves nothing behind.
	gone := key("gone", time.Hour)
	if _, err := svc.UpdateAPIKey(ctx, sys, w.ID, gone.ID, service.KeyPatch{Enabled: keyplane.Some(false)}); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteAPIKey(ctx, sys, w.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	notify(0)
	// Expiries older than a week are not announced late.
	old := key("old", time.Hour)
	_ = old
	clk.Add(8 * 24 * time.Hour)
	notify(0)
	_ = soon
}
