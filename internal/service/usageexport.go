package service

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
)

// ExportQuery asks for a usage export: sums per key or per identity and per UTC hour, day or month.
// Empty GroupBy means key, empty Granularity day; nil Since means the start of the current UTC month,
// nil Until now.
type ExportQuery struct {
	GroupBy     keyplane.UsageGroup
	Granularity keyplane.Granularity
	Since       *time.Time
	Until       *time.Time
}

// ExportUsage checks q and calls fn with the workspace's usage rows, period by period, each group
// in it: a stream, so that an export of any size holds one row in memory. It needs logs:read, as
// every view of the request log does. Periods are whole: since is rounded down to the start of its
// period, and a period is in when it starts before until.
func (s *Service) ExportUsage(ctx context.Context, c *keyplane.Caller, wsID string, q ExportQuery, fn func(*keyplane.UsageRow) error) error {
	f, err := s.checkExport(ctx, c, wsID, q)
	if err != nil {
		return err
	}
	return s.store.ExportUsage(ctx, wsID, f, fn)
}

// CheckExport validates q as ExportUsage would, without reading rows: the API checks a request
// before it starts streaming its answer.
func (s *Service) CheckExport(ctx context.Context, c *keyplane.Caller, wsID string, q ExportQuery) (keyplane.ExportFilter, error) {
	return s.checkExport(ctx, c, wsID, q)
}

func (s *Service) checkExport(ctx context.Context, c *keyplane.Caller, wsID string, q ExportQuery) (keyplane.ExportFilter, error) {
	if err := c.Authorize(wsID, keyplane.PermLogsRead); err != nil {
		return keyplane.ExportFilter{}, err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return keyplane.ExportFilter{}, err
	}
	var v keyplane.Validation
	f := keyplane.ExportFilter{GroupBy: q.GroupBy, Granularity: q.Granularity}
	if f.GroupBy == "" {
		f.GroupBy = keyplane.GroupByKey
	}
	if !f.GroupBy.Valid() {
		v.Add("groupBy", "must be key or identity")
	}
	if f.Granularity == "" {
		f.Granularity = keyplane.GranularityDay
	}
	if g := f.Granularity; g != keyplane.GranularityHour && g != keyplane.GranularityDay && g != keyplane.GranularityMonth {
		v.Add("granularity", "must be hour, day or month")
		f.Granularity = keyplane.GranularityDay
	}
	now := s.clock()
	f.Until = now
	if q.Until != nil {
		f.Until = q.Until.UTC()
	}
	f.Since = keyplane.GranularityMonth.Start(now)
	if q.Since != nil {
		f.Since = q.Since.UTC()
	}
	f.Since = f.Granularity.Start(f.Since)
	if !f.Since.Before(f.Until) {
		v.Add("until", "must be after since (by default, the start of the current month)")
	}
	if err := v.Err(); err != nil {
		return keyplane.ExportFilter{}, err
	}
	return f, nil
}
