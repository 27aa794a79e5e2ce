package service

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/webhook"
)

// DefaultRetrySchedule is the contract's: entry i is the wait before attempt i+1, the first counted
// from the event.
var DefaultRetrySchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Webhook delivery tuning.
const (
	// deliveryLease is how long a worker holds an attempt: room for it to wait behind its
	// endpoint's running attempts, make it and record it (internal/delivery starts no attempt that
	// could outlast its lease). A node that dies leaves its attempts to others after this.
	deliveryLease = 2 * time.Minute
	// maxRetryAfter bounds how long an endpoint's Retry-After may push its next attempt.
	maxRetryAfter = 6 * time.Hour
)

// signingSecrets are the decoded secrets that sign a delivery now: the current one, and the previous
// one while its overlap lasts.
func (s *Service) signingSecrets(e *keyplane.WebhookEndpoint, now time.Time) ([][]byte, error) {
	var out [][]byte
	sealed := [][]byte{e.Secret}
	if e.PreviousSecret != nil && e.PreviousSecretUntil != nil && now.Before(*e.PreviousSecretUntil) {
		sealed = append(sealed, e.PreviousSecret)
	}
	for _, b := range sealed {
		plain, err := s.box.Open(b, webhookAD(e.WorkspaceID, e.ID))
		if err != nil {
			return nil, fmt.Errorf("open webhook secret: %w", err)
		}
		key, err := webhook.DecodeSecret(string(plain))
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		out = append(out, key)
	}
	return out, nil
}

// eventBody is what a delivery posts.
func eventBody(e *keyplane.Event) ([]byte, error) {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	return json.Marshal(struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Timestamp   string          `json:"timestamp"`
		WorkspaceID string          `json:"workspaceId"`
		Data        json.RawMessage `json:"data"`
	}{e.ID, e.Type, keyplane.FormatTime(e.CreatedAt), e.WorkspaceID, data})
}

// attempt posts body to the endpoint, signed, and says how it went.
func (s *Service) attempt(ctx context.Context, e *keyplane.WebhookEndpoint, msgID string, body []byte) (webhook.Result, error) {
	now := s.clock()
	secrets, err := s.signingSecrets(e, now)
	if err != nil {
		return webhook.Result{}, err
	}
	h := http.Header{}
	webhook.Headers(h, secrets, msgID, now, body)
	r := s.hooks.Client.Post(ctx, e.URL, h, body)
	// The deliveries log gets webhook.Describe's generic reason; where the resolver's answer was left
	// out of it, the operator's log has it.
	if r.Err != nil {
		if detail := webhook.Detail(r.Err); detail != webhook.Describe(r.Err) {
			s.log.InfoContext(ctx, "webhook attempt refused", "workspace_id", e.WorkspaceID, "endpoint_id", e.ID, "reason", detail)
		}
	}
	return r, nil
}

// record fills an attempt's outcome from what the endpoint answered.
func record(d *keyplane.Delivery, r webhook.Result) {
	d.StatusCode, d.ResponseBody = r.StatusCode, r.Body
	ms := r.Duration.Milliseconds()
	d.DurationMs = &ms
	switch {
	case r.Err != nil:
		d.Status, d.Error = keyplane.DeliveryFailed, webhook.Describe(r.Err)
	case r.StatusCode >= 200 && r.StatusCode < 300:
		d.Status, d.Error = keyplane.DeliverySucceeded, ""
	default:
		d.Status, d.Error = keyplane.DeliveryFailed, "the endpoint answered "+strconv.Itoa(r.StatusCode)+" "+http.StatusText(r.StatusCode)+"; only 2xx is success"
	}
}

// TestResult is a test send's outcome, as the contract shows it.
type TestResult struct {
	StatusCode int // 0: none
	Body       string
	Error      string
	Duration   time.Duration
}

// TestWebhook sends a dummy event of eventType (default webhook.test) to the endpoint now, waits for
// the answer, logs the attempt as a webhook.test delivery and never retries it.
func (s *Service) TestWebhook(ctx context.Context, c *keyplane.Caller, wsID, endpointID, eventType string) (*TestResult, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return nil, err
	}
	if eventType == "" {
		eventType = keyplane.EventWebhookTest
	}
	if !s.catalog.HasEventType(eventType) {
		return nil, invalidField("eventType", "is not an event type of this deployment: see GET /v1/event-types")
	}
	e, err := s.webhook(ctx, wsID, endpointID)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	ev := &keyplane.Event{ID: id.NewAt(id.Event, now), WorkspaceID: wsID, Type: eventType, CreatedAt: now,
		Data: json.RawMessage(`{"test":true,"message":"A test event sent from keyplane. It changes nothing."}`)}
	body, err := eventBody(ev)
	if err != nil {
		return nil, err
	}
	r, err := s.attempt(ctx, e, ev.ID, body)
	if err != nil {
		return nil, err
	}
	d := &keyplane.Delivery{ID: id.NewAt(id.Delivery, now), WorkspaceID: wsID, EndpointID: e.ID, EventID: ev.ID,
		EventType: keyplane.EventWebhookTest, Attempt: 1, CreatedAt: now, Manual: true}
	record(d, r)
	if err := s.inTx(ctx, wsID, func(tx store.Tx) error { return tx.InsertDelivery(ctx, d) }); err != nil {
		return nil, err
	}
	s.hooks.Delivered(string(d.Status))
	return &TestResult{StatusCode: r.StatusCode, Body: r.Body, Error: d.Error, Duration: r.Duration}, nil
}

