package client_test

import (
	"context"
	"testing"

	"github.com/keyplane/keyplane/client"
)

// TestReportLeaks: the SDK reports values, and each workspace's leakPolicy (set through the SDK) is
// applied; a workspace key may not report.
func TestReportLeaks(t *testing.T) {
	ctx := context.Background()
	w, ws := newWorkspace(t, "leaks")
	k := mustKey(t, w, client.CreateAPIKeyRequest{Name: "leaky", KeyType: client.KeyTypeSecret})
	admin := newClient(shared.Admin)
	if ws.LeakPolicy != client.LeakRevoke {
		t.Fatalf("default leak policy: %q", ws.LeakPolicy)
	}
	up, err := admin.UpdateWorkspace(ctx, ws.ID, client.UpdateWorkspaceRequest{LeakPolicy: client.LeakDisable})
	if err != nil || up.LeakPolicy != client.LeakDisable {
		t.Fatalf("set leak policy: %+v, %v", up, err)
	}
	res, err := admin.ReportLeaks(ctx, client.LeakReport{Keys: []string{k.KeyValue, "not-a-key"}, Source: "sdk", URL: "https://example.com/leak"})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.LeakResult{{Found: true, KeyID: k.ID, Action: client.LeakDisabled}, {Action: client.LeakNone}}
	if len(res) != 2 || res[0] != want[0] || res[1] != want[1] {
		t.Fatalf("report: %+v, want %+v", res, want)
	}
	got, err := w.GetAPIKey(ctx, k.ID)
	if err != nil || got.Enabled {
		t.Fatalf("the leaked key after the report: %+v, %v", got, err)
	}
	res, err = admin.ReportLeaks(ctx, client.LeakReport{Keys: []string{k.KeyValue}})
	if err != nil || res[0].Action != client.LeakAlreadyReported {
		t.Fatalf("again: %+v, %v", res, err)
	}
	integ := mustKey(t, w, client.CreateAPIKeyRequest{Name: "integration", KeyType: client.KeyTypeSecret, Permissions: []string{"api_keys:read", "api_keys:write"}})
	_, err = newClient(integ.KeyValue).ReportLeaks(ctx, client.LeakReport{Keys: []string{k.KeyValue}})
	if e := apiError(t, err); e.Code != client.CodeForbidden {
		t.Fatalf("a workspace key reporting: %v", e)
	}
}
