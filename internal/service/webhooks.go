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
	"strings"
	"time"
	"unicode/utf8"

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
	maxEventData  = 256 << 10
)

// WebhookOptions configure webhook endpoints and their delivery.
type WebhookOptions struct {
	Policy webhook.URLPolicy
	// Lookup resolves host names for the SSRF guard; nil: the system resolver, or Guard's.
	Lookup webhook.LookupFunc
	// Guard, set by tests only, keeps URL checks and deliveries on this machine (see webhook.Guard):
	// it resolves names when Lookup is nil and guards the Client made here.
	Guard *webhook.Guard
	// Schedule of attempts; nil: DefaultRetrySchedule.
	Schedule []time.Duration
	// Client sends deliveries; nil: one made from Policy and Lookup.
	Client *webhook.Client
	// Kick is called after a commit that queued deliveries, so that a worker takes them at once.
	Kick func()
	// Delivered is called with every attempt's outcome ("succeeded" or "failed"), for metrics.
	Delivered func(outcome string)
	// Lease is how long a worker holds the attempts it takes; zero: deliveryLease. Tests of a
	// crash shorten it.
	Lease time.Duration
}

func (o *WebhookOptions) fill() {
	if o.Lookup == nil {
		o.Lookup = webhook.DefaultLookup
		if o.Guard != nil {
			o.Lookup = o.Guard.Lookup
		}
	}
	if o.Schedule == nil {
		o.Schedule = DefaultRetrySchedule
	}
	if o.Client == nil {
		o.Client = webhook.NewClient(webhook.ClientOptions{Policy: o.Policy, Lookup: o.Lookup, Timeout: keyplane.WebhookTimeout,
			MaxBody: keyplane.WebhookResponseKept, Guard: o.Guard})
	}
	if o.Lease <= 0 {
		o.Lease = deliveryLease
	}
	if o.Kick == nil {
		o.Kick = func() {}
	}
	if o.Delivered == nil {
		o.Delivered = func(string) {}
	}
}

// WebhookPolicy is the deployment's rule for endpoint URLs, for forms that explain it.
func (s *Service) WebhookPolicy() webhook.URLPolicy { return s.hooks.Policy }

// WebhookInput is a new endpoint.
type WebhookInput struct {
	URL         string
	Description string
	EventTypes  []string
	Enabled     *bool // nil: enabled
}

// WebhookPatch changes an endpoint; absent fields are left alone.
type WebhookPatch struct {
	URL         keyplane.Optional[string]
	Description keyplane.Optional[string]
	EventTypes  keyplane.Optional[[]string]
	Enabled     keyplane.Optional[bool]
}

// webhookAD binds a sealed signing secret to its endpoint and workspace.
func webhookAD(wsID, endpointID string) []byte {
	return []byte("keyplane/webhook-secret/v1\x00" + wsID + "\x00" + endpointID)
}

func webhookTarget(e *keyplane.WebhookEndpoint) keyplane.Target {
	return keyplane.Target{Type: "webhook_endpoint", ID: e.ID}
}

// checkURL validates an endpoint's URL, resolving its host: the SSRF guard at creation.
func (s *Service) checkURL(ctx context.Context, wsID string, v *keyplane.Validation, raw string) string {
	u, err := s.hooks.Policy.CheckURL(raw)
	if err != nil {
		v.Add("url", "%s", err.Error())
		return raw
	}
	if err := s.hooks.Policy.CheckHost(ctx, s.hooks.Lookup, u.Hostname()); err != nil {
		// The tenant reads a generic reason; what the resolver answered is for the operator only.
		v.Add("url", "%s", err.Error())
		s.log.InfoContext(ctx, "webhook URL refused", "workspace_id", wsID, "reason", webhook.Detail(err))
	}
	return u.String()
}

