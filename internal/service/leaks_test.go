package service_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// TestReportLeaksRules: an old value past its rotation grace is recorded but changes nothing; a key
// already revoked is recorded with none; the same value reported by many callers at once is acted on
// once (one audit entry, one record), the others answered already_reported.
func TestReportLeaksRules(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) { testReportLeaksRules(t, driver) })
	}
}

func testReportLeaksRules(t *testing.T, driver string) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2030, 1, 31, 10, 0, 0, 0, time.UTC)}
	svc, st := servicetest.Open(t, driver, service.Options{Now: clk.Now})
	sys := keyplane.System("test")
	w := shop(t, svc)
	newKey := func(name string) (*keyplane.APIKey, string) {
		k, v, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: name, KeyType: keyplane.KeyTypeSecret})
		if err != nil {
			t.Fatal(err)
		}
		return k, v
	}
	report := func(values ...string) []keyplane.LeakResult {
		t.Helper()
		res, err := svc.ReportLeaks(ctx, sys, service.LeakReport{Values: values, Source: "test", URL: "https://example.com/x"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	leakEntries := func() int {
		t.Helper()
		es, _, err := st.ListAudit(ctx, w.ID, keyplane.AuditFilter{Action: keyplane.EventAPIKeyLeaked, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	// A rotated key's old value after its grace period: found, recorded, nothing done to the key.
	rot, old := newKey("rotated")
	if _, _, err := svc.RotateAPIKey(ctx, sys, w.ID, rot.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if r := report(old); !r[0].Found || r[0].KeyID != rot.ID || r[0].Action != keyplane.LeakNone {
		t.Fatalf("an expired old value: %+v", r[0])
	}
	if k, _ := svc.GetAPIKey(ctx, sys, w.ID, rot.ID); k.RevokedAt != nil {
		t.Fatal("a key was revoked for a value that no longer works")
	}
	if r := report(old); r[0].Action != keyplane.LeakAlreadyReported {
		t.Fatalf("the expired old value again: %+v", r[0])
	}

	// A key revoked before the report: recorded with none.
	gone, goneValue := newKey("gone")
	if _, err := svc.RevokeAPIKey(ctx, sys, w.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	if r := report(goneValue); !r[0].Found || r[0].Action != keyplane.LeakNone {
		t.Fatalf("a revoked key: %+v", r[0])
	}
	leaks, err := svc.KeyLeaks(ctx, sys, w.ID, gone.ID)
	if err != nil || len(leaks) != 1 || leaks[0].Action != keyplane.LeakNone || leaks[0].URL != "https://example.com/x" {
		t.Fatalf("the revoked key's leaks: %+v, %v", leaks, err)
	}
	before := leakEntries()

	// Eight reports of one value at once: one revoke, one entry.
	hot, hotValue := newKey("hot")
	var wg sync.WaitGroup
	results := make([]keyplane.LeakResult, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := svc.ReportLeaks(ctx, sys, service.LeakReport{Values: []string{hotValue}})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res[0]
		}()
	}
	wg.Wait()
	revoked := 0
	for _, r := range results {
		switch r.Action {
		case keyplane.LeakRevoked:
			revoked++
		case keyplane.LeakAlreadyReported:
		default:
			t.Errorf("a concurrent report: %+v", r)
		}
	}
	if revoked != 1 {
		t.Errorf("%d reports revoked the key, want 1", revoked)
	}
	if n := leakEntries() - before; n != 1 {
		t.Errorf("%d audit entries for one value reported 8 times at once, want 1", n)
	}
	if k, _ := svc.GetAPIKey(ctx, sys, w.ID, hot.ID); k.RevokedAt == nil {
		t.Error("the hot key is not revoked")
	}

	// Only the operator reports.
	caller := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_x"}, WorkspaceID: w.ID, Permissions: []string{keyplane.PermAPIKeysWrite}}
	if _, err := svc.ReportLeaks(ctx, caller, service.LeakReport{Values: []string{hotValue}}); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
		t.Errorf("a workspace key reporting: %v", err)
	}
}
