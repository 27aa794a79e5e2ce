package service_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// received is one request a test receiver got, its signature checked.
type received struct {
	path, webhookID, eventID string
	signed                   bool
}

// receiver is a real HTTP server on loopback that answers each delivery as answer says, records it,
// and checks its Standard Webhooks signature against the endpoint's secret (by path).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	secrets map[string]string // path → whsec_…
	answer  func(path, eventID string) (status int, retryAfter string)
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{secrets: map[string]string{}, answer: func(string, string) (int, string) { return http.StatusBadGateway, "" }}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			ID string `json:"id"`
		}
		json.Unmarshal(body, &ev)
		rc.mu.Lock()
		signed := verifySignature(rc.secrets[r.URL.Path], r.Header, body)
		rc.got = append(rc.got, received{r.URL.Path, r.Header.Get("webhook-id"), ev.ID, signed})
		answer := rc.answer
		rc.mu.Unlock()
		status, ra := answer(r.URL.Path, ev.ID)
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// verifySignature checks a delivery as a receiver would, by the Standard Webhooks specification
// rather than keyplane's own signer: v1,base64(HMAC-SHA256(secret, id.timestamp.body)).
func verifySignature(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// since returns what was received from the n-th request on, and forgets nothing.
func (rc *receiver) since(n int) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got[n:]...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (rc *receiver) setAnswer(f func(path, eventID string) (int, string)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = f
}

// TestRecoverWebhook: recovering a window queues one new attempt for each event of the window whose
// last attempt to the endpoint failed, and the receiver, back up, gets each of them once, signed,
// under its original webhook-id. Events before or after the window, events that later succeeded,
// events still being retried and events of another endpoint are not sent; a second recovery while
// the first one's attempts are pending queues none of them again.
func TestRecoverWebhook(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			clk := &fakeClock{now: time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)}
			rc := newReceiver(t)
			hooks := localWebhooks(t)
			hooks.Schedule = []time.Duration{0, 10 * time.Minute}
			svc, _ := servicetest.Open(t, d, service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}), Now: clk.Now, Webhooks: hooks})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			epA, secA, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.srv.URL + "/a", EventTypes: []string{"order.created"}})
			if err != nil {
				t.Fatal(err)
			}
			epB, secB, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.srv.URL + "/b", EventTypes: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			rc.secrets["/a"], rc.secrets["/b"] = secA, secB
			send := func() string {
				t.Helper()
				ev, n, err := svc.SendEvent(ctx, sys, w.ID, "order.created", json.RawMessage(`{"order":1}`))
				if err != nil || n != 2 {
					t.Fatalf("send: %d endpoints, %v", n, err)
				}
				return ev.ID
			}

			e0 := send() // before the window: fails for good
			deliverDue(t, svc)
			clk.Add(15 * time.Minute)
			deliverDue(t, svc)

			clk.Add(45 * time.Minute)
			since := clk.Now()
			e1, e2, e3, e4 := send(), send(), send(), send()
			rc.setAnswer(func(path, ev string) (int, string) {
				if path == "/a" && ev == e4 {
					return http.StatusServiceUnavailable, "3600" // still being retried when recovered
				}
				return http.StatusBadGateway, ""
			})
			if n := deliverDue(t, svc); n != 8 {
				t.Fatalf("first attempts: %d, want 8", n)
			}
			clk.Add(15 * time.Minute)
			rc.setAnswer(func(path, ev string) (int, string) {
				if path == "/a" && ev == e3 {
					return http.StatusNoContent, "" // succeeded on its retry
				}
				return http.StatusBadGateway, ""
			})
			if n := deliverDue(t, svc); n != 7 {
				t.Fatalf("retries: %d, want 7 (e4's to /a waits an hour)", n)
			}
			clk.Add(10 * time.Minute)
			until := clk.Now()
			clk.Add(time.Minute)
			e5 := send() // after the window
			deliverDue(t, svc)
			clk.Add(15 * time.Minute)
			deliverDue(t, svc)
			_ = e0

			n, err := svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, since, &until)
			if err != nil || n != 2 {
				t.Fatalf("recover [since, until): %d, %v; want 2 (e1, e2)", n, err)
			}
			// Again, while those are pending: nothing more. Without until: only e5 is new.
			if n, err := svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, since, &until); err != nil || n != 0 {
				t.Fatalf("second recovery of the window: %d, %v; want 0", n, err)
			}
			if n, err := svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, since, nil); err != nil || n != 1 {
				t.Fatalf("recovery until now: %d, %v; want 1 (e5)", n, err)
			}

			mark := rc.count()
			rc.setAnswer(func(string, string) (int, string) { return http.StatusNoContent, "" })
			if n := deliverDue(t, svc); n != 3 {
				t.Fatalf("recovered attempts made: %d, want 3", n)
			}
			got := map[string]int{}
			for _, r := range rc.since(mark) {
				if r.path != "/a" {
					t.Errorf("a recovery of /a sent %s to %s", r.eventID, r.path)
				}
				if r.webhookID != r.eventID {
					t.Errorf("resent %s under webhook-id %s, want the event's id", r.eventID, r.webhookID)
				}
				if !r.signed {
					t.Errorf("resent %s without a valid signature", r.eventID)
				}
				got[r.eventID]++
			}
			want := map[string]int{e1: 1, e2: 1, e5: 1}
			if len(got) != len(want) || got[e1] != 1 || got[e2] != 1 || got[e5] != 1 {
				t.Errorf("received after recovery %v, want e1, e2, e5 once each (%v)", got, want)
			}
			// The recovered attempts succeeded: nothing more is due, and recovering again finds nothing.
			if n := deliverDue(t, svc); n != 0 {
				t.Errorf("%d attempts made after the recovered ones", n)
			}
			if n, err := svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, since, nil); err != nil || n != 0 {
				t.Errorf("recovery after success: %d, %v", n, err)
			}
			// /b's failures are still there to recover, e3 among them.
			if n, err := svc.RecoverWebhook(ctx, sys, w.ID, epB.ID, since, &until); err != nil || n != 4 {
				t.Errorf("recovery of /b: %d, %v; want 4", n, err)
			}

			// Bad windows.
			future := clk.Now().Add(time.Hour)
			_, err = svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, future, nil)
			wantInvalid(t, "since in the future", err, "since")
			_, err = svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, until, &since)
			wantInvalid(t, "until before since", err, "until")
			_, err = svc.RecoverWebhook(ctx, sys, w.ID, epA.ID, clk.Now().Add(-31*24*time.Hour), nil)
			wantInvalid(t, "since past the retention", err, "since")
			_, err = svc.RecoverWebhook(ctx, sys, w.ID, "whk_nope", since, nil)
			wantCode(t, "unknown endpoint", err, keyplane.CodeNotFound)

			// Another workspace's endpoint is not found through this one.
			other, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.RecoverWebhook(ctx, sys, other.ID, epA.ID, since, nil)
			wantCode(t, "another workspace's endpoint", err, keyplane.CodeNotFound)

			// A disabled endpoint is refused: its attempts would wait for nobody.
			if _, err := svc.UpdateWebhook(ctx, sys, w.ID, epB.ID, service.WebhookPatch{Enabled: keyplane.Some(false)}); err != nil {
				t.Fatal(err)
			}
			_, err = svc.RecoverWebhook(ctx, sys, w.ID, epB.ID, since, nil)
			wantInvalid(t, "disabled endpoint", err, "endpointId")
		})
	}
}

