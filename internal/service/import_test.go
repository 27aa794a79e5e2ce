package service_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// importSetup opens a service whose verifier keeps an imported filter, as serve wires them.
func importSetup(t *testing.T, d string) (*service.Service, store.Store, *verify.Verifier, *keyplane.Workspace) {
	t.Helper()
	var ver *verify.Verifier
	st := storetest.Open(t, d)
	svc := servicetest.New(t, st, service.Options{
		Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil),
		Admit:   func(h ...[]byte) { ver.Admit(h...) },
		Forget:  func(h ...[]byte) { ver.Forget(h...) },
	})
	var err error
	ver, err = verify.New(st, verify.Options{KeyPrefix: servicetest.KeyPrefix, Imported: verify.NewFilter(1024, 0.01)})
	if err != nil {
		t.Fatal(err)
	}
	ver.FeedUp()
	return svc, st, ver, shop(t, svc)
}

// foreignValue is a value of another system's format.
func foreignValue() string { return "acme_live_" + strings.ToLower(rand.Text()) }

func TestImportAPIKeys(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			svc, st, ver, w := importSetup(t, d)
			sys := keyplane.System("test")
			byValue, byDigest := foreignValue(), foreignValue()
			sum := sha256.Sum256([]byte(byDigest))
			ownFormat := keyformat.Generate(servicetest.KeyPrefix, "sk", "live")
			item := func(name string) service.ImportKeyInput {
				return service.ImportKeyInput{CreateKeyInput: service.CreateKeyInput{Name: name, KeyType: keyplane.KeyTypeSecret, Permissions: []string{"orders:read"}}}
			}
			items := []service.ImportKeyInput{
				item("by value"), item("by digest"), item("own format"),
				item(""),                   // 3: no name
				item("both"),               // 4: value and hash
				item("short"),              // 5: too short a value
				item("bad digest"),         // 6
				item("publishable"),        // 7
				item("unread"),             // 8: the caller could not read it
				item("twice"),              // 9: the value of item 0 again
				item("unknown permission"), // 10
				item("future"),             // 11: createdAt in the future
				item("spaces"),             // 12
				item("neither"),            // 13
			}
			items[0].Value = byValue
			created := time.Date(2021, 5, 1, 12, 0, 0, 0, time.UTC)
			items[0].CreatedAt = &created
			items[0].Meta = json.RawMessage(`{"plan":"pro"}`)
			items[1].Hash = &service.ImportHash{Algorithm: "sha256", Digest: hex.EncodeToString(sum[:])}
			items[2].Value = ownFormat
			items[3].Value = foreignValue()
			items[4].Value, items[4].Hash = foreignValue(), items[1].Hash
			items[5].Value = "short-value"
			items[6].Hash = &service.ImportHash{Algorithm: "sha256", Digest: "abc"}
			items[7].Value, items[7].KeyType = foreignValue(), keyplane.KeyTypePublishable
			items[8].Err = keyplane.Errorf(keyplane.CodeInvalidRequest, "unreadable")
			items[9].Value = byValue
			items[10].Value, items[10].Permissions = foreignValue(), []string{"nope:nothing"}
			future := time.Now().Add(time.Hour)
			items[11].Value, items[11].CreatedAt = foreignValue(), &future
			items[12].Value = "has a space in it, which headers mangle"
			res, err := svc.ImportAPIKeys(ctx, sys, w.ID, items)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != len(items) {
				t.Fatalf("%d results for %d items", len(res), len(items))
			}
			for i, r := range res {
				if r.Index != i {
					t.Errorf("result %d has index %d", i, r.Index)
				}
				ok := i <= 2
				if ok != (r.Err == nil) || ok != (r.ID != "") {
					t.Errorf("item %d (%s): id %q, err %v", i, items[i].Name, r.ID, r.Err)
				}
				if r.Err != nil && r.Err.Code != keyplane.CodeInvalidRequest {
					t.Errorf("item %d: code %s, want invalid_request", i, r.Err.Code)
				}
			}
			if r := res[9].Err; r == nil || !strings.Contains(r.Details[0].Message, "keys[0]") {
				t.Errorf("a value given twice: %v, want it to name keys[0]", r)
			}

			// The imported keys: stored, never recoverable, not showing what they do not know.
			k, err := svc.GetAPIKey(ctx, sys, w.ID, res[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if k.Recoverable || k.Name != "by value" || !k.CreatedAt.Equal(created) || k.End != byValue[len(byValue)-4:] || k.Start != "" || k.Prefix != "" {
				t.Errorf("imported key: %+v", k)
			}
			if _, _, err := svc.RevealAPIKey(ctx, sys, w.ID, k.ID); err == nil {
				t.Error("an imported key's value was revealed")
			}
			kd, err := svc.GetAPIKey(ctx, sys, w.ID, res[1].ID)
			if err != nil || kd.End != "" || kd.Start != "" {
				t.Errorf("digest-imported key %+v, %v", kd, err)
			}
			ko, err := svc.GetAPIKey(ctx, sys, w.ID, res[2].ID)
			if err != nil || ko.Start != keyformat.Start(servicetest.KeyPrefix, ownFormat) {
				t.Errorf("own-format key %+v, %v", ko, err)
			}

			// They verify as they are; the digest-imported one with the original value.
			for _, v := range []string{byValue, byDigest, ownFormat} {
				r, err := ver.Verify(ctx, v, &keyplane.VerifyRequest{Permissions: []string{"orders:read"}})
				if err != nil || r.Code != keyplane.VerifyValid {
					t.Errorf("verify %q: %v, %v", v[:8], r.Code, err)
				}
			}
			// A value never stored, without the format, is refused by the filter: no read.
			_, misses0, _ := ver.CacheStats()
			filtered0 := ver.Filtered()
			for range 200 {
				r, err := ver.Verify(ctx, foreignValue(), &keyplane.VerifyRequest{})
				if err != nil || r.Code != keyplane.VerifyNotFound {
					t.Fatalf("unknown value: %v, %v", r.Code, err)
				}
			}
			_, misses1, _ := ver.CacheStats()
			if got := ver.Filtered() - filtered0; got < 190 || misses1-misses0 > 10 {
				t.Errorf("200 unknown values: %d filtered, %d read; want (almost) all filtered", got, misses1-misses0)
			}

			// Every imported key has its audit entry, without its value.
			entries, _, err := svc.ListAudit(ctx, sys, w.ID, keyplane.AuditFilter{Action: service.ActionAPIKeyImported, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 3 {
				t.Errorf("%d api_key.imported entries, want 3", len(entries))
			}
			for _, e := range entries {
				if body := string(e.Body); strings.Contains(body, byValue) || strings.Contains(body, ownFormat) || strings.Contains(body, hex.EncodeToString(sum[:])) {
					t.Errorf("audit entry holds a value or digest: %s", body)
				}
			}

			// Values already stored fail their items, whichever workspace holds them.
			other, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
			if err != nil {
				t.Fatal(err)
			}
			again := []service.ImportKeyInput{item("again"), item("again digest"), item("fresh")}
			again[0].Value, again[1].Hash, again[2].Value = byValue, items[1].Hash, foreignValue()
			again[0].Permissions, again[1].Permissions, again[2].Permissions = nil, nil, nil
			res2, err := svc.ImportAPIKeys(ctx, sys, other.ID, again)
			if err != nil {
				t.Fatal(err)
			}
			if res2[0].Err == nil || res2[1].Err == nil || res2[2].Err != nil {
				t.Errorf("import of stored values into another workspace: %+v", res2)
			}
			if res2[1].Err != nil && res2[1].Err.Details[0].Field != "hash.digest" {
				t.Errorf("a stored digest is reported at %q", res2[1].Err.Details[0].Field)
			}
			n, err := st.CountKeys(ctx, other.ID)
			if err != nil || n != 1 {
				t.Errorf("other workspace holds %d keys (%v), want 1", n, err)
			}
		})
	}
}

func TestImportAPIKeysLimits(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			svc, st, ver, _ := importSetup(t, d)
			sys := keyplane.System("test")
			w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Small", Slug: "small",
				MaxKeys: keyplane.Optional[int]{Set: true, Value: 3}})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "made", KeyType: keyplane.KeyTypeSecret}); err != nil {
				t.Fatal(err)
			}
			var items []service.ImportKeyInput
			for i := range 4 {
				items = append(items, service.ImportKeyInput{Value: foreignValue(),
					CreateKeyInput: service.CreateKeyInput{Name: fmt.Sprintf("k%d", i), Environment: keyplane.EnvTest}})
			}
			items[0].Name = "" // fails on its own, and takes no room
			res, err := svc.ImportAPIKeys(ctx, sys, w.ID, items)
			if err != nil {
				t.Fatal(err)
			}
			want := []keyplane.Code{keyplane.CodeInvalidRequest, "", "", keyplane.CodeKeyLimitReached}
			for i, r := range res {
				var got keyplane.Code
				if r.Err != nil {
					got = r.Err.Code
				}
				if got != want[i] {
					t.Errorf("item %d: %q, want %q (%+v)", i, got, want[i], r.Err)
				}
			}
			if n, _ := st.CountKeys(ctx, w.ID); n != 3 {
				t.Errorf("%d keys, want maxKeys 3", n)
			}
			// An imported test key without expiresAt expires the workspace's TTL after the import.
			k, err := svc.GetAPIKey(ctx, sys, w.ID, res[1].ID)
			if err != nil {
				t.Fatal(err)
			}
			ttl := time.Duration(w.TestKeyTTLSeconds) * time.Second
			if k.ExpiresAt == nil || k.ExpiresAt.Before(time.Now().Add(ttl-time.Minute)) || k.ExpiresAt.After(time.Now().Add(ttl)) {
				t.Errorf("imported test key expires at %v, want about now + %v", k.ExpiresAt, ttl)
			}
			if r, _ := ver.Verify(ctx, items[3].Value, &keyplane.VerifyRequest{}); r.Code != keyplane.VerifyNotFound {
				t.Errorf("a key refused for the limit verifies: %v", r.Code)
			}

			// More than 1,000 keys, or none, is refused whole.
			big := make([]service.ImportKeyInput, service.MaxImportBatch+1)
			if _, err := svc.ImportAPIKeys(ctx, sys, w.ID, big); !isCode(err, keyplane.CodeInvalidRequest) {
				t.Errorf("1,001 keys: %v", err)
			}
			if _, err := svc.ImportAPIKeys(ctx, sys, w.ID, nil); !isCode(err, keyplane.CodeInvalidRequest) {
				t.Errorf("no keys: %v", err)
			}
			// A caller of another workspace learns nothing of this one.
			key := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_x"}, WorkspaceID: "ws_other",
				Permissions: []string{keyplane.PermAPIKeysWrite}, Environment: keyplane.EnvLive}
			if _, err := svc.ImportAPIKeys(ctx, key, w.ID, items[1:2]); !isCode(err, keyplane.CodeNotFound) {
				t.Errorf("another workspace's key: %v", err)
			}
		})
	}
}

