package client

import (
	"context"
	"encoding/json"
	"iter"
	"time"
)

// Webhook recovery and the events list (API.md, "Leaked keys, imports, idempotency, webhook
// recovery").

// RecoverWebhookRequest is the window of POST /v1/webhooks/{id}/recover: events created at or after
// Since and before Until (zero: now).
type RecoverWebhookRequest struct {
	Since time.Time
	Until time.Time
}

// Queued is the answer of a recovery or a resend: how many attempts were queued.
type Queued struct {
	Queued int `json:"queued"`
}

// Event is an event of the workspace as the events list shows it.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	// Data is the payload as sent; null when PayloadDropped or DataHidden.
	Data json.RawMessage `json:"data"`
	// PayloadDropped: the event is past the deployment's event retention and can no longer be sent.
	PayloadDropped bool `json:"payloadDropped"`
	// DataHidden: an api_key.* event, read by a caller without api_keys:read.
	DataHidden bool `json:"dataHidden"`
	// Endpoints is what became of the event at each endpoint it was sent to (GetEvent only).
	Endpoints []EventEndpoint `json:"endpoints,omitempty"`
}

// EventEndpoint is an event's attempts to one endpoint.
type EventEndpoint struct {
	EndpointID    string         `json:"endpointId"`
	Attempts      int            `json:"attempts"`
	Status        DeliveryStatus `json:"status"` // the last attempt's
	LastAttemptAt time.Time      `json:"lastAttemptAt"`
}

// ListEventsParams filters the events list.
type ListEventsParams struct {
	Type   string
	Since  time.Time
	Until  time.Time
	Limit  int
	Cursor string
}

// RecoverWebhook queues one new attempt, due now, for every event of the window whose last attempt
// to the endpoint failed, and says how many (webhooks:write). Events that later succeeded or still
// have an attempt pending are not queued again, so recovering a window twice is safe.
func (c *Client) RecoverWebhook(ctx context.Context, webhookID string, req RecoverWebhookRequest) (*Queued, error) {
	body := map[string]string{"since": req.Since.UTC().Format(time.RFC3339Nano)}
	if !req.Until.IsZero() {
		body["until"] = req.Until.UTC().Format(time.RFC3339Nano)
	}
	var out Queued
	if err := c.post(ctx, "/v1/webhooks/"+seg(webhookID)+"/recover", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListEvents lists one page of the workspace's events, newest first (webhooks:read).
func (c *Client) ListEvents(ctx context.Context, p ListEventsParams) (*Page[Event], error) {
	q := query("type", p.Type)
	addTime(q, "since", p.Since)
	addTime(q, "until", p.Until)
	addPage(q, p.Limit, p.Cursor)
	return list[Event](ctx, c, "/v1/events", q)
}

// AllEvents ranges over every event that matches p's filters, newest first.
func (c *Client) AllEvents(ctx context.Context, p ListEventsParams) iter.Seq2[Event, error] {
	return All(ctx, p.Cursor, func(ctx context.Context, cursor string) (*Page[Event], error) {
		p.Cursor = cursor
		return c.ListEvents(ctx, p)
	})
}

// GetEvent reads an event with its attempts per endpoint (webhooks:read).
func (c *Client) GetEvent(ctx context.Context, id string) (*Event, error) {
	var out Event
	if _, err := c.get(ctx, "/v1/events/"+seg(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResendEvent queues one new attempt of an event to the endpoint endpointID, or, when it is "", to
// every enabled endpoint subscribed to the event's type, and says how many (webhooks:write). An
// event past the retention is CodeEventPayloadDropped (410); a named endpoint with an attempt of the
// event pending, CodeDeliveryNotRetryable (409).
func (c *Client) ResendEvent(ctx context.Context, id, endpointID string) (*Queued, error) {
	var body any
	if endpointID != "" {
		body = map[string]string{"endpointId": endpointID}
	}
	var out Queued
	if err := c.post(ctx, "/v1/events/"+seg(id)+"/resend", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