func (s *Service) checkEventTypes(v *keyplane.Validation, types []string) []string {
	if len(types) == 0 {
		v.Add("eventTypes", "must name at least one event type, or *")
		return nil
	}
	out := make([]string, 0, len(types))
	seen := map[string]bool{}
	for i, t := range types {
		switch {
		case t == keyplane.AllEvents:
		case !s.catalog.HasEventType(t):
			v.Add(fmt.Sprintf("eventTypes[%d]", i), "is not an event type of this deployment: see GET /v1/event-types")
			continue
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if seen[keyplane.AllEvents] {
		return []string{keyplane.AllEvents}
	}
	return out
}

// CarriesKeyEvents tells whether an endpoint with these event types receives keyplane's api_key.*
// events, whose payloads are whole key objects (name, permissions, meta, allow-lists).
func CarriesKeyEvents(types []string) bool {
	for _, t := range types {
		if t == keyplane.AllEvents {
			return true
		}
		// keyplane's own only: a deployment's custom type may share the prefix but carries its
		// sender's data.
		for _, b := range keyplane.BuiltinEventTypes {
			if t == b.Name && strings.HasPrefix(t, "api_key.") {
				return true
			}
		}
	}
	return false
}

// checkKeyEvents keeps key objects from those who may not read keys: an endpoint that carries key
// events (before or after a change) is created and changed only by a caller with api_keys:read, or
// a developer could subscribe, or repoint an admin's endpoint, and receive every key.
func checkKeyEvents(c *keyplane.Caller, wsID string, types ...[]string) error {
	for _, ts := range types {
		if CarriesKeyEvents(ts) {
			if c.Authorize(wsID, keyplane.PermAPIKeysRead) != nil {
				return keyplane.Errorf(keyplane.CodeForbidden, "an endpoint that receives api_key events (or *) is created and changed only with the %s permission: those events carry whole API keys", keyplane.PermAPIKeysRead)
			}
			return nil
		}
	}
	return nil
}

// CreateWebhook subscribes a URL to events and returns it with its signing secret, shown here once
// (and later to those who may reveal it).
func (s *Service) CreateWebhook(ctx context.Context, c *keyplane.Caller, wsID string, in WebhookInput) (*keyplane.WebhookEndpoint, string, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return nil, "", err
	}
	// Before the URL check: a refused caller does not make keyplane resolve host names.
	if err := checkKeyEvents(c, wsID, in.EventTypes); err != nil {
		return nil, "", err
	}
	var v keyplane.Validation
	u := s.checkURL(ctx, wsID, &v, in.URL)
	types := s.checkEventTypes(&v, in.EventTypes)
	in.Description = checkName(&v, "description", in.Description, keyplane.MaxDescriptionLen, false)
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	secret := webhook.NewSecret()
	var e *keyplane.WebhookEndpoint
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		if _, err := tx.GetWorkspace(ctx, wsID); err != nil {
			return nil, notFound(err, "workspace")
		}
		e = &keyplane.WebhookEndpoint{ID: id.NewAt(id.Webhook, now), WorkspaceID: wsID, URL: u, Description: in.Description,
			EventTypes: types, Enabled: in.Enabled == nil || *in.Enabled, CreatedAt: now, UpdatedAt: now}
		e.Secret = s.box.Seal([]byte(secret), webhookAD(wsID, e.ID))
		if err := tx.InsertWebhook(ctx, e); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "webhook.created", Target: webhookTarget(e),
			Changes: map[string]keyplane.Change{"url": {To: e.URL}, "eventTypes": {To: e.EventTypes}, "enabled": {To: e.Enabled}}}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// GetWebhook returns an endpoint of the workspace.
func (s *Service) GetWebhook(ctx context.Context, c *keyplane.Caller, wsID, endpointID string) (*keyplane.WebhookEndpoint, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksRead); err != nil {
		return nil, err
	}
	return s.webhook(ctx, wsID, endpointID)
}

// webhook reads an endpoint for a caller already authorized: the actions of webhooks:write (test
// sends, secret reveals) need no webhooks:read to find their endpoint.
func (s *Service) webhook(ctx context.Context, wsID, endpointID string) (*keyplane.WebhookEndpoint, error) {
	if !id.Valid(id.Webhook, endpointID) {
		return nil, keyplane.NotFound("webhook endpoint")
	}
	e, err := s.store.GetWebhook(ctx, wsID, endpointID)
	return e, notFound(err, "webhook endpoint")
}

// ListWebhooks lists the workspace's endpoints, newest first.
func (s *Service) ListWebhooks(ctx context.Context, c *keyplane.Caller, wsID string, limit int, cursor string) ([]keyplane.WebhookEndpoint, string, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksRead); err != nil {
		return nil, "", err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, "", err
	}
	out, next, err := s.store.ListWebhooks(ctx, wsID, limit, cursor)
	return out, next, badCursor(err)
}

// mutateWebhook loads an endpoint inside a change.
func (s *Service) mutateWebhook(ctx context.Context, c *keyplane.Caller, wsID, endpointID string, fn func(tx store.Tx, e *keyplane.WebhookEndpoint, now time.Time) (*outcome, error)) error {
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return err
	}
	if !id.Valid(id.Webhook, endpointID) {
		return keyplane.NotFound("webhook endpoint")
	}
	return s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		e, err := tx.GetWebhook(ctx, wsID, endpointID)
		if err != nil {
			return nil, notFound(err, "webhook endpoint")
		}
		return fn(tx, e, now)
	})
}

