package service

import (
	"context"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// DefaultEventRetention is how long an event's payload is kept for sending again (--event-retention).
const DefaultEventRetention = 30 * 24 * time.Hour

// recoverBatch bounds the attempts one transaction of a recovery queues: a window of a busy
// workspace may hold many failed events, and a transaction holds its workspace's chain lock.
const recoverBatch = 500

// EventView is an event as a caller may see it.
type EventView struct {
	keyplane.Event
	// DataHidden: the event carries a whole API key (an api_key.* event) and the caller may not read
	// keys, so Data is nil, as the audit trail hides key fields from them.
	DataHidden bool
	// Endpoints sums the event's attempts per endpoint, in the order of their first attempt
	// (GetEvent only).
	Endpoints []EventEndpoint
}

// EventEndpoint is what became of an event at one endpoint.
type EventEndpoint struct {
	EndpointID    string
	Attempts      int
	Status        keyplane.DeliveryStatus // the last attempt's
	LastAttemptAt time.Time               // the last attempt's creation
}

// EventRetention is how long event payloads are kept.
func (s *Service) EventRetention() time.Duration { return s.eventKeep }

// viewEvent hides what the caller may not read.
func viewEvent(c *keyplane.Caller, wsID string, e keyplane.Event) EventView {
	v := EventView{Event: e}
	if e.Data != nil && CarriesKeyEvents([]string{e.Type}) && c.Authorize(wsID, keyplane.PermAPIKeysRead) != nil {
		v.Data, v.DataHidden = nil, true
	}
	return v
}

// ListEvents lists the workspace's events, newest first: those of every type, keyplane's own and
// the deployment's, whether or not an endpoint wanted them.
func (s *Service) ListEvents(ctx context.Context, c *keyplane.Caller, wsID string, f keyplane.EventFilter) ([]EventView, string, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksRead); err != nil {
		return nil, "", err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, "", err
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		return nil, "", invalidField("until", "must be after since")
	}
	evs, next, err := s.store.ListEvents(ctx, wsID, f)
	if err != nil {
		return nil, "", badCursor(err)
	}
	out := make([]EventView, len(evs))
	for i := range evs {
		out[i] = viewEvent(c, wsID, evs[i])
	}
	return out, next, nil
}

// GetEvent returns an event of the workspace with what became of it at each endpoint.
func (s *Service) GetEvent(ctx context.Context, c *keyplane.Caller, wsID, eventID string) (*EventView, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksRead); err != nil {
		return nil, err
	}
	if !id.Valid(id.Event, eventID) {
		return nil, keyplane.NotFound("event")
	}
	ev, err := s.store.GetEvent(ctx, wsID, eventID)
	if err != nil {
		return nil, notFound(err, "event")
	}
	ds, err := s.store.EventDeliveries(ctx, wsID, eventID)
	if err != nil {
		return nil, err
	}
	v := viewEvent(c, wsID, *ev)
	v.Endpoints = []EventEndpoint{}
	at := map[string]int{}
	for _, d := range ds {
		i, ok := at[d.EndpointID]
		if !ok {
			i = len(v.Endpoints)
			at[d.EndpointID] = i
			v.Endpoints = append(v.Endpoints, EventEndpoint{EndpointID: d.EndpointID})
		}
		p := &v.Endpoints[i]
		p.Attempts++
		p.Status, p.LastAttemptAt = d.Status, d.CreatedAt
	}
	return &v, nil
}

// attemptsTo is what an event's attempts say about one endpoint: whether one is pending (under way
// or scheduled: a new one would go at the same time) and the number the next would have.
func attemptsTo(ds []keyplane.Delivery, endpointID string) (pending bool, next int) {
	next = 1
	for _, d := range ds {
		if d.EndpointID != endpointID {
			continue
		}
		pending = pending || d.Status == keyplane.DeliveryPending
		next = max(next, d.Attempt+1)
	}
	return pending, next
}

// manualAttempt is a new attempt of ev to endpointID, due now, that schedules nothing more when it
// fails.
func manualAttempt(ev *keyplane.Event, endpointID string, attempt int, now time.Time) *keyplane.Delivery {
	return &keyplane.Delivery{ID: id.NewAt(id.Delivery, now), WorkspaceID: ev.WorkspaceID, EndpointID: endpointID, EventID: ev.ID,
		EventType: ev.Type, Attempt: attempt, Status: keyplane.DeliveryPending, CreatedAt: now, NextAttemptAt: &now, Manual: true}
}

func errPayloadDropped(ev *keyplane.Event) error {
	return keyplane.Errorf(keyplane.CodeEventPayloadDropped,
		"event %s is older than the event retention: its payload was dropped and it can no longer be sent", ev.ID)
}

