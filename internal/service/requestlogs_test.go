package service_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// wantInvalid checks that err is invalid_request naming field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	e, ok := err.(*keyplane.Error)
	if !ok || e.Code != keyplane.CodeInvalidRequest || len(e.Details) != 1 || e.Details[0].Field != field {
		t.Errorf("%s: error %v, want invalid_request on %s", what, err, field)
	}
}

func wantCode(t *testing.T, what string, err error, code keyplane.Code) {
	t.Helper()
	if keyplane.ErrorCode(err) != code {
		t.Errorf("%s: error %v, want %s", what, err, code)
	}
}

func TestRequestLogsAndUsage(t *testing.T) {
	clk := &fakeClock{now: time.Date(2030, 1, 31, 10, 30, 0, 0, time.UTC)}
	svc, st := servicetest.Open(t, "sqlite", service.Options{Now: clk.Now,
		LogRetention: 48 * time.Hour, UsageRetention: 72 * time.Hour})
	ctx := context.Background()
	sys := keyplane.System("test")
	w := shop(t, svc)
	other, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}
	theirs, _, err := svc.CreateAPIKey(ctx, sys, other.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	logged := func(ts time.Time, code keyplane.VerifyCode) keyplane.RequestLog {
		return keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: w.ID, KeyID: k.ID, Code: code,
			Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify", Timestamp: ts}
	}
	entries := []keyplane.RequestLog{
		logged(now.Add(-time.Hour), keyplane.VerifyValid),
		logged(now.Add(-time.Hour+time.Minute), keyplane.VerifyRateLimited),
		logged(now.Add(-2*time.Hour), keyplane.VerifyValid),
		logged(now.Add(-72*time.Hour), keyplane.VerifyValid),
	}
	if err := writeLogs(ctx, st, entries); err != nil {
		t.Fatal(err)
	}

	t.Run("UsageDefaults", func(t *testing.T) {
		hours, err := svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{})
		if err != nil {
			t.Fatal(err)
		}
		// 24 hours, the current one (10:00) last; empty ones are zeros.
		if len(hours) != 24 || !hours[23].Start.Equal(time.Date(2030, 1, 31, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("%d hourly buckets, the last at %v; want 24, the last at 10:00", len(hours), hours[len(hours)-1].Start)
		}
		if b := hours[22]; b.Total != 2 || b.Valid != 1 || b.Codes[keyplane.VerifyRateLimited] != 1 {
			t.Errorf("09:00 bucket %+v; want 2 requests, 1 valid, 1 rate limited", b)
		}
		if b := hours[21]; b.Total != 1 || b.Valid != 1 {
			t.Errorf("08:00 bucket %+v; want 1 valid request", b)
		}
		if b := hours[23]; b.Total != 0 || len(b.Codes) != 0 {
			t.Errorf("the current hour %+v; want empty", b)
		}
		days, err := svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Granularity: keyplane.GranularityDay})
		if err != nil {
			t.Fatal(err)
		}
		if len(days) != 30 || !days[29].Start.Equal(time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)) || days[29].Total != 3 || days[26].Total != 1 {
			t.Errorf("daily usage: %d buckets, last %+v, three days before %+v; want 30, today's 3, 28th's 1", len(days), days[29], days[26])
		}
	})

	t.Run("UsageRangeIsAligned", func(t *testing.T) {
		since, until := time.Date(2030, 1, 31, 8, 15, 0, 0, time.UTC), time.Date(2030, 1, 31, 10, 5, 0, 0, time.UTC)
		got, err := svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Since: &since, Until: &until})
		if err != nil {
			t.Fatal(err)
		}
		starts := make([]int, len(got))
		for i, b := range got {
			starts[i] = b.Start.Hour()
		}
		if !slices.Equal(starts, []int{8, 9, 10}) {
			t.Errorf("buckets start at hours %v; want 8, 9, 10", starts)
		}
		exact := time.Date(2030, 1, 31, 10, 0, 0, 0, time.UTC)
		got, err = svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Since: &since, Until: &exact})
		if err != nil || len(got) != 2 {
			t.Errorf("until on an hour: %d buckets, %v; want 2", len(got), err)
		}
	})

	t.Run("UsageRefusals", func(t *testing.T) {
		since, until := now, now.Add(-time.Hour)
		_, err := svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Granularity: "week"})
		wantInvalid(t, "granularity week", err, "granularity")
		_, err = svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Since: &since, Until: &until})
		wantInvalid(t, "since after until", err, "until")
		_, err = svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Since: &since, Until: &since})
		wantInvalid(t, "since equal to until", err, "until")
		longAgo := now.Add(-1001 * time.Hour)
		_, err = svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Since: &longAgo})
		wantInvalid(t, "1001 hours", err, "since")
		yearsAgo := now.Add(-3 * 365 * 24 * time.Hour)
		_, err = svc.KeyUsage(ctx, sys, w.ID, k.ID, service.UsageQuery{Granularity: keyplane.GranularityDay, Since: &yearsAgo})
		wantInvalid(t, "three years of days", err, "since")

		_, err = svc.KeyUsage(ctx, sys, w.ID, theirs.ID, service.UsageQuery{})
		wantCode(t, "another workspace's key", err, keyplane.CodeNotFound)
		_, err = svc.KeyUsage(ctx, sys, w.ID, "apk_nope", service.UsageQuery{})
		wantCode(t, "a malformed key id", err, keyplane.CodeNotFound)
	})

	t.Run("Permissions", func(t *testing.T) {
		caller := func(ws string, perms ...string) *keyplane.Caller {
			return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_x"}, WorkspaceID: ws, Permissions: perms}
		}
		keysOnly := caller(w.ID, keyplane.PermAPIKeysRead)
		_, err := svc.KeyUsage(ctx, keysOnly, w.ID, k.ID, service.UsageQuery{})
		wantCode(t, "usage with api_keys:read only", err, keyplane.CodeForbidden)
		_, _, err = svc.ListLogs(ctx, keysOnly, w.ID, store.LogFilter{Limit: 10})
		wantCode(t, "logs with api_keys:read only", err, keyplane.CodeForbidden)

		reader := caller(w.ID, keyplane.PermLogsRead)
		if _, err := svc.KeyUsage(ctx, reader, w.ID, k.ID, service.UsageQuery{}); err != nil {
			t.Errorf("usage with logs:read: %v", err)
		}
		if got, _, err := svc.ListLogs(ctx, reader, w.ID, store.LogFilter{Limit: 10}); err != nil || len(got) != 4 {
			t.Errorf("logs with logs:read: %d entries, %v", len(got), err)
		}
		outsider := caller(other.ID, keyplane.PermLogsRead)
		_, err = svc.KeyUsage(ctx, outsider, w.ID, k.ID, service.UsageQuery{})
		wantCode(t, "usage from another workspace", err, keyplane.CodeNotFound)
		_, _, err = svc.ListLogs(ctx, outsider, w.ID, store.LogFilter{Limit: 10})
		wantCode(t, "logs from another workspace", err, keyplane.CodeNotFound)

	})

	t.Run("LogFilters", func(t *testing.T) {
		since, until := now, now.Add(-time.Hour)
		for _, c := range []struct {
			f     store.LogFilter
			field string
		}{
			{store.LogFilter{Code: "valid"}, "code"},
			{store.LogFilter{Source: "web"}, "source"},
			{store.LogFilter{KeyID: "key-1"}, "keyId"},
			{store.LogFilter{Since: &since, Until: &until}, "until"},
		} {
			c.f.Limit = 10
			_, _, err := svc.ListLogs(ctx, sys, w.ID, c.f)
			wantInvalid(t, "filter "+c.field, err, c.field)
		}
		_, _, err := svc.ListLogs(ctx, sys, w.ID, store.LogFilter{Limit: 10, Cursor: "bogus"})
		wantInvalid(t, "a bad cursor", err, "cursor")
		got, _, err := svc.ListLogs(ctx, sys, w.ID, store.LogFilter{Limit: 10, Code: keyplane.VerifyRateLimited, Source: keyplane.SourceVerify, KeyID: k.ID})
		if err != nil || len(got) != 1 {
			t.Errorf("filtered logs: %d, %v; want 1", len(got), err)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		logs, usage, err := svc.PruneLogs(ctx)
		if err != nil || logs != 1 || usage != 0 {
			t.Fatalf("PruneLogs = %d, %d, %v; want the 3-day-old entry, and no rollup (kept 72 h)", logs, usage, err)
		}
		clk.Add(48 * time.Hour)
		logs, usage, err = svc.PruneLogs(ctx)
		if err != nil || logs != 3 || usage != 1 {
			t.Fatalf("two days on, PruneLogs = %d, %d, %v; want 3 entries and 1 rollup", logs, usage, err)
		}
	})
}