// TestResendEvent: a resend queues one manual attempt to the named endpoint, or to every enabled
// endpoint subscribed to the event's type; never a second one where an attempt is pending; never to
// an endpoint not subscribed, disabled, or of another workspace.
func TestResendEvent(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			clk := &fakeClock{now: time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)}
			rc := newReceiver(t)
			hooks := localWebhooks(t)
			hooks.Schedule = []time.Duration{0}
			svc, _ := servicetest.Open(t, d, service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created", "order.paid"}),
				Now: clk.Now, Webhooks: hooks, EventRetention: 48 * time.Hour})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			mk := func(path string, types ...string) *keyplane.WebhookEndpoint {
				ep, sec, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.srv.URL + path, EventTypes: types})
				if err != nil {
					t.Fatal(err)
				}
				rc.secrets[path] = sec
				return ep
			}
			a, b, paid := mk("/a", "order.created"), mk("/b", "*"), mk("/paid", "order.paid")
			ev, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", json.RawMessage(`{"order":7}`))
			if err != nil {
				t.Fatal(err)
			}
			// Pending at first: not queued twice.
			_, err = svc.ResendEvent(ctx, sys, w.ID, ev.ID, a.ID)
			wantCode(t, "resend while pending", err, keyplane.CodeDeliveryNotRetryable)
			if n, err := svc.ResendEvent(ctx, sys, w.ID, ev.ID, ""); err != nil || n != 0 {
				t.Errorf("resend to all while pending: %d, %v", n, err)
			}
			rc.setAnswer(func(string, string) (int, string) { return http.StatusOK, "" })
			if n := deliverDue(t, svc); n != 2 {
				t.Fatalf("first attempts: %d", n)
			}

			mark := rc.count()
			if n, err := svc.ResendEvent(ctx, sys, w.ID, ev.ID, a.ID); err != nil || n != 1 {
				t.Fatalf("resend to a: %d, %v", n, err)
			}
			if n := deliverDue(t, svc); n != 1 {
				t.Fatalf("resent attempts made: %d, want 1", n)
			}
			if got := rc.since(mark); len(got) != 1 || got[0].path != "/a" || got[0].webhookID != ev.ID || !got[0].signed {
				t.Errorf("resend to a delivered %+v", got)
			}
			mark = rc.count()
			if n, err := svc.ResendEvent(ctx, sys, w.ID, ev.ID, ""); err != nil || n != 2 {
				t.Fatalf("resend to all: %d, %v; want 2 (a and b, not paid)", n, err)
			}
			deliverDue(t, svc)
			paths := map[string]int{}
			for _, r := range rc.since(mark) {
				paths[r.path]++
				if r.webhookID != ev.ID || !r.signed {
					t.Errorf("resend to all: %+v", r)
				}
			}
			if len(paths) != 2 || paths["/a"] != 1 || paths["/b"] != 1 {
				t.Errorf("resend to all reached %v", paths)
			}

			// What became of the event, per endpoint.
			v, err := svc.GetEvent(ctx, sys, w.ID, ev.ID)
			if err != nil || len(v.Endpoints) != 2 {
				t.Fatalf("GetEvent: %+v, %v", v, err)
			}
			for _, p := range v.Endpoints {
				want := map[string]int{a.ID: 3, b.ID: 2}[p.EndpointID]
				if p.Attempts != want || p.Status != keyplane.DeliverySucceeded {
					t.Errorf("GetEvent: endpoint %+v, want %d attempts, succeeded", p, want)
				}
			}

			_, err = svc.ResendEvent(ctx, sys, w.ID, ev.ID, paid.ID)
			wantInvalid(t, "resend to an endpoint not subscribed", err, "endpointId")
			_, err = svc.ResendEvent(ctx, sys, w.ID, "evt_01JD0000000000000000000000", a.ID)
			wantCode(t, "unknown event", err, keyplane.CodeNotFound)
			_, err = svc.ResendEvent(ctx, sys, w.ID, ev.ID, "whk_01JD0000000000000000000000")
			wantCode(t, "unknown endpoint", err, keyplane.CodeNotFound)
			if _, err := svc.UpdateWebhook(ctx, sys, w.ID, a.ID, service.WebhookPatch{Enabled: keyplane.Some(false)}); err != nil {
				t.Fatal(err)
			}
			_, err = svc.ResendEvent(ctx, sys, w.ID, ev.ID, a.ID)
			wantInvalid(t, "resend to a disabled endpoint", err, "endpointId")

			// Another workspace: neither its endpoints nor this workspace's event are reachable.
			other, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
			if err != nil {
				t.Fatal(err)
			}
			oep, _, err := svc.CreateWebhook(ctx, sys, other.ID, service.WebhookInput{URL: rc.srv.URL + "/o", EventTypes: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.ResendEvent(ctx, sys, w.ID, ev.ID, oep.ID)
			wantCode(t, "resend to another workspace's endpoint", err, keyplane.CodeNotFound)
			_, err = svc.ResendEvent(ctx, sys, other.ID, ev.ID, "")
			wantCode(t, "resend of another workspace's event", err, keyplane.CodeNotFound)
			_, err = svc.GetEvent(ctx, sys, other.ID, ev.ID)
			wantCode(t, "get another workspace's event", err, keyplane.CodeNotFound)
			list, _, err := svc.ListEvents(ctx, sys, other.ID, keyplane.EventFilter{Limit: 10})
			if err != nil || len(list) != 0 {
				t.Errorf("another workspace lists %d events, %v", len(list), err)
			}

			// Retention: past it, the payload goes (the row and its attempts stay), and the event can no
			// longer be sent again, by a resend, a retry or a recovery.
			failed := b
			rc.setAnswer(func(string, string) (int, string) { return http.StatusBadGateway, "" })
			old, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", json.RawMessage(`{"order":8}`))
			if err != nil {
				t.Fatal(err)
			}
			deliverDue(t, svc)
			ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, failed.ID, store.DeliveryFilter{Status: keyplane.DeliveryFailed, Limit: 1})
			if err != nil || len(ds) != 1 || ds[0].EventID != old.ID {
				t.Fatalf("failed attempt of the old event: %+v, %v", ds, err)
			}
			since := clk.Now().Add(-time.Minute)
			if n, err := svc.PruneEvents(ctx); err != nil || n != 0 {
				t.Errorf("prune within the retention: %d, %v", n, err)
			}
			clk.Add(49 * time.Hour)
			if n, err := svc.PruneEvents(ctx); err != nil || n != 2 {
				t.Errorf("prune past the retention: %d, %v; want 2", n, err)
			}
			v, err = svc.GetEvent(ctx, sys, w.ID, old.ID)
			if err != nil || !v.PayloadDropped || v.Data != nil || len(v.Endpoints) != 1 {
				t.Errorf("a dropped event: %+v, %v", v, err)
			}
			_, err = svc.ResendEvent(ctx, sys, w.ID, old.ID, failed.ID)
			wantCode(t, "resend of a dropped event", err, keyplane.CodeEventPayloadDropped)
			_, err = svc.ResendEvent(ctx, sys, w.ID, old.ID, "")
			wantCode(t, "resend to all of a dropped event", err, keyplane.CodeEventPayloadDropped)
			_, err = svc.RetryDelivery(ctx, sys, w.ID, failed.ID, ds[0].ID)
			wantCode(t, "retry of a dropped event", err, keyplane.CodeEventPayloadDropped)
			_, err = svc.RecoverWebhook(ctx, sys, w.ID, failed.ID, since, nil)
			wantInvalid(t, "recovery of a window past the retention", err, "since")
		})
	}
}

