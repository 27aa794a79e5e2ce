package service_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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

// TestRetryOnlyFailedAttempts: a manual retry re-sends an attempt that failed. One that succeeded
// (which would replay an old event, full key object and all, to wherever the endpoint points now) or
// one still pending (which would send it twice) is refused with 409 delivery_not_retryable, and
// queues nothing.
func TestRetryOnlyFailedAttempts(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			var fail atomic.Bool
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fail.Load() {
					w.WriteHeader(http.StatusBadGateway)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer rc.Close()
			svc, _ := servicetest.Open(t, d, service.Options{
				Webhooks: service.WebhookOptions{Policy: webhook.URLPolicy{AllowPrivate: true, AllowHTTP: true}, Schedule: []time.Duration{0}, Guard: kptest.Guard(t)}})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.URL, EventTypes: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			newKey := func() {
				t.Helper()
				if _, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret}); err != nil {
					t.Fatal(err)
				}
			}
			latest := func() keyplane.Delivery {
				t.Helper()
				ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Limit: 1})
				if err != nil || len(ds) == 0 {
					t.Fatalf("deliveries: %v, %v", ds, err)
				}
				return ds[0]
			}
			count := func() int {
				ds, _, _ := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Limit: 100})
				return len(ds)
			}
			refused := func(what string, dl keyplane.Delivery) {
				t.Helper()
				before := count()
				_, err := svc.RetryDelivery(ctx, sys, w.ID, ep.ID, dl.ID)
				var e *keyplane.Error
				if !errors.As(err, &e) || e.Code != keyplane.CodeDeliveryNotRetryable {
					t.Errorf("retry of a %s attempt: %v, want %s", what, err, keyplane.CodeDeliveryNotRetryable)
				}
				if after := count(); after != before {
					t.Errorf("retry of a %s attempt queued %d attempts", what, after-before)
				}
			}

			newKey()
			if n := deliverDue(t, svc); n != 1 {
				t.Fatalf("%d attempts made, want 1", n)
			}
			ok := latest()
			if ok.Status != keyplane.DeliverySucceeded {
				t.Fatalf("first attempt: %s", ok.Status)
			}
			refused("succeeded", ok)

			newKey()
			if p := latest(); p.Status != keyplane.DeliveryPending {
				t.Fatalf("queued attempt: %s", p.Status)
			} else {
				refused("pending", p)
			}

			fail.Store(true)
			deliverDue(t, svc)
			failed := latest()
			if failed.Status != keyplane.DeliveryFailed {
				t.Fatalf("attempt to a failing receiver: %s", failed.Status)
			}
			dl, err := svc.RetryDelivery(ctx, sys, w.ID, ep.ID, failed.ID)
			if err != nil || dl.Status != keyplane.DeliveryPending || dl.EventID != failed.EventID {
				t.Fatalf("retry of a failed attempt: %+v, %v", dl, err)
			}
			refused("pending retry", *dl)
		})
	}
}