// UpdateWebhook changes an endpoint. Enabling it clears the reason keyplane disabled it for and its
// failure streak starts afresh with the next attempt.
func (s *Service) UpdateWebhook(ctx context.Context, c *keyplane.Caller, wsID, endpointID string, p WebhookPatch) (*keyplane.WebhookEndpoint, error) {
	// Before validating: a caller who may not change endpoints learns nothing from field errors and
	// cannot make keyplane resolve host names.
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	u := ""
	if p.URL.Set {
		if p.URL.Null {
			v.Add("url", "cannot be null")
		} else {
			u = s.checkURL(ctx, wsID, &v, p.URL.Value)
		}
	}
	var types []string
	if p.EventTypes.Set {
		types = s.checkEventTypes(&v, p.EventTypes.Value)
	}
	if p.Description.Set {
		p.Description.Value = checkName(&v, "description", p.Description.Value, keyplane.MaxDescriptionLen, false)
	}
	if p.Enabled.Set && p.Enabled.Null {
		v.Add("enabled", "cannot be null")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var out *keyplane.WebhookEndpoint
	err := s.mutateWebhook(ctx, c, wsID, endpointID, func(tx store.Tx, e *keyplane.WebhookEndpoint, now time.Time) (*outcome, error) {
		// Any field: a new URL, a re-enabled endpoint or a new description all act on where key
		// objects go.
		if err := checkKeyEvents(c, wsID, e.EventTypes, types); err != nil {
			return nil, err
		}
		changes := map[string]keyplane.Change{}
		if p.URL.Set && u != e.URL {
			changes["url"] = keyplane.Change{From: e.URL, To: u}
			e.URL = u
		}
		if p.Description.Set && p.Description.Value != e.Description {
			changes["description"] = keyplane.Change{From: e.Description, To: p.Description.Value}
			e.Description = p.Description.Value
		}
		if p.EventTypes.Set && strings.Join(types, "\x00") != strings.Join(e.EventTypes, "\x00") {
			changes["eventTypes"] = keyplane.Change{From: e.EventTypes, To: types}
			e.EventTypes = types
		}
		if p.Enabled.Set && p.Enabled.Value != e.Enabled {
			changes["enabled"] = keyplane.Change{From: e.Enabled, To: p.Enabled.Value}
			e.Enabled = p.Enabled.Value
			if e.Enabled {
				e.DisabledReason = ""
			}
		}
		out = e
		if len(changes) == 0 {
			return nil, nil
		}
		e.UpdatedAt = now
		if err := tx.UpdateWebhook(ctx, e); err != nil {
			return nil, err
		}
		if p.Enabled.Set && !e.Enabled {
			if _, err := tx.FailPendingDeliveries(ctx, e.ID, "the endpoint was disabled"); err != nil {
				return nil, err
			}
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "webhook.updated", Target: webhookTarget(e), Changes: changes}}, nil
	})
	return out, err
}

// DeleteWebhook removes an endpoint and its deliveries log; pending attempts end with it.
func (s *Service) DeleteWebhook(ctx context.Context, c *keyplane.Caller, wsID, endpointID string) error {
	return s.mutateWebhook(ctx, c, wsID, endpointID, func(tx store.Tx, e *keyplane.WebhookEndpoint, now time.Time) (*outcome, error) {
		if err := tx.DeleteWebhook(ctx, wsID, e.ID); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "webhook.deleted", Target: webhookTarget(e),
			Changes: map[string]keyplane.Change{"url": {From: e.URL}}}}, nil
	})
}

