package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/webhook"
)

// deliverDue makes every attempt due at the service's now, as a worker would, and says how many.
func deliverDue(t *testing.T, svc *service.Service) int {
	t.Helper()
	ctx := context.Background()
	ds, claim, _, err := svc.ClaimDeliveries(ctx, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if err := svc.Deliver(ctx, d, claim); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	return len(ds)
}

// TestWebhookFailingForFiveDays: an endpoint whose every attempt fails is disabled once the failures
// have lasted 5 days, not before; a success in between starts the count again. The clock is the
// test's; the receiver is a real HTTP server.
func TestWebhookFailingForFiveDays(t *testing.T) {
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var ok atomic.Bool
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer rc.Close()
	watcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer watcher.Close()

	st := storetest.Open(t, "sqlite")
	// Twenty attempts a day apart: enough to fail for longer than 5 days.
	schedule := []time.Duration{0}
	for range 20 {
		schedule = append(schedule, 24*time.Hour)
	}
	svc := servicetest.New(t, st, service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}), Now: clk.Now,
		Webhooks: service.WebhookOptions{Policy: webhook.URLPolicy{AllowPrivate: true, AllowHTTP: true}, Schedule: schedule, Guard: kptest.Guard(t)}})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.URL, EventTypes: []string{"order.created"}})
	if err != nil {
		t.Fatal(err)
	}
	watch, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: watcher.URL, EventTypes: []string{keyplane.EventEndpointDisabled}})
	if err != nil {
		t.Fatal(err)
	}
	send := func() {
		t.Helper()
		if _, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", nil); err != nil {
			t.Fatal(err)
		}
	}
	enabled := func() *keyplane.WebhookEndpoint {
		t.Helper()
		e, err := svc.GetWebhook(ctx, sys, w.ID, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Fails for 4 days, then one success: the count starts again.
	send()
	for day := 0; day <= 4; day++ {
		if n := deliverDue(t, svc); n != 1 {
			t.Fatalf("day %d: %d attempts due, want 1", day, n)
		}
		clk.Add(24*time.Hour + 6*time.Hour) // past the retry's ±20 % jitter
		if day == 3 {
			ok.Store(true)
		}
	}
	if e := enabled(); !e.Enabled {
		t.Fatalf("disabled after 4 days of failures and a success: %q", e.DisabledReason)
	}
	// Now it fails for good: disabled at the first failure 5 days after the first of the streak.
	ok.Store(false)
	send()
	start := clk.Now()
	for i := 0; enabled().Enabled; i++ {
		if i > 10 {
			t.Fatal("never disabled")
		}
		if clk.Now().Sub(start) > 6*24*time.Hour+12*time.Hour {
			t.Fatalf("still enabled %s after the first failure", clk.Now().Sub(start))
		}
		deliverDue(t, svc)
		if e := enabled(); !e.Enabled && clk.Now().Sub(start) < 5*24*time.Hour {
			t.Fatalf("disabled after %s of failures", clk.Now().Sub(start))
		}
		clk.Add(24*time.Hour + 6*time.Hour)
	}
	e := enabled()
	if !strings.Contains(e.DisabledReason, "failed for 5 days") {
		t.Errorf("disabled for %q", e.DisabledReason)
	}
	// Its pending attempts ended; the watcher has endpoint.disabled queued; the audit trail says so.
	pending, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Status: keyplane.DeliveryPending, Limit: 10})
	if err != nil || len(pending) != 0 {
		t.Errorf("pending attempts of the disabled endpoint: %v, %v", pending, err)
	}
	if got := queuedTypes(t, svc, w.ID, watch.ID); len(got) != 1 || got[0] != keyplane.EventEndpointDisabled {
		t.Errorf("the watcher's deliveries: %v", got)
	}
	entries, _, err := svc.ListAudit(ctx, sys, w.ID, store.AuditFilter{Action: "webhook.disabled", Limit: 10})
	if err != nil || len(entries) != 1 {
		t.Errorf("webhook.disabled audit entries: %d, %v", len(entries), err)
	}
	// Nothing more goes to it.
	send()
	clk.Add(48 * time.Hour)
	for _, d := range func() []keyplane.Delivery {
		ds, _, _, _ := svc.ClaimDeliveries(ctx, 100, nil)
		return ds
	}() {
		if d.EndpointID == ep.ID {
			t.Errorf("an attempt to the disabled endpoint was leased: %s", d.ID)
		}
	}
}

// TestWebhookRetrySchedule: the next attempt is due after the schedule's wait, within ±20 %, or after
// a longer Retry-After (capped at 6 hours); the schedule's end gives up; 410 Gone schedules nothing.
func TestWebhookRetrySchedule(t *testing.T) {
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var answer atomic.Value // func(http.ResponseWriter)
	answer.Store(func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer.Load().(func(http.ResponseWriter))(w)
	}))
	defer rc.Close()
	svc, _ := servicetest.Open(t, "sqlite", service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}), Now: clk.Now,
		Webhooks: service.WebhookOptions{Policy: webhook.URLPolicy{AllowPrivate: true, AllowHTTP: true},
			Schedule: []time.Duration{0, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute}, Guard: kptest.Guard(t)}})
	ctx := context.Background()
	sys := keyplane.System("test")
	w, _ := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Shop", Slug: "shop"})
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.URL, EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	next := func() *keyplane.Delivery {
		t.Helper()
		ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Status: keyplane.DeliveryPending, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 1 {
			t.Fatalf("%d attempts pending", len(ds))
		}
		if len(ds) == 0 {
			return nil
		}
		return &ds[0]
	}
	if _, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", nil); err != nil {
		t.Fatal(err)
	}
	deliverDue(t, svc)
	d := next()
	if wait := d.NextAttemptAt.Sub(clk.Now()); d.Attempt != 2 || wait < 8*time.Minute || wait > 12*time.Minute {
		t.Fatalf("attempt %d due in %s; want attempt 2 in 10 min ± 20 %%", d.Attempt, wait)
	}
	// Retry-After longer than the schedule wins.
	answer.Store(func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	clk.Add(13 * time.Minute)
	deliverDue(t, svc)
	if d = next(); d.Attempt != 3 || !d.NextAttemptAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("after Retry-After 3600: attempt %d due at %v, want attempt 3 an hour from now", d.Attempt, d.NextAttemptAt)
	}
	// A huge one is capped.
	answer.Store(func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "999999")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	clk.Add(time.Hour)
	deliverDue(t, svc)
	if d = next(); d.Attempt != 4 || !d.NextAttemptAt.Equal(clk.Now().Add(6*time.Hour)) {
		t.Fatalf("after Retry-After 999999: attempt %d due at %v, want attempt 4 six hours from now", d.Attempt, d.NextAttemptAt)
	}
	// The schedule has four entries: the fourth attempt is the last.
	clk.Add(6 * time.Hour)
	deliverDue(t, svc)
	if d = next(); d != nil {
		t.Fatalf("an attempt %d was scheduled after the last", d.Attempt)
	}
	// 410 Gone: nothing scheduled, the endpoint disabled.
	answer.Store(func(w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	if _, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", nil); err != nil {
		t.Fatal(err)
	}
	deliverDue(t, svc)
	if d = next(); d != nil {
		t.Fatalf("an attempt was scheduled after 410 Gone: %+v", d)
	}
	if e, _ := svc.GetWebhook(ctx, sys, w.ID, ep.ID); e.Enabled || !strings.Contains(e.DisabledReason, "410") {
		t.Errorf("after 410: enabled %v, reason %q", e.Enabled, e.DisabledReason)
	}
}
