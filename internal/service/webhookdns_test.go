package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
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

// lockedBuffer is a log sink that the delivery path and the test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestWebhookURLErrorsNameNoDNSAnswer: a tenant whose webhook URL is refused, at creation, on change
// or at delivery, reads one generic reason, whether the name does not resolve or resolves to an
// internal address; that answer ("resolves to 10.0.3.7", "no such host") would map the deployment's
// network. The server's log has it.
func TestWebhookURLErrorsNameNoDNSAnswer(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			var rebound atomic.Bool
			lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
				switch {
				case host == "inside.test" || host == "rebind.test" && rebound.Load():
					return []netip.Addr{netip.MustParseAddr("10.0.3.7")}, nil
				case host == "rebind.test":
					// A documentation address: never dialled, since the name is rebound first.
					return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil
				}
				return nil, errors.New("lookup " + host + " on 10.0.0.2:53: no such host")
			}
			logs := &lockedBuffer{}
			svc, _ := servicetest.Open(t, d, service.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)),
				Webhooks: service.WebhookOptions{Policy: webhook.URLPolicy{}, Lookup: lookup, Schedule: []time.Duration{0}, Guard: kptest.Guard(t)}})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			leaky := []string{"10.0.3.7", "10.0.0.2", "no such host", "resolves"}
			generic := func(what, msg string) {
				t.Helper()
				for _, l := range leaky {
					if strings.Contains(msg, l) {
						t.Errorf("%s: the tenant reads %q, which names %q", what, msg, l)
					}
				}
				if !strings.Contains(msg, "public addresses only") {
					t.Errorf("%s: the tenant reads %q, want the generic reason", what, msg)
				}
			}
			urlError := func(err error) string {
				var e *keyplane.Error
				if !errors.As(err, &e) || e.Code != keyplane.CodeInvalidRequest || len(e.Details) != 1 || e.Details[0].Field != "url" {
					t.Fatalf("want a url field error, got %v", err)
				}
				return e.Message + " " + e.Details[0].Message
			}
			for _, host := range []string{"inside.test", "nowhere.test"} {
				_, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "https://" + host + "/hook", EventTypes: []string{"*"}})
				generic("create with "+host, urlError(err))
			}
			ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "https://rebind.test/hook", EventTypes: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.UpdateWebhook(ctx, sys, w.ID, ep.ID, service.WebhookPatch{URL: keyplane.Some("https://inside.test/other")})
			generic("change to inside.test", urlError(err))
			if !strings.Contains(logs.String(), "inside.test resolves to the blocked address 10.0.3.7") || !strings.Contains(logs.String(), "nowhere.test could not be resolved: lookup nowhere.test on 10.0.0.2:53: no such host") {
				t.Errorf("the server's log lacks the resolver's answers:\n%s", logs.String())
			}

			// At delivery: the name now resolves inside (DNS rebinding), and the test send too.
			rebound.Store(true)
			if _, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret}); err != nil {
				t.Fatal(err)
			}
			deliverDue(t, svc)
			ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Limit: 10})
			if err != nil || len(ds) == 0 || ds[len(ds)-1].Status != keyplane.DeliveryFailed {
				t.Fatalf("deliveries: %+v, %v", ds, err)
			}
			generic("the deliveries log", ds[len(ds)-1].Error)
			res, err := svc.TestWebhook(ctx, sys, w.ID, ep.ID, "")
			if err != nil {
				t.Fatal(err)
			}
			generic("a test send", res.Error)
			if !strings.Contains(logs.String(), "rebind.test resolves to the blocked address 10.0.3.7") {
				t.Errorf("the server's log lacks the delivery's detail:\n%s", logs.String())
			}
		})
	}
}
