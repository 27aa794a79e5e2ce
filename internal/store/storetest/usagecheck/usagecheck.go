// Package usagecheck holds the check the drivers' upgrade tests share on the usage an upgrade kept.
// It is a package of its own, apart from storetest, because storetest imports the drivers and the
// SQLite upgrade test is internal to its driver: importing storetest from it would be a cycle.
package usagecheck

import (
	"context"
	"maps"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// AfterUpgrade checks that, for each of keyIDs ("" for the whole workspace), the usage of
// workspaceID within f sums to want per code.
func AfterUpgrade(ctx context.Context, t testing.TB, s store.Store, workspaceID string, keyIDs []string, f store.UsageFilter, want map[keyplane.VerifyCode]int64) {
	t.Helper()
	for _, keyID := range keyIDs {
		buckets, err := s.Usage(ctx, workspaceID, keyID, f)
		if err != nil {
			t.Fatal(err)
		}
		got := map[keyplane.VerifyCode]int64{}
		for _, b := range buckets {
			for c, n := range b.Codes {
				got[c] += n
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("usage of %q after the upgrade: %v, want %v", keyID, got, want)
		}
	}
}
