package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// TestUnexplainedErrors: an error without a contract code is 503 unavailable (with Retry-After) while
// the store does not answer, and 500 internal while it does.
func TestUnexplainedErrors(t *testing.T) {
	// An outage as the API sees one: the key listing fails, and the store stops answering on cue.
	db, down := servicetest.OpenDB(t, "sqlite").Failing()
	ver, err := verify.New(db.Lookups(), verify.Options{KeyPrefix: "kp"})
	if err != nil {
		t.Fatal(err)
	}
	svc := db.Service(t, service.Options{})
	ctx := context.Background()
	_, root, err := svc.CreateRootKey(ctx, keyplane.System("test"), "t", []string{keyplane.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	w, err := svc.CreateWorkspace(ctx, keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Service: svc, Verifier: ver, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	call := func() (int, string, http.Header) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/api-keys", nil)
		req.Header.Set("Authorization", "Bearer "+root)
		req.Header.Set("X-Workspace-Id", w.ID)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body.Error.Code, res.Header
	}
	if status, code, _ := call(); status != 500 || code != "internal" {
		t.Errorf("a failure while the store answers: %d %s, want 500 internal", status, code)
	}
	down()
	if status, code, h := call(); status != 503 || code != "unavailable" || h.Get("Retry-After") == "" {
		t.Errorf("a failure while the store is down: %d %s (Retry-After %q), want 503 unavailable", status, code, h.Get("Retry-After"))
	}
}
