package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

const (
	// sqlUsageBounds is the first and the last hour of any rollup: the export's hours are clamped to
	// them, so that a window reaching far into the past does not seek hours that cannot hold a row.
	sqlUsageBounds = `SELECT MIN(hour), MAX(hour) FROM key_usage`

	// sqlExportUsage sums a workspace's rollups per period, group and code, read hour by hour as
	// sqlUsageHours says. {period} is the start of the hour's period, {group} the key or the
	// identity. MAX(identity_id): a key's identity in the period, should it have moved in it, the
	// last in id order.
	sqlExportUsage = sqlUsageHours + `
		SELECT {period} AS period, {group} AS grp, MAX(u.identity_id), u.code,
			CAST(SUM(u.requests) AS BIGINT), CAST(SUM(u.credits_spent) AS BIGINT)
		FROM h CROSS JOIN key_usage u
		WHERE u.hour = h.hour AND u.workspace_id = ?{identified}
		GROUP BY 1, 2, 4
		ORDER BY 1, 2, 4`
	sqlExportIdentified = ` AND u.identity_id <> ''`

	sqlExternalID = `SELECT external_id FROM identities WHERE id = ? AND workspace_id = ?`
)

// ExportUsage reads the log's database, outside any transaction; the identities' externalIds come
// from the main one (on SQLite another file: no join reaches them), looked up once per identity.
func (db *DB) ExportUsage(ctx context.Context, workspaceID string, f keyplane.ExportFilter, fn func(*keyplane.UsageRow) error) error {
	const op = "export usage"
	if !f.GroupBy.Valid() {
		return fmt.Errorf("%s: unknown grouping %q", op, f.GroupBy)
	}
	var period string
	switch f.Granularity {
	case keyplane.GranularityHour, keyplane.GranularityDay:
		period = fmt.Sprintf("u.hour - (u.hour %% %d)", f.Granularity.Duration().Microseconds())
	case keyplane.GranularityMonth:
		period = db.logs.d.MonthStart
	default:
		return fmt.Errorf("%s: unknown granularity %q", op, f.Granularity)
	}
	// The periods whose start lies in [since, until): from the first that starts at or after since to
	// the one until-1µs falls in. Their hours are read whole, the last one's after until too.
	g := f.Granularity
	next := func(t time.Time) time.Time {
		switch g {
		case keyplane.GranularityMonth:
			return t.AddDate(0, 1, 0)
		case keyplane.GranularityDay:
			return t.AddDate(0, 0, 1)
		}
		return t.Add(time.Hour)
	}
	first := g.Start(f.Since)
	if first.Before(f.Since) {
		first = next(first)
	}
	if !first.Before(f.Until) {
		return nil
	}
	end := next(g.Start(f.Until.Add(-time.Microsecond)))
	from, until := micros(first), micros(end)

	logs := &db.logs.queries
	var lo, hi sql.NullInt64
	if err := logs.queryRow(ctx, sqlUsageBounds).Scan(&lo, &hi); err != nil {
		return logs.fail(op, err)
	}
	if !lo.Valid {
		return nil
	}
	from, until = max(from, lo.Int64), min(until, hi.Int64+int64(time.Hour/time.Microsecond))
	if from >= until {
		return nil
	}

	group, identified := "u.key_id", ""
	if f.GroupBy == keyplane.GroupByIdentity {
		group, identified = "u.identity_id", sqlExportIdentified
	}
	query := strings.NewReplacer("{period}", period, "{group}", group, "{identified}", identified).Replace(sqlExportUsage)
	rows, err := logs.query(ctx, query, from, until, workspaceID)
	if err != nil {
		return logs.fail(op, err)
	}
	defer rows.Close()

	externalIDs := map[string]string{}
	externalID := func(identityID string) (string, error) {
		if identityID == "" {
			return "", nil
		}
		if x, ok := externalIDs[identityID]; ok {
			return x, nil
		}
		var x string
		err := db.queryRow(ctx, sqlExternalID, identityID, workspaceID).Scan(&x)
		if err != nil && !errors.Is(err, sql.ErrNoRows) { // a deleted identity has none
			return "", db.fail(op, err)
		}
		externalIDs[identityID] = x
		return x, nil
	}

	var cur *keyplane.UsageRow
	var curPeriod int64
	var curGroup string
	emit := func() error {
		if cur == nil {
			return nil
		}
		x, err := externalID(cur.IdentityID)
		if err != nil {
			return err
		}
		cur.ExternalID = x
		return fn(cur)
	}
	for rows.Next() {
		var p, requests, credits int64
		var grp, identityID, code string
		if err := rows.Scan(&p, &grp, &identityID, &code, &requests, &credits); err != nil {
			return logs.fail(op, err)
		}
		if cur == nil || p != curPeriod || grp != curGroup {
			if err := emit(); err != nil {
				return err
			}
			cur, curPeriod, curGroup = &keyplane.UsageRow{Start: fromMicros(p), Codes: map[keyplane.VerifyCode]int64{}}, p, grp
			if f.GroupBy == keyplane.GroupByKey {
				cur.KeyID = grp
			}
		}
		if identityID > cur.IdentityID {
			cur.IdentityID = identityID
		}
		c := keyplane.VerifyCode(code)
		cur.Codes[c] += requests
		cur.Total += requests
		if c == keyplane.VerifyValid {
			cur.Valid += requests
		}
		cur.CreditsSpent += credits
	}
	if err := rows.Err(); err != nil {
		return logs.fail(op, err)
	}
	return emit()
}