// TestRecoverConcurrently: recoveries of the same window racing each other (two people pressing the
// button, two nodes) queue each failed event once between them, and resends racing them add
// nothing where an attempt is already pending.
func TestRecoverConcurrently(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			rc := newReceiver(t)
			hooks := localWebhooks(t)
			hooks.Schedule = []time.Duration{0}
			svc, _ := servicetest.Open(t, d, service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}), Webhooks: hooks})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.srv.URL + "/a", EventTypes: []string{"order.created"}})
			if err != nil {
				t.Fatal(err)
			}
			since := time.Now().Add(-time.Minute)
			var evs []string
			for range 12 {
				ev, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", nil)
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, ev.ID)
			}
			if n := deliverDue(t, svc); n != 12 {
				t.Fatalf("first attempts: %d", n)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			total := 0
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var n int
					var err error
					if i%2 == 0 {
						n, err = svc.RecoverWebhook(ctx, sys, w.ID, ep.ID, since, nil)
					} else {
						n, err = svc.ResendEvent(ctx, sys, w.ID, evs[i], "")
					}
					if err != nil {
						t.Errorf("racer %d: %v", i, err)
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}()
			}
			wg.Wait()
			if total != 12 {
				t.Errorf("racing recoveries and resends queued %d attempts, want 12 (one per failed event)", total)
			}
			ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Status: keyplane.DeliveryPending, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			per := map[string]int{}
			for _, dl := range ds {
				per[dl.EventID]++
			}
			for _, id := range evs {
				if per[id] != 1 {
					t.Errorf("event %s has %d pending attempts, want 1", id, per[id])
				}
			}
		})
	}
}