func isCode(err error, c keyplane.Code) bool {
	var e *keyplane.Error
	return errors.As(err, &e) && e.Code == c
}

// workspaceReadHook is a store that runs hook once, right after its next read of a workspace outside
// a transaction: a change that lands between an import's first look at the workspace and its own.
type workspaceReadHook struct {
	store.Store
	hook func()
}

func (s *workspaceReadHook) GetWorkspace(ctx context.Context, id string) (*keyplane.Workspace, error) {
	w, err := s.Store.GetWorkspace(ctx, id)
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return w, err
}

// TestImportAppliesTheWorkspaceOfItsChange: live mode switched off, and the test keys' lifetime
// shortened, while an import is on its way apply to it, as they do to a creation: the rules that
// depend on the workspace's settings are decided in the import's transaction.
func TestImportAppliesTheWorkspaceOfItsChange(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			st := &workspaceReadHook{Store: storetest.Open(t, d)}
			svc := servicetest.New(t, st, service.Options{})
			sys := keyplane.System("test")
			w := shop(t, svc)
			st.hook = func() {
				off := service.WorkspacePatch{LiveModeEnabled: keyplane.Optional[bool]{Set: true, Value: false},
					TestKeyTTLSeconds: keyplane.Optional[int64]{Set: true, Value: 3600}}
				if _, err := svc.UpdateWorkspace(ctx, sys, w.ID, off); err != nil {
					t.Error(err)
				}
			}
			res, err := svc.ImportAPIKeys(ctx, sys, w.ID, []service.ImportKeyInput{
				{Value: foreignValue(), CreateKeyInput: service.CreateKeyInput{Name: "live", Environment: keyplane.EnvLive}},
				{Value: foreignValue(), CreateKeyInput: service.CreateKeyInput{Name: "test", Environment: keyplane.EnvTest}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.hook != nil {
				t.Fatal("the import did not read the workspace before its change: the test no longer tests it")
			}
			if res[0].Err == nil || res[0].Err.Code != keyplane.CodeLiveModeDisabled {
				t.Errorf("a live key imported as live mode went off: %+v", res[0])
			}
			if res[1].Err != nil {
				t.Fatalf("the test key: %v", res[1].Err)
			}
			k, err := svc.GetAPIKey(ctx, sys, w.ID, res[1].ID)
			if err != nil {
				t.Fatal(err)
			}
			if k.ExpiresAt == nil || k.ExpiresAt.After(time.Now().Add(time.Hour)) {
				t.Errorf("the test key expires at %v, want within the hour the workspace now allows", k.ExpiresAt)
			}
			if n, _ := st.CountKeys(ctx, w.ID); n != 1 {
				t.Errorf("%d keys, want the test key only", n)
			}
		})
	}
}
