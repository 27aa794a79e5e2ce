package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// maxEventData bounds a custom event's data.
const maxEventData = 256 << 10

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
