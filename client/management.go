package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
)

// Catalog and health

// Permissions lists the permission catalog: keyplane's own permissions and the deployment's, sorted
// by name (GET /v1/permissions).
func (c *Client) Permissions(ctx context.Context) ([]CatalogEntry, error) {
	var out []CatalogEntry
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/permissions", noWorkspace: true}, &out)
	return out, err
}

// EventTypes lists the event types: keyplane's own and the deployment's, sorted by name
// (GET /v1/event-types).
func (c *Client) EventTypes(ctx context.Context) ([]CatalogEntry, error) {
	var out []CatalogEntry
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/event-types", noWorkspace: true}, &out)
	return out, err
}

// Status answers the service's version, uptime and whether its store answers (GET /v1/status; no
// credential needed).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/status", noWorkspace: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ready reports whether the server is ready (GET /readyz): nil when its store answers, an *Error
// with status 503 when it does not.
func (c *Client) Ready(ctx context.Context) error {
	b, status, h, err := c.raw(ctx, call{method: http.MethodGet, path: "/readyz", noWorkspace: true})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		e := httpError(status, h, b)
		if status == http.StatusServiceUnavailable {
			e.Code = CodeUnavailable
		}
		return e
	}
	return nil
}

// OpenAPI returns the server's OpenAPI 3.1 document (GET /v1/openapi.json).
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	b, status, h, err := c.raw(ctx, call{method: http.MethodGet, path: "/v1/openapi.json", noWorkspace: true})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, httpError(status, h, b)
	}
	return json.RawMessage(b), nil
}

// Workspaces

// ListWorkspaces lists one page of workspaces, newest first: every workspace for an admin root key,
// its own for a workspace key.
func (c *Client) ListWorkspaces(ctx context.Context, p ListParams) (*Page[Workspace], error) {
	q := url.Values{}
	addPage(q, p.Limit, p.Cursor)
	return list[Workspace](ctx, c, "/v1/workspaces", q)
}

// AllWorkspaces ranges over every workspace, following the cursors from p.Cursor.
func (c *Client) AllWorkspaces(ctx context.Context, p ListParams) iter.Seq2[Workspace, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[Workspace], error) {
		p.Cursor = cursor
		return c.ListWorkspaces(ctx, p)
	})
}