// RotateWebhookSecret gives an endpoint a new signing secret and returns it. The previous one keeps
// signing (a second signature) for WebhookSecretOverlap, so receivers can switch without a refusal.
func (s *Service) RotateWebhookSecret(ctx context.Context, c *keyplane.Caller, wsID, endpointID string) (*keyplane.WebhookEndpoint, string, error) {
	secret := webhook.NewSecret()
	var out *keyplane.WebhookEndpoint
	err := s.mutateWebhook(ctx, c, wsID, endpointID, func(tx store.Tx, e *keyplane.WebhookEndpoint, now time.Time) (*outcome, error) {
		until := now.Add(keyplane.WebhookSecretOverlap)
		e.PreviousSecret, e.PreviousSecretUntil = e.Secret, &until
		// The previous one is sealed to the same endpoint: it moves as it is.
		e.Secret = s.box.Seal([]byte(secret), webhookAD(wsID, e.ID))
		e.UpdatedAt = now
		if err := tx.UpdateWebhook(ctx, e); err != nil {
			return nil, err
		}
		out = e
		return &outcome{audit: &keyplane.AuditRecord{Action: "webhook.secret_rotated", Target: webhookTarget(e),
			Changes: map[string]keyplane.Change{"previousSecretExpiresAt": {To: keyplane.FormatTime(until)}}}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, secret, nil
}

// RevealWebhookSecret returns an endpoint's current signing secret, audited. People need the owner or
// admin role (developers manage endpoints but see a secret only when they create or rotate one) and to
// have entered their password in the last five minutes, as for a key; keys need webhooks:write, with
// which they could rotate it anyway.
func (s *Service) RevealWebhookSecret(ctx context.Context, c *keyplane.Caller, wsID, endpointID string) (*keyplane.WebhookEndpoint, string, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return nil, "", err
	}
	e, err := s.webhook(ctx, wsID, endpointID)
	if err != nil {
		return nil, "", err
	}
	if c.Actor.Type == keyplane.ActorUser {
		deny := ""
		switch {
		case !c.Operator && c.Role != keyplane.RoleOwner && c.Role != keyplane.RoleAdmin:
			deny = "only owners and admins may reveal a signing secret"
		case !c.Reauthenticated:
			deny = "revealing a signing secret needs your password, entered in the last 5 minutes"
		}
		if deny != "" {
			_ = s.Audit(ctx, c, wsID, keyplane.AuditRecord{Action: "webhook.secret_reveal_denied", Target: webhookTarget(e)})
			return nil, "", keyplane.Errorf(keyplane.CodeForbidden, "%s", deny)
		}
	}
	secret, err := s.box.Open(e.Secret, webhookAD(wsID, e.ID))
	if err != nil {
		return nil, "", fmt.Errorf("open webhook secret: %w", err)
	}
	if err := s.Audit(ctx, c, wsID, keyplane.AuditRecord{Action: "webhook.secret_revealed", Target: webhookTarget(e)}); err != nil {
		return nil, "", err
	}
	return e, string(secret), nil
}

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
		if _, err := tx.GetEvent(ctx, wsID, old.EventID); err != nil {
			return nil, notFound(err, "event")
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

// SendEvent emits a custom event of the deployment's catalog to the workspace's subscribed endpoints
// and says how many it was queued for. keyplane's own event types cannot be sent.
func (s *Service) SendEvent(ctx context.Context, c *keyplane.Caller, wsID, eventType string, data json.RawMessage) (*keyplane.Event, int, error) {
	if err := c.Authorize(wsID, keyplane.PermEventsWrite); err != nil {
		return nil, 0, err
	}
	var v keyplane.Validation
	switch {
	case eventType == "":
		v.Add("type", "is required")
	case isBuiltinEvent(eventType):
		v.Add("type", "is one of keyplane's own event types, which only keyplane sends")
	case !s.catalog.HasEventType(eventType):
		v.Add("type", "is not an event type of this deployment: declare it in the --config file")
	}
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage(`{}`)
	} else if data[0] != '{' {
		v.Add("data", "must be a JSON object")
	} else if len(data) > maxEventData {
		v.Add("data", "must be at most %d bytes", maxEventData)
	} else if !utf8.Valid(data) {
		// encoding/json passes bytes that are not UTF-8 through a raw value untouched, and
		// PostgreSQL refuses them as text.
		v.Add("data", "must be valid UTF-8")
	}
	if err := v.Err(); err != nil {
		return nil, 0, err
	}
	var ev *keyplane.Event
	var queued int
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		if _, err := tx.GetWorkspace(ctx, wsID); err != nil {
			return nil, notFound(err, "workspace")
		}
		var err error
		ev, queued, err = s.emit(ctx, tx, wsID, eventType, data, now)
		return &outcome{queued: queued}, err
	})
	if err != nil {
		return nil, 0, err
	}
	return ev, queued, nil
}

func isBuiltinEvent(t string) bool {
	for _, e := range keyplane.BuiltinEventTypes {
		if e.Name == t {
			return true
		}
	}
	return false
}

// emit stores an event and queues its first attempt to every enabled endpoint that wants it, in the
// caller's transaction: the change, its event and its deliveries commit together.
func (s *Service) emit(ctx context.Context, tx store.Tx, wsID, eventType string, data json.RawMessage, now time.Time) (*keyplane.Event, int, error) {
	e := &keyplane.Event{ID: id.NewAt(id.Event, now), WorkspaceID: wsID, Type: eventType, Data: data, CreatedAt: now}
	if err := tx.InsertEvent(ctx, e); err != nil {
		return nil, 0, fmt.Errorf("insert event: %w", err)
	}
	hooks, err := tx.SubscribedWebhooks(ctx, wsID, eventType)
	if err != nil {
		return nil, 0, err
	}
	due := now.Add(s.hooks.Schedule[0])
	for _, h := range hooks {
		d := &keyplane.Delivery{ID: id.NewAt(id.Delivery, now), WorkspaceID: wsID, EndpointID: h.ID, EventID: e.ID,
			EventType: eventType, Attempt: 1, Status: keyplane.DeliveryPending, CreatedAt: now, NextAttemptAt: &due}
		if err := tx.InsertDelivery(ctx, d); err != nil {
			return nil, 0, err
		}
	}
	return e, len(hooks), nil
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
