package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

const (
	cursorWebhook  = 'h'
	cursorDelivery = 'd'

	webhookColumns = `id, workspace_id, url, description, event_types, enabled, disabled_reason, secret,
		prev_secret, prev_secret_until, failing_since, created_at, updated_at`
	sqlInsertWebhook = `INSERT INTO webhook_endpoints (` + webhookColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	sqlUpdateWebhook = `UPDATE webhook_endpoints SET url = ?, description = ?, event_types = ?, enabled = ?,
		disabled_reason = ?, secret = ?, prev_secret = ?, prev_secret_until = ?, updated_at = ?
		WHERE id = ? AND workspace_id = ?`
	sqlDeleteWebhook           = `DELETE FROM webhook_endpoints WHERE id = ? AND workspace_id = ?`
	sqlDeleteWebhookDeliveries = `DELETE FROM webhook_deliveries WHERE endpoint_id = ? AND workspace_id = ?`
	sqlGetWebhook              = `SELECT ` + webhookColumns + ` FROM webhook_endpoints WHERE id = ? AND workspace_id = ?`
	sqlListWebhooks            = `SELECT ` + webhookColumns + ` FROM webhook_endpoints WHERE workspace_id = ?`
	sqlWebhookBefore           = ` AND id < ?`
	sqlListWebhooksEnd         = ` ORDER BY id DESC LIMIT ?`
	sqlEnabledWebhooks         = `SELECT ` + webhookColumns + ` FROM webhook_endpoints
		WHERE workspace_id = ? AND enabled = TRUE ORDER BY id`

	deliveryColumns = `id, workspace_id, endpoint_id, event_id, event_type, attempt, status, status_code,
		response_body, error, duration_ms, created_at, next_attempt_at, manual`
	sqlInsertDelivery = `INSERT INTO webhook_deliveries (` + deliveryColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	sqlGetDelivery = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries
		WHERE id = ? AND endpoint_id = ? AND workspace_id = ?`
	sqlListDeliveries = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries
		WHERE endpoint_id = ? AND workspace_id = ?`
	sqlDeliveryStatus    = ` AND status = ?`
	sqlDeliveryBefore    = ` AND id < ?`
	sqlListDeliveriesEnd = ` ORDER BY id DESC LIMIT ?`
	sqlFailPending       = `UPDATE webhook_deliveries SET status = 'failed', error = ?, next_attempt_at = NULL, claim = NULL, claimed_until = NULL
		WHERE endpoint_id = ? AND status = 'pending'`
	sqlClaimDeliveriesPre = `UPDATE webhook_deliveries SET claim = ?, claimed_until = ? WHERE id IN (
		SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND (d.claimed_until IS NULL OR d.claimed_until < ?)
		AND e.enabled = TRUE`
	sqlClaimDeliveriesEnd = ` ORDER BY d.next_attempt_at LIMIT ?`
	sqlClaimReturning     = `) RETURNING ` + deliveryColumns
	sqlFinishDelivery     = `UPDATE webhook_deliveries SET status = ?, status_code = ?, response_body = ?, error = ?,
		duration_ms = ?, next_attempt_at = NULL, claim = NULL, claimed_until = NULL
		WHERE id = ? AND status = 'pending' AND claim = ?`
	sqlWebhookSucceeded = `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?`
	sqlWebhookFailed    = `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ?`
	sqlWebhookFailing   = `SELECT failing_since FROM webhook_endpoints WHERE id = ?`

	sqlGetEvent = `SELECT ` + eventColumns + ` FROM events WHERE id = ? AND workspace_id = ?`

	sqlInsertEvent = `INSERT INTO events (id, workspace_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
)

func scanWebhook(s scanner) (*keyplane.WebhookEndpoint, error) {
	var e keyplane.WebhookEndpoint
	var types string
	var prevUntil, failing sql.NullInt64
	var created, updated int64
	if err := s.Scan(&e.ID, &e.WorkspaceID, &e.URL, &e.Description, &types, &e.Enabled, &e.DisabledReason, &e.Secret,
		&e.PreviousSecret, &prevUntil, &failing, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if e.EventTypes, err = decodeList(types); err != nil {
		return nil, fmt.Errorf("endpoint %s: event types: %w", e.ID, err)
	}
	if len(e.PreviousSecret) == 0 {
		e.PreviousSecret = nil
	}
	e.PreviousSecretUntil, e.FailingSince = fromNullMicros(prevUntil), fromNullMicros(failing)
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &e, nil
}

func scanDelivery(s scanner) (keyplane.Delivery, error) {
	var d keyplane.Delivery
	var status string
	var duration, next sql.NullInt64
	var created int64
	if err := s.Scan(&d.ID, &d.WorkspaceID, &d.EndpointID, &d.EventID, &d.EventType, &d.Attempt, &status, &d.StatusCode,
		&d.ResponseBody, &d.Error, &duration, &created, &next, &d.Manual); err != nil {
		return d, err
	}
	d.Status = keyplane.DeliveryStatus(status)
	if duration.Valid {
		d.DurationMs = &duration.Int64
	}
	d.CreatedAt, d.NextAttemptAt = fromMicros(created), fromNullMicros(next)
	return d, nil
}

func nullInt64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func (q *queries) GetWebhook(ctx context.Context, workspaceID, id string) (*keyplane.WebhookEndpoint, error) {
	return get(ctx, q, "get webhook", sqlGetWebhook, scanWebhook, id, workspaceID)
}

func (q *queries) ListWebhooks(ctx context.Context, workspaceID string, limit int, cursor string) ([]keyplane.WebhookEndpoint, string, error) {
	const op = "list webhooks"
	if err := checkLimit(op, limit); err != nil {
		return nil, "", err
	}
	l := newListSQL(sqlListWebhooks, workspaceID)
	if err := l.after(op, cursorWebhook, cursor, sqlWebhookBefore); err != nil {
		return nil, "", err
	}
	l.add(sqlListWebhooksEnd)
	return listPage(ctx, q, op, l.b.String(), limit, values(scanWebhook),
		func(e *keyplane.WebhookEndpoint) string { return encodeCursor(cursorWebhook, e.ID) }, l.args...)
}

func (q *queries) SubscribedWebhooks(ctx context.Context, workspaceID, eventType string) ([]keyplane.WebhookEndpoint, error) {
	const op = "subscribed webhooks"
	all, err := list(ctx, q, op, sqlEnabledWebhooks, values(scanWebhook), workspaceID)
	if err != nil {
		return nil, err
	}
	// A workspace has few endpoints: their subscriptions are matched here rather than in JSON SQL,
	// which the two databases spell differently.
	out := all[:0]
	for _, e := range all {
		if e.Subscribed(eventType) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (q *queries) GetDelivery(ctx context.Context, workspaceID, endpointID, id string) (*keyplane.Delivery, error) {
	d, err := scanDelivery(q.queryRow(ctx, sqlGetDelivery, id, endpointID, workspaceID))
	if err != nil {
		return nil, q.fail("get delivery", err)
	}
	return &d, nil
}

func (q *queries) ListDeliveries(ctx context.Context, workspaceID, endpointID string, f store.DeliveryFilter) ([]keyplane.Delivery, string, error) {
	const op = "list deliveries"
	if err := checkLimit(op, f.Limit); err != nil {
		return nil, "", err
	}
	l := newListSQL(sqlListDeliveries, endpointID, workspaceID)
	if f.Status != "" {
		l.add(sqlDeliveryStatus, string(f.Status))
	}
	if err := l.after(op, cursorDelivery, f.Cursor, sqlDeliveryBefore); err != nil {
		return nil, "", err
	}
	l.add(sqlListDeliveriesEnd)
	return listPage(ctx, q, op, l.b.String(), f.Limit, scanDelivery,
		func(d *keyplane.Delivery) string { return encodeCursor(cursorDelivery, d.ID) }, l.args...)
}

func (q *queries) GetEvent(ctx context.Context, workspaceID, id string) (*keyplane.Event, error) {
	return get(ctx, q, "get event", sqlGetEvent, scanEvent, id, workspaceID)
}

func (t *tx) InsertWebhook(ctx context.Context, e *keyplane.WebhookEndpoint) error {
	types, err := encodeList(e.EventTypes)
	if err != nil {
		return fmt.Errorf("insert webhook: %w", err)
	}
	return t.insert(ctx, "insert webhook", sqlInsertWebhook, e.ID, e.WorkspaceID, e.URL, e.Description, types, e.Enabled,
		e.DisabledReason, e.Secret, nullBytes(e.PreviousSecret), nullMicros(e.PreviousSecretUntil), nullMicros(e.FailingSince),
		micros(e.CreatedAt), micros(e.UpdatedAt))
}

func (t *tx) UpdateWebhook(ctx context.Context, e *keyplane.WebhookEndpoint) error {
	types, err := encodeList(e.EventTypes)
	if err != nil {
		return fmt.Errorf("update webhook: %w", err)
	}
	return t.update(ctx, "update webhook", sqlUpdateWebhook, e.URL, e.Description, types, e.Enabled, e.DisabledReason,
		e.Secret, nullBytes(e.PreviousSecret), nullMicros(e.PreviousSecretUntil), micros(e.UpdatedAt), e.ID, e.WorkspaceID)
}

func (t *tx) DeleteWebhook(ctx context.Context, workspaceID, id string) error {
	if _, err := t.exec(ctx, sqlDeleteWebhookDeliveries, id, workspaceID); err != nil {
		return t.fail("delete webhook deliveries", err)
	}
	return t.update(ctx, "delete webhook", sqlDeleteWebhook, id, workspaceID)
}

func (t *tx) InsertDelivery(ctx context.Context, d *keyplane.Delivery) error {
	return t.insert(ctx, "insert delivery", sqlInsertDelivery, d.ID, d.WorkspaceID, d.EndpointID, d.EventID, d.EventType,
		d.Attempt, string(d.Status), d.StatusCode, d.ResponseBody, d.Error, nullInt64(d.DurationMs), micros(d.CreatedAt),
		nullMicros(d.NextAttemptAt), d.Manual)
}

func (t *tx) FailPendingDeliveries(ctx context.Context, endpointID, reason string) (int64, error) {
	res, err := t.exec(ctx, sqlFailPending, reason, endpointID)
	if err != nil {
		return 0, t.fail("fail pending deliveries", err)
	}
	return res.RowsAffected()
}

func (t *tx) InsertEvent(ctx context.Context, e *keyplane.Event) error {
	return t.insert(ctx, "insert event", sqlInsertEvent, e.ID, e.WorkspaceID, e.Type, jsonObject(e.Data),
		micros(e.CreatedAt))
}

// ClaimDeliveries and FinishDelivery commit with relaxed durability (see relaxedTx): a lease or an
// outcome lost to a power cut means the attempt is made again.
func (db *DB) ClaimDeliveries(ctx context.Context, now, until time.Time, claim string, limit int, exclude []string) ([]keyplane.Delivery, error) {
	const op = "claim deliveries"
	var b strings.Builder
	b.WriteString(sqlClaimDeliveriesPre)
	args := []any{claim, micros(until), micros(now), micros(now)}
	if len(exclude) > 0 {
		b.WriteString(` AND d.endpoint_id NOT IN (?` + strings.Repeat(`, ?`, len(exclude)-1) + `)`)
		for _, e := range exclude {
			args = append(args, e)
		}
	}
	b.WriteString(sqlClaimDeliveriesEnd)
	b.WriteString(db.d.SkipLocked)
	b.WriteString(sqlClaimReturning)
	args = append(args, limit)
	var out []keyplane.Delivery
	err := db.relaxedTx(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		rows, err := t.query(ctx, b.String(), args...)
		if err != nil {
			return t.fail(op, err)
		}
		out, err = collect(rows, scanDelivery)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// RETURNING follows no ORDER BY: the oldest due first again.
	slices.SortFunc(out, func(a, b keyplane.Delivery) int {
		if c := a.NextAttemptAt.Compare(*b.NextAttemptAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (db *DB) FinishDelivery(ctx context.Context, d *keyplane.Delivery, claim string, at time.Time, next *keyplane.Delivery) (*time.Time, error) {
	var failing *time.Time
	err := db.relaxedTx(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		if err := t.update(ctx, "finish delivery", sqlFinishDelivery, string(d.Status), d.StatusCode, d.ResponseBody, d.Error,
			nullInt64(d.DurationMs), d.ID, claim); err != nil {
			return err
		}
		if next != nil {
			if err := t.InsertDelivery(ctx, next); err != nil {
				return err
			}
		}
		if !d.Manual {
			query, args := sqlWebhookFailed, []any{micros(at), d.EndpointID}
			if d.Status == keyplane.DeliverySucceeded {
				query, args = sqlWebhookSucceeded, []any{d.EndpointID}
			}
			if _, err := t.exec(ctx, query, args...); err != nil {
				return t.fail("endpoint health", err)
			}
		}
		var v sql.NullInt64
		if err := t.queryRow(ctx, sqlWebhookFailing, d.EndpointID).Scan(&v); err != nil && err != sql.ErrNoRows {
			return t.fail("endpoint health", err)
		}
		failing = fromNullMicros(v)
		return nil
	})
	d.NextAttemptAt = nil
	return failing, err
}
