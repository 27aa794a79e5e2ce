package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/webhook"
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
	// A portal session is held to a person's rule: its first minutes count as a password just
	// entered (PortalCaller).
	if c.Actor.Type == keyplane.ActorUser || c.Portal {
		deny := ""
		switch {
		case !c.Operator && c.Role != keyplane.RoleOwner && c.Role != keyplane.RoleAdmin:
			deny = "only owners and admins may reveal a signing secret"
		case !c.Reauthenticated && c.Portal:
			deny = fmt.Sprintf("revealing a signing secret is open for 5 minutes after the portal is opened; open the portal again from %s", s.brandName(ctx, wsID))
		case !c.Reauthenticated:
			deny = "revealing a signing secret needs your password, entered in the last 5 minutes"
		}
		if deny != "" {
			return nil, "", s.auditRefusal(ctx, c, wsID, keyplane.AuditRecord{Action: "webhook.secret_reveal_denied", Target: webhookTarget(e)},
				keyplane.Errorf(keyplane.CodeForbidden, "%s", deny))
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
