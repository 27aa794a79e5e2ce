package verify_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// TestImportedValues: a value without keyplane's format is looked up only when the imported filter
// may hold it. Made-up ones cost no read and no cache room; an imported one verifies, and its
// cached "unknown" from before the import is gone once the import's digests are forgotten. Without
// an imported filter, no such value is ever read (the verifier of a deployment that never wired one).
func TestImportedValues(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			st := &counting{Store: storetest.Open(t, d)}
			filter := verify.NewFilter(1024, 0.01)
			ver, err := verify.New(st, verify.Options{KeyPrefix: "kp", Imported: filter})
			if err != nil {
				t.Fatal(err)
			}
			ver.FeedUp()
			bare, err := verify.New(st, verify.Options{KeyPrefix: "kp"})
			if err != nil {
				t.Fatal(err)
			}
			svc := servicetest.New(t, st, service.Options{KeyPrefix: "kp", Admit: ver.Admit, Forget: ver.Forget})
			w, err := svc.CreateWorkspace(ctx, keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
			if err != nil {
				t.Fatal(err)
			}
			req := &keyplane.VerifyRequest{}
			legacy := func() string { return "old_" + strings.ToLower(rand.Text()) }
			for range 1000 {
				if r, err := ver.Verify(ctx, legacy(), req); err != nil || r.Code != keyplane.VerifyNotFound {
					t.Fatalf("made-up value: %v, %v", r.Code, err)
				}
			}
			// Hostile shapes are refused before hashing, as before.
			for _, bad := range []string{"", "short", strings.Repeat("a", keyformat.MaxImportedLen+1), "with space inside it ok", "tab\tinside-the-value-x", "ünïcödé-välüé-long-enough"} {
				if r, _ := ver.Verify(ctx, bad, req); r.Code != keyplane.VerifyNotFound {
					t.Errorf("%.20q: %s", bad, r.Code)
				}
			}
			if n := st.lookups.Load(); n > 30 { // ~1 % false positives of the filter may be read
				t.Fatalf("1,000 made-up values read the store %d times", n)
			}
			_, _, size := ver.CacheStats()
			if size > 30 {
				t.Errorf("made-up values took %d cache entries", size)
			}

			// A value that passes the filter before it is imported (a false positive, or a digest the
			// feed admitted) is read once and cached as unknown; the import must drop that entry.
			value := legacy()
			h := keyformat.Hash(value)
			ver.Admit(h[:])
			if r, _ := ver.Verify(ctx, value, req); r.Code != keyplane.VerifyNotFound {
				t.Fatalf("before the import: %s", r.Code)
			}
			before := st.lookups.Load()
			if r, _ := ver.Verify(ctx, value, req); r.Code != keyplane.VerifyNotFound || st.lookups.Load() != before {
				t.Fatalf("the unknown answer was not cached: %s, %d reads", r.Code, st.lookups.Load()-before)
			}
			res, err := svc.ImportAPIKeys(ctx, keyplane.System("test"), w.ID, []service.ImportKeyInput{
				{Value: value, CreateKeyInput: service.CreateKeyInput{Name: "imported", Permissions: nil}}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("import: %v %+v", err, res)
			}
			if r, err := ver.Verify(ctx, value, req); err != nil || r.Code != keyplane.VerifyValid {
				t.Fatalf("after the import: %s, %v", r.Code, err)
			}
			if r, _ := bare.Verify(ctx, value, req); r.Code != keyplane.VerifyNotFound {
				t.Errorf("a verifier without an imported filter found a value without the format: %s", r.Code)
			}
			// AdmitImported, the loading at start and after a gap, adds only what may be missing.
			other := keyformat.Hash(legacy())
			ver.AdmitImported(other[:])
			ver.AdmitImported(other[:])
			if !filter.Has(other) {
				t.Error("AdmitImported did not add the digest")
			}
		})
	}
}
