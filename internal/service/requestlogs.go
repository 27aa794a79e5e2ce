package service

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// Request log rules.
const (
	// DefaultLogRetention keeps request log entries 30 days.
	DefaultLogRetention = 30 * 24 * time.Hour
	// DefaultUsageRetention keeps hourly usage rollups 400 days: a year, compared with the last.
	DefaultUsageRetention = 400 * 24 * time.Hour
	// MaxUsageBuckets bounds one usage answer: about six weeks of hours, or all the days kept.
	MaxUsageBuckets = 1000
	// pruneBatch is how many rows one pruning statement deletes.
	pruneBatch = 10000
)

// defaultBuckets is how many buckets a usage query without since covers: a day of hours, or a month
// of days, the current one last.
func defaultBuckets(g keyplane.Granularity) int {
	if g == keyplane.GranularityDay {
		return 30
	}
	return 24
}

// ListLogs lists a workspace's request log, newest first. Needs logs:read.
func (s *Service) ListLogs(ctx context.Context, c *keyplane.Caller, wsID string, f keyplane.LogFilter) ([]keyplane.RequestLog, string, error) {
	if err := c.Authorize(wsID, keyplane.PermLogsRead); err != nil {
		return nil, "", err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, "", err
	}
	var v keyplane.Validation
	if f.KeyID != "" && !id.Valid(id.APIKey, f.KeyID) {
		v.Add("keyId", "must be an API key id (apk_…)")
	}
	if f.Code != "" && !f.Code.Valid() {
		v.Add("code", "must be a verification code: VALID, NOT_FOUND, DISABLED, EXPIRED, REVOKED, FORBIDDEN, INSUFFICIENT_PERMISSIONS, RATE_LIMITED, USAGE_EXCEEDED or INVALID_SIGNATURE")
	}
	if len(f.Tag) > keyplane.MaxTagLen {
		v.Add("tag", "must be at most %d bytes", keyplane.MaxTagLen)
	}
	if f.Source != "" && !f.Source.Valid() {
		v.Add("source", "must be verify, signature, jwt, auth or management")
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		v.Add("until", "must be after since")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	entries, next, err := s.store.ListRequestLogs(ctx, wsID, f)
	return entries, next, badCursor(err)
}

// UsageQuery asks for usage.
type UsageQuery struct {
	// Granularity is the width of the buckets; empty means hour.
	Granularity keyplane.Granularity
	// Since is rounded down to its bucket; nil means as many buckets before Until as defaultBuckets
	// says. Until is rounded up to a bucket's end; nil means the end of the current bucket.
	Since, Until *time.Time
}

// KeyUsage returns a key's usage in buckets of an hour or a day (UTC), oldest first, every bucket of
// the range included, those without requests as zeros. It needs logs:read: usage is the request log
// summed, and the permission catalog says so; a key of another workspace is not found.
func (s *Service) KeyUsage(ctx context.Context, c *keyplane.Caller, wsID, keyID string, q UsageQuery) ([]keyplane.UsageBucket, error) {
	if err := c.Authorize(wsID, keyplane.PermLogsRead); err != nil {
		return nil, err
	}
	if !id.Valid(id.APIKey, keyID) {
		return nil, keyplane.NotFound("API key")
	}
	return s.usage(ctx, wsID, keyID, q)
}

// WorkspaceUsage is KeyUsage summed over every key of the workspace, deleted ones included: what the
// workspace was asked, for the dashboard's logs page.
func (s *Service) WorkspaceUsage(ctx context.Context, c *keyplane.Caller, wsID string, q UsageQuery) ([]keyplane.UsageBucket, error) {
	if err := c.Authorize(wsID, keyplane.PermLogsRead); err != nil {
		return nil, err
	}
	return s.usage(ctx, wsID, "", q)
}

// usage answers KeyUsage, or WorkspaceUsage when keyID is empty, for an authorized caller.
func (s *Service) usage(ctx context.Context, wsID, keyID string, q UsageQuery) ([]keyplane.UsageBucket, error) {
	g := q.Granularity
	if g == "" {
		g = keyplane.GranularityHour
	}
	var v keyplane.Validation
	if !g.Valid() {
		v.Add("granularity", "must be hour or day")
	}
	if q.Since != nil && q.Until != nil && !q.Since.Before(*q.Until) {
		v.Add("until", "must be after since")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	width := g.Duration()
	// Buckets are aligned on UTC hours and days: Truncate counts from the zero time, a UTC midnight.
	until := s.clock().Truncate(width).Add(width)
	if q.Until != nil {
		until = q.Until.UTC()
		if t := until.Truncate(width); !t.Equal(until) {
			until = t.Add(width)
		}
	}
	since := until.Add(-time.Duration(defaultBuckets(g)) * width)
	if q.Since != nil {
		since = q.Since.UTC().Truncate(width)
	}
	if !since.Before(until) {
		return nil, invalidField("until", "must be after since")
	}
	n := int64(until.Sub(since) / width)
	if n > MaxUsageBuckets {
		return nil, invalidField("since", "the range holds %d buckets of a %s; at most %d are answered at once", n, g, MaxUsageBuckets)
	}
	if keyID != "" {
		if _, err := s.store.GetAPIKey(ctx, wsID, keyID); err != nil {
			return nil, notFound(err, "API key")
		}
	} else if _, err := s.store.GetWorkspace(ctx, wsID); err != nil {
		return nil, notFound(err, "workspace")
	}
	found, err := s.store.Usage(ctx, wsID, keyID, store.UsageFilter{Bucket: width, Since: since, Until: until})
	if err != nil {
		return nil, err
	}
	out := make([]keyplane.UsageBucket, n)
	for i := range out {
		out[i].Start = since.Add(time.Duration(i) * width)
	}
	for _, b := range found {
		if i := int64(b.Start.Sub(since) / width); i >= 0 && i < n {
			out[i] = b
		}
	}
	return out, nil
}

// PruneLogs deletes request log entries older than the log retention, and usage rollups older than
// the usage retention, a bounded batch per transaction, and says how many of each went. The serve
// command runs it every hour.
func (s *Service) PruneLogs(ctx context.Context) (logs, usage int64, err error) {
	now := s.clock()
	if logs, err = pruneAll(ctx, func(ctx context.Context) (int64, error) {
		return s.store.PruneRequestLogs(ctx, now.Add(-s.logKeep), pruneBatch)
	}); err != nil {
		return logs, 0, err
	}
	usage, err = pruneAll(ctx, func(ctx context.Context) (int64, error) {
		return s.store.PruneUsage(ctx, now.Add(-s.useKeep), pruneBatch)
	})
	return logs, usage, err
}

// pruneAll calls prune until it deletes less than a full batch.
func pruneAll(ctx context.Context, prune func(context.Context) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := prune(ctx)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// invalidField is the invalid_request error for one field.
func invalidField(field, format string, args ...any) error {
	var v keyplane.Validation
	v.Add(field, format, args...)
	return v.Err()
}