// ListDeliveries lists an endpoint's attempts, newest first.
func (s *Service) ListDeliveries(ctx context.Context, c *keyplane.Caller, wsID, endpointID string, f keyplane.DeliveryFilter) ([]keyplane.Delivery, string, error) {
	if _, err := s.GetWebhook(ctx, c, wsID, endpointID); err != nil {
		return nil, "", err
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", invalidField("status", "must be pending, succeeded or failed")
	}
	out, next, err := s.store.ListDeliveries(ctx, wsID, endpointID, f)
	return out, next, badCursor(err)
}

// RetryDelivery queues a new attempt of a delivery's event to its endpoint, due now. It is manual: its
// failure schedules nothing more.
func (s *Service) RetryDelivery(ctx context.Context, c *keyplane.Caller, wsID, endpointID, deliveryID string) (*keyplane.Delivery, error) {
	var d *keyplane.Delivery
	err := s.mutateWebhook(ctx, c, wsID, endpointID, func(tx store.Tx, e *keyplane.WebhookEndpoint, now time.Time) (*outcome, error) {
		if !id.Valid(id.Delivery, deliveryID) {
			return nil, keyplane.NotFound("delivery")
		}
		old, err := tx.GetDelivery(ctx, wsID, e.ID, deliveryID)
		if err != nil {
			return nil, notFound(err, "delivery")
		}
		if old.EventType == keyplane.EventWebhookTest {
			return nil, invalidField("deliveryId", "is a test send, which is not retried: send a new test event")
		}
		// Only a failure is retried, as the dashboard offers: re-sending one that succeeded would
		// replay an old event (a key's full object) to wherever the endpoint points now, and one
		// still pending would be sent twice.
		if old.Status != keyplane.DeliveryFailed {
			return nil, keyplane.Errorf(keyplane.CodeDeliveryNotRetryable, "attempt %s is %s: only a failed attempt can be retried", old.ID, old.Status)
		}
		if !e.Enabled {
			return nil, invalidField("deliveryId", "belongs to a disabled endpoint: enable the endpoint first")
		}
		ev, err := tx.GetEvent(ctx, wsID, old.EventID)
		if err != nil {
			return nil, notFound(err, "event")
		}
		if ev.PayloadDropped {
			return nil, errPayloadDropped(ev)
		}
		d = &keyplane.Delivery{ID: id.NewAt(id.Delivery, now), WorkspaceID: wsID, EndpointID: e.ID, EventID: old.EventID,
			EventType: old.EventType, Attempt: old.Attempt + 1, Status: keyplane.DeliveryPending, CreatedAt: now, NextAttemptAt: &now, Manual: true}
		if err := tx.InsertDelivery(ctx, d); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "webhook.delivery_retried", Target: webhookTarget(e),
			Changes: map[string]keyplane.Change{"deliveryId": {To: d.ID}, "eventId": {To: d.EventID}}}, queued: 1}, nil
	})
	return d, err
}

// ClaimDeliveries leases up to limit due attempts to endpoints not in exclude, for a worker to make
// with Deliver under the returned claim before the returned time, when the lease lapses.
func (s *Service) ClaimDeliveries(ctx context.Context, limit int, exclude []string) ([]keyplane.Delivery, string, time.Time, error) {
	var b [12]byte
	cryptorand.Read(b[:])
	claim := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.clock()
	until := now.Add(s.hooks.Lease)
	ds, err := s.store.ClaimDeliveries(ctx, now, until, claim, limit, exclude)
	return ds, claim, until, err
}