// ResendEvent queues a new attempt of an event to one endpoint of the workspace, or, when
// endpointID is empty, to every enabled endpoint subscribed to its type now, and says how many it
// queued. An endpoint must be subscribed to the event's type (so that a resend never sends an
// event, such as a whole key, where its subscription would not), and enabled. An endpoint that has
// an attempt of the event pending is not sent it twice: named, it is refused (409
// delivery_not_retryable); when all are meant, it is skipped. Each attempt is manual: one attempt,
// whose failure schedules nothing more. An event whose payload was dropped answers 410
// event_payload_dropped.
func (s *Service) ResendEvent(ctx context.Context, c *keyplane.Caller, wsID, eventID, endpointID string) (int, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return 0, err
	}
	if !id.Valid(id.Event, eventID) {
		return 0, keyplane.NotFound("event")
	}
	if endpointID != "" && !id.Valid(id.Webhook, endpointID) {
		return 0, keyplane.NotFound("webhook endpoint")
	}
	var queued int
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		ev, err := tx.GetEvent(ctx, wsID, eventID)
		if err != nil {
			return nil, notFound(err, "event")
		}
		var targets []keyplane.WebhookEndpoint
		if endpointID != "" {
			e, err := tx.GetWebhook(ctx, wsID, endpointID)
			if err != nil {
				return nil, notFound(err, "webhook endpoint")
			}
			switch {
			case !e.Subscribed(ev.Type):
				return nil, invalidField("endpointId", "is not subscribed to %s events: subscribe it first", ev.Type)
			case !e.Enabled:
				return nil, invalidField("endpointId", "is a disabled endpoint: enable it first")
			}
			targets = []keyplane.WebhookEndpoint{*e}
		} else if targets, err = tx.SubscribedWebhooks(ctx, wsID, ev.Type); err != nil {
			return nil, err
		}
		if ev.PayloadDropped {
			return nil, errPayloadDropped(ev)
		}
		ds, err := tx.EventDeliveries(ctx, wsID, ev.ID)
		if err != nil {
			return nil, err
		}
		var sent []string
		for _, e := range targets {
			pending, next := attemptsTo(ds, e.ID)
			if pending {
				if endpointID != "" {
					return nil, keyplane.Errorf(keyplane.CodeDeliveryNotRetryable,
						"an attempt of event %s to endpoint %s is pending: it is not queued twice", ev.ID, e.ID)
				}
				continue
			}
			if err := tx.InsertDelivery(ctx, manualAttempt(ev, e.ID, next, now)); err != nil {
				return nil, err
			}
			sent = append(sent, e.ID)
		}
		queued = len(sent)
		if queued == 0 {
			return nil, nil
		}
		return &outcome{queued: queued, audit: &keyplane.AuditRecord{Action: "event.resent",
			Target:  keyplane.Target{Type: "event", ID: ev.ID},
			Changes: map[string]keyplane.Change{"endpointIds": {To: sent}}}}, nil
	})
	return queued, err
}

// RecoverWebhook queues one new attempt, due now, for every event of the workspace created in
// [since, until) (until nil: now) whose last attempt to the endpoint failed: not those that later
// succeeded, and not those still pending (a scheduled retry, a manual attempt, an earlier
// recovery's): they are under way, and an event is never queued twice to an endpoint. It says how
// many it queued. Events of types the endpoint no longer subscribes to are not sent to it again.
// Recovered attempts are manual: one each; a failure is logged and nothing more is scheduled. A window that starts before the event retention is refused, since those events'
// payloads are gone; the endpoint must be enabled.
func (s *Service) RecoverWebhook(ctx context.Context, c *keyplane.Caller, wsID, endpointID string, since time.Time, until *time.Time) (int, error) {
	if err := c.Authorize(wsID, keyplane.PermWebhooksWrite); err != nil {
		return 0, err
	}
	now := s.clock()
	end := now
	if until != nil {
		end = *until
	}
	switch oldest := now.Add(-s.eventKeep); {
	case !since.Before(end):
		if until == nil {
			return 0, invalidField("since", "must be in the past")
		}
		return 0, invalidField("until", "must be after since")
	case since.Before(oldest):
		return 0, invalidField("since", "is older than the event retention (%s): events before %s no longer have a payload to send",
			s.eventKeep, keyplane.FormatTime(oldest))
	}
	total, after := 0, ""
	for {
		found, queued, last := 0, 0, ""
		err := s.mutateWebhook(ctx, c, wsID, endpointID, func(tx store.Tx, e *keyplane.WebhookEndpoint, now time.Time) (*outcome, error) {
			if !e.Enabled {
				return nil, invalidField("endpointId", "is a disabled endpoint: enable it first")
			}
			ds, err := tx.FailedDeliveries(ctx, wsID, e.ID, since, end, after, recoverBatch)
			if err != nil {
				return nil, err
			}
			found = len(ds)
			if found == 0 {
				return nil, nil
			}
			last = ds[found-1].EventID
			for _, d := range ds {
				// Only what the endpoint still wants: one that no longer carries key events may have
				// been repointed by someone who may not read keys, and must not get old ones back.
				if !e.Subscribed(d.EventType) {
					continue
				}
				ev := &keyplane.Event{ID: d.EventID, WorkspaceID: wsID, Type: d.EventType}
				if err := tx.InsertDelivery(ctx, manualAttempt(ev, e.ID, d.Attempt+1, now)); err != nil {
					return nil, err
				}
				queued++
			}
			if queued == 0 {
				return nil, nil
			}
			return &outcome{queued: queued, audit: &keyplane.AuditRecord{Action: "webhook.recovered", Target: webhookTarget(e),
				Changes: map[string]keyplane.Change{"since": {To: keyplane.FormatTime(since)}, "until": {To: keyplane.FormatTime(end)},
					"queued": {To: queued}}}}, nil
		})
		if err != nil {
			if total > 0 {
				return total, fmt.Errorf("recover after queueing %d attempts: %w", total, err)
			}
			return 0, err
		}
		total += queued
		if found < recoverBatch {
			return total, nil
		}
		after = last
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// PruneEvents drops the payloads of events older than the event retention, except those an attempt
// is still pending for, and says how many. serve runs it every hour on one node.
func (s *Service) PruneEvents(ctx context.Context) (int64, error) {
	before := s.clock().Add(-s.eventKeep)
	return pruneAll(ctx, func(ctx context.Context) (int64, error) {
		return s.store.DropEventPayloads(ctx, before, pruneBatch)
	})
}
