package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// Events past the retention keep their row with an empty data (a stored event's data is otherwise a JSON
// object, never empty): the deliveries log and the events list still name them.
const (
	cursorEvent byte = 'e'

	eventColumns     = `id, workspace_id, type, data, created_at`
	sqlListEvents    = `SELECT ` + eventColumns + ` FROM events WHERE workspace_id = ?`
	sqlEventType     = ` AND type = ?`
	sqlEventFrom     = ` AND id >= ?`
	sqlEventBefore   = ` AND id < ?`
	sqlListEventsEnd = ` ORDER BY id DESC LIMIT ?`

	sqlEventDeliveries = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries
		WHERE event_id = ? AND workspace_id = ? ORDER BY created_at, attempt, id`

	// The endpoint's last attempt of each event of the window, when it failed and none is pending
	// (an attempt queued before a later one failed, by a person, still counts as under way). The last
	// is the latest made, then the highest numbered: a retry is made in the millisecond its attempt
	// ended, which may be that of the attempt, so ids alone do not order them.
	sqlFailedDeliveriesPre = `SELECT `
	sqlFailedDeliveriesEnd = ` FROM events ev JOIN webhook_deliveries d ON d.event_id = ev.id
		WHERE ev.workspace_id = ? AND ev.id >= ? AND ev.id < ? AND ev.id > ? AND ev.data <> ''
		AND d.endpoint_id = ? AND d.workspace_id = ? AND d.status = 'failed'
		AND d.id = (SELECT x.id FROM webhook_deliveries x WHERE x.event_id = ev.id AND x.endpoint_id = d.endpoint_id
			ORDER BY x.created_at DESC, x.attempt DESC, x.id DESC LIMIT 1)
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.event_id = ev.id AND p.endpoint_id = d.endpoint_id AND p.status = 'pending')
		ORDER BY ev.id LIMIT ?`

	// An event still to be delivered keeps its payload whatever its age.
	sqlDropEventPayloads = `UPDATE events SET data = '' WHERE id IN (
		SELECT e.id FROM events e WHERE e.data <> '' AND e.id < ?
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
		ORDER BY e.id LIMIT ?)`
)

// sqlFailedDeliveries is the recovery's query, its columns those of scanDelivery taken from d.
var sqlFailedDeliveries = sqlFailedDeliveriesPre + prefixColumns("d.", deliveryColumns) + sqlFailedDeliveriesEnd

// prefixColumns qualifies each of a comma-separated list of columns with prefix.
func prefixColumns(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func scanEvent(s scanner) (*keyplane.Event, error) {
	var e keyplane.Event
	var data string
	var created int64
	if err := s.Scan(&e.ID, &e.WorkspaceID, &e.Type, &data, &created); err != nil {
		return nil, err
	}
	if data == "" {
		e.PayloadDropped = true
	} else {
		e.Data = []byte(data)
	}
	e.CreatedAt = fromMicros(created)
	return &e, nil
}

func (q *queries) ListEvents(ctx context.Context, workspaceID string, f store.EventFilter) ([]keyplane.Event, string, error) {
	const op = "list events"
	if err := checkLimit(op, f.Limit); err != nil {
		return nil, "", err
	}
	l := newListSQL(sqlListEvents, workspaceID)
	if f.Type != "" {
		l.add(sqlEventType, f.Type)
	}
	if f.Since != nil {
		l.add(sqlEventFrom, id.Floor(id.Event, *f.Since))
	}
	if f.Until != nil {
		l.add(sqlEventBefore, id.Floor(id.Event, *f.Until))
	}
	if err := l.after(op, cursorEvent, f.Cursor, sqlEventBefore); err != nil {
		return nil, "", err
	}
	l.add(sqlListEventsEnd)
	return listPage(ctx, q, op, l.b.String(), f.Limit, values(scanEvent),
		func(e *keyplane.Event) string { return encodeCursor(cursorEvent, e.ID) }, l.args...)
}

func (q *queries) EventDeliveries(ctx context.Context, workspaceID, eventID string) ([]keyplane.Delivery, error) {
	return list(ctx, q, "event deliveries", sqlEventDeliveries, scanDelivery, eventID, workspaceID)
}

func (q *queries) FailedDeliveries(ctx context.Context, workspaceID, endpointID string, since, until time.Time, after string, limit int) ([]keyplane.Delivery, error) {
	const op = "failed deliveries"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	return list(ctx, q, op, sqlFailedDeliveries, scanDelivery, workspaceID, id.Floor(id.Event, since), id.Floor(id.Event, until),
		after, endpointID, workspaceID, limit)
}

// DropEventPayloads is a prune: a batch in a transaction of its own, outside any chain.
func (db *DB) DropEventPayloads(ctx context.Context, before time.Time, limit int) (int64, error) {
	const op = "drop event payloads"
	if err := checkLimit(op, limit); err != nil {
		return 0, err
	}
	var n int64
	err := db.inTx(ctx, nil, func(stx store.Tx) error {
		t := stx.(*tx)
		res, err := t.exec(ctx, sqlDropEventPayloads, id.Floor(id.Event, before), limit)
		if err != nil {
			return t.fail(op, err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
	return n, err
}