func TestWorkspaceUsage(t *testing.T) {
	clk := &fakeClock{now: time.Date(2030, 1, 31, 10, 30, 0, 0, time.UTC)}
	svc, st := servicetest.Open(t, "sqlite", service.Options{Now: clk.Now})
	ctx := context.Background()
	sys := keyplane.System("test")
	var keys []*keyplane.APIKey
	var wss []*keyplane.Workspace
	for _, slug := range []string{"shop", "other"} {
		w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: slug, Slug: slug})
		if err != nil {
			t.Fatal(err)
		}
		wss = append(wss, w)
		for range 2 {
			k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	ts := clk.Now().Add(-time.Hour)
	var entries []keyplane.RequestLog
	for i, c := range []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyDisabled, keyplane.VerifyValid, keyplane.VerifyValid} {
		k := keys[i]
		entries = append(entries, keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: k.WorkspaceID, KeyID: k.ID, Code: c,
			Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify", Timestamp: ts})
	}
	if err := writeLogs(ctx, st, entries); err != nil {
		t.Fatal(err)
	}
	hours, err := svc.WorkspaceUsage(ctx, sys, wss[0].ID, service.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// Both keys of the first workspace, none of the other's.
	if b := hours[22]; len(hours) != 24 || b.Total != 2 || b.Valid != 1 || b.Codes[keyplane.VerifyDisabled] != 1 {
		t.Errorf("the workspace's 09:00 bucket %+v; want 2 requests of two keys, 1 valid, 1 disabled", b)
	}
	_, err = svc.WorkspaceUsage(ctx, sys, "ws_nope", service.UsageQuery{})
	wantCode(t, "an unknown workspace", err, keyplane.CodeNotFound)
	_, err = svc.WorkspaceUsage(ctx, sys, wss[0].ID, service.UsageQuery{Granularity: "week"})
	wantInvalid(t, "granularity week", err, "granularity")
	outsider := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: keys[2].ID}, WorkspaceID: wss[1].ID, Permissions: []string{keyplane.PermLogsRead}}
	_, err = svc.WorkspaceUsage(ctx, outsider, wss[0].ID, service.UsageQuery{})
	wantCode(t, "another workspace's caller", err, keyplane.CodeNotFound)
	keysOnly := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: keys[0].ID}, WorkspaceID: wss[0].ID, Permissions: []string{keyplane.PermAPIKeysRead}}
	_, err = svc.WorkspaceUsage(ctx, keysOnly, wss[0].ID, service.UsageQuery{})
	wantCode(t, "a caller without logs:read", err, keyplane.CodeForbidden)
}

// writeLogs writes entries as the request log does: the entries, then their usage counts.
func writeLogs(ctx context.Context, st store.Store, entries []keyplane.RequestLog) error {
	if err := st.WriteRequestLogs(ctx, entries); err != nil {
		return err
	}
	return st.AddUsage(ctx, store.CountUsage(entries), nil)
}