// TestDeliverDroppedPayload: an attempt that finds its event's payload dropped (queued in the moment
// the retention job dropped it) ends failed, saying why, and nothing is posted: never an empty event.
func TestDeliverDroppedPayload(t *testing.T) {
	clk := &fakeClock{now: time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)}
	rc := newReceiver(t)
	hooks := localWebhooks(t)
	hooks.Schedule = []time.Duration{0}
	svc, st := servicetest.Open(t, "sqlite", service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}),
		Now: clk.Now, Webhooks: hooks, EventRetention: time.Hour})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.srv.URL + "/a", EventTypes: []string{"order.created"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", json.RawMessage(`{"order":1}`))
	if err != nil {
		t.Fatal(err)
	}
	deliverDue(t, svc)
	clk.Add(2 * time.Hour)
	if n, err := svc.PruneEvents(ctx); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	now := clk.Now()
	late := &keyplane.Delivery{ID: id.NewAt(id.Delivery, now), WorkspaceID: w.ID, EndpointID: ep.ID, EventID: ev.ID, EventType: ev.Type,
		Attempt: 2, Status: keyplane.DeliveryPending, CreatedAt: now, NextAttemptAt: &now, Manual: true}
	if err := st.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertDelivery(ctx, late) }); err != nil {
		t.Fatal(err)
	}
	mark := rc.count()
	if n := deliverDue(t, svc); n != 1 {
		t.Fatalf("attempts made: %d", n)
	}
	if rc.count() != mark {
		t.Errorf("an event without its payload was posted")
	}
	ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Limit: 1})
	if err != nil || len(ds) != 1 || ds[0].ID != late.ID || ds[0].Status != keyplane.DeliveryFailed || !strings.Contains(ds[0].Error, "payload was dropped") {
		t.Errorf("the late attempt: %+v, %v", ds, err)
	}
}