// CreateWorkspace creates a workspace (admin root keys only). A slug in use is an invalid_request
// with details on slug.
func (c *Client) CreateWorkspace(ctx context.Context, req CreateWorkspaceRequest) (*Workspace, error) {
	var out Workspace
	if err := c.post(ctx, "/v1/workspaces", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWorkspace reads a workspace.
func (c *Client) GetWorkspace(ctx context.Context, id string) (*Workspace, error) {
	var out Workspace
	if _, err := c.get(ctx, "/v1/workspaces/"+seg(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWorkspace changes a workspace's name, slug or settings (admin root keys only).
func (c *Client) UpdateWorkspace(ctx context.Context, id string, req UpdateWorkspaceRequest) (*Workspace, error) {
	var out Workspace
	if err := c.patch(ctx, "/v1/workspaces/"+seg(id), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListMembers lists a workspace's members, oldest first (admin root keys only). The list is never
// paginated.
func (c *Client) ListMembers(ctx context.Context, workspaceID string) ([]Member, error) {
	var out []Member
	if _, err := c.get(ctx, "/v1/workspaces/"+seg(workspaceID)+"/members", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AddMember invites a person to a workspace (admin root keys only), creating their account (without
// a password) when there is none: the answer's Status is MemberInvited, and the person has no access
// until they accept from their own dashboard session. Someone already there (member or invited) gets
// the new role instead. Changing the last active owner's role is CodeLastOwner.
func (c *Client) AddMember(ctx context.Context, workspaceID string, req AddMemberRequest) (*Member, error) {
	var out Member
	if err := c.post(ctx, "/v1/workspaces/"+seg(workspaceID)+"/members", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveMember ends a person's membership of a workspace, or revokes their invitation, at once
// (DELETE /v1/workspaces/{id}/members/{userId}; admin root keys only), and answers the member as they
// were. Removing the last active owner is CodeLastOwner; a person who is not a member of that
// workspace is CodeNotFound.
func (c *Client) RemoveMember(ctx context.Context, workspaceID, userID string) (*Member, error) {
	var out Member
	if _, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/workspaces/" + seg(workspaceID) + "/members/" + seg(userID)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// API keys

// ListAPIKeys lists one page of the workspace's keys, newest first (api_keys:read).
func (c *Client) ListAPIKeys(ctx context.Context, p ListAPIKeysParams) (*Page[APIKey], error) {
	q := query("environment", string(p.Environment), "keyType", string(p.KeyType), "status", string(p.Status),
		"externalId", p.ExternalID, "identityId", p.IdentityID)
	addPage(q, p.Limit, p.Cursor)
	return list[APIKey](ctx, c, "/v1/api-keys", q)
}

// AllAPIKeys ranges over every key that matches p's filters, following the cursors from p.Cursor.
func (c *Client) AllAPIKeys(ctx context.Context, p ListAPIKeysParams) iter.Seq2[APIKey, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[APIKey], error) {
		p.Cursor = cursor
		return c.ListAPIKeys(ctx, p)
	})
}

// CreateAPIKey creates a key (api_keys:write). The answer's KeyValue is the key's value: for a secret
// key that is not recoverable, the only time it is shown.
func (c *Client) CreateAPIKey(ctx context.Context, req CreateAPIKeyRequest) (*APIKey, error) {
	var out APIKey
	if err := c.post(ctx, "/v1/api-keys", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAPIKey reads a key, never its value (api_keys:read).
func (c *Client) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	var out APIKey
	if _, err := c.get(ctx, "/v1/api-keys/"+seg(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateAPIKey changes a key, or enables or disables it (api_keys:write). A revoked key cannot
// change: key_revoked.
func (c *Client) UpdateAPIKey(ctx context.Context, id string, req UpdateAPIKeyRequest) (*APIKey, error) {
	var out APIKey
	if err := c.patch(ctx, "/v1/api-keys/"+seg(id), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeAPIKey revokes a key, irreversibly (DELETE /v1/api-keys/{id}; api_keys:write). Revoking a
// revoked key answers the same RevokedAt.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (*RevokedAPIKey, error) {
	var out RevokedAPIKey
	if _, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/api-keys/" + seg(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAPIKeyPermanently deletes a disabled or revoked key with all its stored values
// (DELETE /v1/api-keys/{id}?permanent=true; api_keys:write); an enabled, unrevoked key is
// key_not_deletable. The audit trail keeps its record.
func (c *Client) DeleteAPIKeyPermanently(ctx context.Context, id string) (*DeletedAPIKey, error) {
	var out DeletedAPIKey
	k := call{method: http.MethodDelete, path: "/v1/api-keys/" + seg(id), query: url.Values{"permanent": {"true"}}}
	if _, err := c.do(ctx, k, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateAPIKey gives a key a new value, keeping its id and settings (api_keys:write). The answer's
// KeyValue is the new value; the old one stops at once or after req.ExpireOldAfterSeconds.
func (c *Client) RotateAPIKey(ctx context.Context, id string, req RotateAPIKeyRequest) (*APIKey, error) {
	var out APIKey
	if err := c.post(ctx, "/v1/api-keys/"+seg(id)+"/rotate", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevealAPIKey shows a key's current value: a publishable key's for anyone with api_keys:read, a
// recoverable secret key's only for an admin root key. Every reveal, and every refusal, is audited.
func (c *Client) RevealAPIKey(ctx context.Context, id string) (*RevealedAPIKey, error) {
	var out RevealedAPIKey
	if err := c.post(ctx, "/v1/api-keys/"+seg(id)+"/reveal", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PublishableAPIKey answers the newest active publishable key of env ("" means live) with its
// KeyValue; not_found when there is none (api_keys:read).
func (c *Client) PublishableAPIKey(ctx context.Context, env Environment) (*APIKey, error) {
	var out APIKey
	if _, err := c.get(ctx, "/v1/api-keys/publishable", query("environment", string(env)), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// APIKeyUsage counts a key's requests per hour or day, oldest first, empty buckets included
// (logs:read).
func (c *Client) APIKeyUsage(ctx context.Context, id string, p UsageParams) ([]UsageBucket, error) {
	q := query("granularity", string(p.Granularity))
	addTime(q, "since", p.Since)
	addTime(q, "until", p.Until)
	var out []UsageBucket
	if _, err := c.get(ctx, "/v1/api-keys/"+seg(id)+"/usage", q, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Audit trail

// ListAuditLogs lists one page of the workspace's audit trail, newest first (audit:read).
func (c *Client) ListAuditLogs(ctx context.Context, p ListAuditLogsParams) (*Page[AuditEntry], error) {
	q := query("action", p.Action, "actorId", p.ActorID, "targetId", p.TargetID)
	addTime(q, "since", p.Since)
	addTime(q, "until", p.Until)
	addPage(q, p.Limit, p.Cursor)
	return list[AuditEntry](ctx, c, "/v1/audit-logs", q)
}

// AllAuditLogs ranges over every audit entry that matches p's filters, newest first.
func (c *Client) AllAuditLogs(ctx context.Context, p ListAuditLogsParams) iter.Seq2[AuditEntry, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[AuditEntry], error) {
		p.Cursor = cursor
		return c.ListAuditLogs(ctx, p)
	})
}

// VerifyAuditLogs asks the server to check the workspace's hash chain (audit:read).
func (c *Client) VerifyAuditLogs(ctx context.Context) (*AuditVerification, error) {
	var out AuditVerification
	if _, err := c.get(ctx, "/v1/audit-logs/verify", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Request log

// ListRequestLogs lists one page of the workspace's request log, newest first (logs:read). Entries
// are written in batches, within about a second of the request.
func (c *Client) ListRequestLogs(ctx context.Context, p ListRequestLogsParams) (*Page[RequestLog], error) {
	q := query("keyId", p.KeyID, "code", string(p.Code), "source", string(p.Source), "tag", p.Tag)
	addTime(q, "since", p.Since)
	addTime(q, "until", p.Until)
	addPage(q, p.Limit, p.Cursor)
	return list[RequestLog](ctx, c, "/v1/logs", q)
}

// AllRequestLogs ranges over every request log entry that matches p's filters, newest first.
func (c *Client) AllRequestLogs(ctx context.Context, p ListRequestLogsParams) iter.Seq2[RequestLog, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[RequestLog], error) {
		p.Cursor = cursor
		return c.ListRequestLogs(ctx, p)
	})
}

// Webhooks

// ListWebhooks lists one page of the workspace's webhook endpoints, newest first (webhooks:read).
func (c *Client) ListWebhooks(ctx context.Context, p ListParams) (*Page[Webhook], error) {
	q := url.Values{}
	addPage(q, p.Limit, p.Cursor)
	return list[Webhook](ctx, c, "/v1/webhooks", q)
}

// AllWebhooks ranges over every webhook endpoint of the workspace.
func (c *Client) AllWebhooks(ctx context.Context, p ListParams) iter.Seq2[Webhook, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[Webhook], error) {
		p.Cursor = cursor
		return c.ListWebhooks(ctx, p)
	})
}

// CreateWebhook subscribes a URL to event types (webhooks:write). The answer's Secret signs the
// deliveries (Standard Webhooks).
func (c *Client) CreateWebhook(ctx context.Context, req CreateWebhookRequest) (*Webhook, error) {
	var out Webhook
	if err := c.post(ctx, "/v1/webhooks", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWebhook reads an endpoint, never its secret (webhooks:read).
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	var out Webhook
	if _, err := c.get(ctx, "/v1/webhooks/"+seg(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWebhook changes, enables or disables an endpoint (webhooks:write).
func (c *Client) UpdateWebhook(ctx context.Context, id string, req UpdateWebhookRequest) (*Webhook, error) {
	var out Webhook
	if err := c.patch(ctx, "/v1/webhooks/"+seg(id), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWebhook deletes an endpoint and its deliveries log (webhooks:write).
func (c *Client) DeleteWebhook(ctx context.Context, id string) (*DeletedWebhook, error) {
	var out DeletedWebhook
	if _, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/webhooks/" + seg(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateWebhookSecret gives an endpoint a new signing secret (webhooks:write); the previous one
// keeps signing, as a second signature, until PreviousSecretExpiresAt.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (*Webhook, error) {
	var out Webhook
	if err := c.post(ctx, "/v1/webhooks/"+seg(id)+"/rotate-secret", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevealWebhookSecret answers an endpoint with its secret (webhooks:write; audited).
func (c *Client) RevealWebhookSecret(ctx context.Context, id string) (*Webhook, error) {
	var out Webhook
	if err := c.post(ctx, "/v1/webhooks/"+seg(id)+"/reveal-secret", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TestWebhook posts a test event to the endpoint now and answers what it answered, within 15 s
// (webhooks:write). eventType "" sends webhook.test.
func (c *Client) TestWebhook(ctx context.Context, id, eventType string) (*WebhookTestResult, error) {
	var body any
	if eventType != "" {
		body = map[string]string{"eventType": eventType}
	}
	var out WebhookTestResult
	if err := c.post(ctx, "/v1/webhooks/"+seg(id)+"/test", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDeliveries lists one page of an endpoint's delivery attempts, newest first (webhooks:read).
func (c *Client) ListDeliveries(ctx context.Context, webhookID string, p ListDeliveriesParams) (*Page[Delivery], error) {
	q := query("status", string(p.Status))
	addPage(q, p.Limit, p.Cursor)
	return list[Delivery](ctx, c, "/v1/webhooks/"+seg(webhookID)+"/deliveries", q)
}

// AllDeliveries ranges over every delivery attempt of an endpoint that matches p.
func (c *Client) AllDeliveries(ctx context.Context, webhookID string, p ListDeliveriesParams) iter.Seq2[Delivery, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[Delivery], error) {
		p.Cursor = cursor
		return c.ListDeliveries(ctx, webhookID, p)
	})
}

// RetryDelivery queues a new attempt of a delivery's event, due now, and answers it, pending
// (webhooks:write). Only a failed attempt is retried (CodeDeliveryNotRetryable otherwise); test
// sends are not retried.
func (c *Client) RetryDelivery(ctx context.Context, webhookID, deliveryID string) (*Delivery, error) {
	var out Delivery
	if err := c.post(ctx, "/v1/webhooks/"+seg(webhookID)+"/deliveries/"+seg(deliveryID)+"/retry", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendEvent sends a custom event to every enabled endpoint subscribed to its type (events:write).
func (c *Client) SendEvent(ctx context.Context, req SendEventRequest) (*SentEvent, error) {
	var out SentEvent
	if err := c.post(ctx, "/v1/events", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReportLeaks reports key values found in public (POST /v1/leaks; an admin root key): each secret
// key found gets its workspace's leakPolicy before the answer comes back. The results are in the
// order of req.Keys.
func (c *Client) ReportLeaks(ctx context.Context, req LeakReport) ([]LeakResult, error) {
	var out []LeakResult
	if err := c.post(ctx, "/v1/leaks", req, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ImportAPIKeys brings up to 1,000 keys that exist elsewhere into the workspace, keeping their
// values (api_keys:write): each item is answered on its own, by its index, with the new key's id or
// the reason it was not imported, while the others are imported all the same. A call of more than
// 1,000 keys, or that is malformed as a whole, is an *Error.
func (c *Client) ImportAPIKeys(ctx context.Context, req ImportAPIKeysRequest) (*ImportAPIKeysResult, error) {
	var out ImportAPIKeysResult
	if err := c.post(ctx, "/v1/api-keys/import", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