// Deliver makes a leased attempt: posts the event, records the outcome, schedules the next attempt
// when one is left, and disables the endpoint when it answered 410 Gone or has failed for
// WebhookDisableAfter. Only errors of the store are returned; the endpoint's failures are outcomes.
func (s *Service) Deliver(ctx context.Context, d keyplane.Delivery, claim string) error {
	e, err := s.store.GetWebhook(ctx, d.WorkspaceID, d.EndpointID)
	if err != nil {
		return fmt.Errorf("deliver %s: %w", d.ID, err)
	}
	ev, err := s.store.GetEvent(ctx, d.WorkspaceID, d.EventID)
	if err != nil {
		return fmt.Errorf("deliver %s: %w", d.ID, err)
	}
	if ev.PayloadDropped {
		// Only a race leaves an attempt to an event whose payload went (the retention job keeps
		// events with attempts pending, and resends refuse dropped ones): it ends, unsent.
		d.Status, d.Error = keyplane.DeliveryFailed, "the event's payload was dropped after the event retention: it can no longer be sent"
		zero := int64(0)
		d.DurationMs = &zero
		d.Manual = true // not the endpoint's failure: its health does not move
		if _, err := s.store.FinishDelivery(ctx, &d, claim, s.clock(), nil); err != nil {
			return fmt.Errorf("deliver %s: %w", d.ID, err)
		}
		s.hooks.Delivered(string(d.Status))
		return nil
	}
	body, err := eventBody(ev)
	if err != nil {
		return err
	}
	r, err := s.attempt(ctx, e, ev.ID, body)
	if err != nil {
		return err
	}
	record(&d, r)
	now := s.clock()
	var next *keyplane.Delivery
	gone := r.Err == nil && r.StatusCode == http.StatusGone
	if d.Status == keyplane.DeliveryFailed && !d.Manual && !gone && d.Attempt < len(s.hooks.Schedule) {
		due := now.Add(s.retryWait(d.Attempt, r.Header, now))
		next = &keyplane.Delivery{ID: id.NewAt(id.Delivery, now), WorkspaceID: d.WorkspaceID, EndpointID: d.EndpointID, EventID: d.EventID,
			EventType: d.EventType, Attempt: d.Attempt + 1, Status: keyplane.DeliveryPending, CreatedAt: now, NextAttemptAt: &due}
	}
	failing, err := s.store.FinishDelivery(ctx, &d, claim, now, next)
	if err != nil {
		return fmt.Errorf("deliver %s: %w", d.ID, err)
	}
	s.hooks.Delivered(string(d.Status))
	switch {
	case gone:
		return s.disableWebhook(ctx, e, "the endpoint answered 410 Gone")
	case d.Status == keyplane.DeliveryFailed && failing != nil && now.Sub(*failing) >= keyplane.WebhookDisableAfter:
		return s.disableWebhook(ctx, e, "every delivery failed for 5 days, since "+keyplane.FormatTime(*failing))
	}
	return nil
}

// retryWait is the wait before attempt n+1: the schedule's, within ±20 % so that an endpoint's
// retries do not arrive all at once, or longer when the endpoint asked with Retry-After.
func (s *Service) retryWait(n int, h http.Header, now time.Time) time.Duration {
	wait := s.hooks.Schedule[n]
	if wait > 0 {
		wait += time.Duration((rand.Float64()*0.4 - 0.2) * float64(wait))
	}
	if ra := h.Get("Retry-After"); ra != "" {
		var asked time.Duration
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			asked = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			asked = t.Sub(now)
		}
		wait = max(wait, min(asked, maxRetryAfter))
	}
	return wait
}

// disableWebhook is keyplane turning an endpoint off: its pending attempts end, the change is
// audited, and endpoint.disabled goes to the workspace's other endpoints that want it.
func (s *Service) disableWebhook(ctx context.Context, target *keyplane.WebhookEndpoint, reason string) error {
	c := keyplane.System("webhook delivery")
	return s.change(ctx, c, target.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		e, err := tx.GetWebhook(ctx, target.WorkspaceID, target.ID)
		if err != nil || !e.Enabled {
			return nil, nil // gone, or already off: nothing to do
		}
		e.Enabled, e.DisabledReason, e.UpdatedAt = false, reason, now
		if err := tx.UpdateWebhook(ctx, e); err != nil {
			return nil, err
		}
		if _, err := tx.FailPendingDeliveries(ctx, e.ID, "the endpoint was disabled: "+reason); err != nil {
			return nil, err
		}
		data, err := json.Marshal(map[string]any{"id": e.ID, "url": e.URL, "reason": reason})
		if err != nil {
			return nil, err
		}
		_, queued, err := s.emit(ctx, tx, e.WorkspaceID, keyplane.EventEndpointDisabled, data, now)
		if err != nil {
			return nil, err
		}
		return &outcome{queued: queued, audit: &keyplane.AuditRecord{Action: "webhook.disabled", Target: webhookTarget(e),
			Changes: map[string]keyplane.Change{"enabled": {From: true, To: false}, "disabledReason": {To: reason}}}}, nil
	})
}