// TestEventsListPermissions: the events list needs webhooks:read; the data of api_key.* events, whole
// keys, is hidden from a caller without api_keys:read (dataHidden), custom events' data is not;
// resending needs webhooks:write, and another workspace's key reads nothing.
func TestEventsListPermissions(t *testing.T) {
	svc, _ := servicetest.Open(t, "sqlite", service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"})})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	if _, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret}); err != nil {
		t.Fatal(err)
	}
	custom, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", json.RawMessage(`{"order":3}`))
	if err != nil {
		t.Fatal(err)
	}
	key := func(ws string, perms ...string) *keyplane.Caller {
		return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_caller"}, WorkspaceID: ws, Permissions: perms}
	}
	dev := key(w.ID, keyplane.PermWebhooksRead)
	evs, _, err := svc.ListEvents(ctx, dev, w.ID, keyplane.EventFilter{Limit: 10})
	if err != nil || len(evs) != 2 {
		t.Fatalf("list as webhooks:read: %d, %v", len(evs), err)
	}
	for _, e := range evs {
		switch e.Type {
		case keyplane.EventAPIKeyCreated:
			if !e.DataHidden || e.Data != nil {
				t.Errorf("an api_key event shown to a caller without api_keys:read: %s", e.Data)
			}
			one, err := svc.GetEvent(ctx, dev, w.ID, e.ID)
			if err != nil || !one.DataHidden || one.Data != nil {
				t.Errorf("GetEvent of an api_key event without api_keys:read: %+v, %v", one, err)
			}
		case "order.created":
			if e.DataHidden || string(e.Data) != `{"order":3}` {
				t.Errorf("a custom event: %+v", e)
			}
		}
	}
	reader := key(w.ID, keyplane.PermWebhooksRead, keyplane.PermAPIKeysRead)
	evs, _, err = svc.ListEvents(ctx, reader, w.ID, keyplane.EventFilter{Type: keyplane.EventAPIKeyCreated, Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].DataHidden || !strings.Contains(string(evs[0].Data), `"apiKey"`) {
		t.Errorf("an api_key event for a key reader: %+v, %v", evs, err)
	}
	_, _, err = svc.ListEvents(ctx, key(w.ID, keyplane.PermAPIKeysRead), w.ID, keyplane.EventFilter{Limit: 10})
	wantCode(t, "list without webhooks:read", err, keyplane.CodeForbidden)
	_, err = svc.ResendEvent(ctx, dev, w.ID, custom.ID, "")
	wantCode(t, "resend without webhooks:write", err, keyplane.CodeForbidden)
	_, err = svc.RecoverWebhook(ctx, dev, w.ID, "whk_01JD0000000000000000000000", time.Now().Add(-time.Hour), nil)
	wantCode(t, "recover without webhooks:write", err, keyplane.CodeForbidden)
	_, _, err = svc.ListEvents(ctx, key("ws_other", keyplane.PermWebhooksRead), w.ID, keyplane.EventFilter{Limit: 10})
	wantCode(t, "another workspace's key", err, keyplane.CodeNotFound)
	_, err = svc.GetEvent(ctx, key("ws_other", keyplane.PermWebhooksRead), w.ID, custom.ID)
	wantCode(t, "another workspace's key reads an event", err, keyplane.CodeNotFound)
}

// TestRecoverOnlyWhatIsStillWanted: an endpoint that no longer subscribes to a type does not get its
// failed events back from a recovery: one that stopped carrying key events may have been repointed
// by someone who may not read keys.
func TestRecoverOnlyWhatIsStillWanted(t *testing.T) {
	rc := newReceiver(t)
	hooks := localWebhooks(t)
	hooks.Schedule = []time.Duration{0}
	svc, _ := servicetest.Open(t, "sqlite", service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}), Webhooks: hooks})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: rc.srv.URL + "/a", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	if _, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.SendEvent(ctx, sys, w.ID, "order.created", nil); err != nil {
		t.Fatal(err)
	}
	if n := deliverDue(t, svc); n != 2 {
		t.Fatalf("attempts: %d", n)
	}
	if _, err := svc.UpdateWebhook(ctx, sys, w.ID, ep.ID, service.WebhookPatch{EventTypes: keyplane.Some([]string{"order.created"})}); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.RecoverWebhook(ctx, sys, w.ID, ep.ID, since, nil); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v; want 1 (order.created only)", n, err)
	}
	ds, _, err := svc.ListDeliveries(ctx, sys, w.ID, ep.ID, store.DeliveryFilter{Status: keyplane.DeliveryPending, Limit: 10})
	if err != nil || len(ds) != 1 || ds[0].EventType != "order.created" {
		t.Errorf("pending after the recovery: %+v, %v", ds, err)
	}
}
