package client_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
)

// TestImportAPIKeys: keys migrated in keep their values, by value or digest, and verify as they are;
// a bad item fails alone; more than 1,000 keys is an *Error.
func TestImportAPIKeys(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "imports")
	v := newVerifier(shared.Verify)
	byValue, byDigest := "legacy_"+strings.ToLower(rand.Text()), "legacy_"+strings.ToLower(rand.Text())
	sum := sha256.Sum256([]byte(byDigest))
	created := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	res, err := w.ImportAPIKeys(ctx, client.ImportAPIKeysRequest{Keys: []client.ImportAPIKey{
		{Value: byValue, Name: "by value", Permissions: []string{"orders:read"}, Meta: json.RawMessage(`{"plan":"pro"}`), CreatedAt: &created},
		{Hash: &client.ImportHash{Algorithm: "sha256", Digest: hex.EncodeToString(sum[:])}, Name: "by digest", Environment: client.EnvTest},
		{Value: "too-short", Name: "bad"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 2 || res.Failed != 1 || len(res.Results) != 3 || res.Results[0].ID == "" || res.Results[1].ID == "" ||
		res.Results[2].Error == nil || res.Results[2].Error.Code != client.CodeInvalidRequest || res.Results[2].Error.Details[0].Field != "value" {
		t.Fatalf("import: %+v", res)
	}
	for _, val := range []string{byValue, byDigest} {
		if r, err := v.Verify(ctx, val, client.VerifyRequest{}); err != nil || r.Code != client.VerifyValid {
			t.Errorf("imported value verifies %+v, %v", r, err)
		}
	}
	k, err := w.GetAPIKey(ctx, res.Results[0].ID)
	if err != nil || k.Recoverable || !k.CreatedAt.Equal(created) || k.End != byValue[len(byValue)-4:] {
		t.Errorf("imported key %+v, %v", k, err)
	}
	big := make([]client.ImportAPIKey, 1001)
	for i := range big {
		big[i] = client.ImportAPIKey{Value: "legacy_" + strings.ToLower(rand.Text()), Name: "big"}
	}
	var e *client.Error
	if _, err := w.ImportAPIKeys(ctx, client.ImportAPIKeysRequest{Keys: big}); !errors.As(err, &e) || e.StatusCode != 400 || e.Code != client.CodeInvalidRequest {
		t.Errorf("1,001 keys: %v", err)
	}
}
