package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/kptest"
)

// TestOrdersAPI runs the example against a real keyplane: keys of two workspaces, read-only and
// read-write, a revoked one, and none.
func TestOrdersAPI(t *testing.T) {
	kp := kptest.StartT(t, map[string]string{"KEYPLANE_CONFIG": "../keyplane.json"})
	ctx := context.Background()
	admin := client.New(kp.URL, kp.Admin)
	newKey := func(slug string, perms ...string) (*client.APIKey, *client.Client) {
		ws, err := admin.CreateWorkspace(ctx, client.CreateWorkspaceRequest{Name: slug, Slug: slug})
		if err != nil {
			t.Fatal(err)
		}
		c := admin.InWorkspace(ws.ID)
		k, err := c.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: slug, KeyType: client.KeyTypeSecret, Environment: client.EnvTest, Permissions: perms})
		if err != nil {
			t.Fatal(err)
		}
		return k, c
	}
	shop, _ := newKey("shop", "orders:read", "orders:write")
	other, otherWS := newKey("other-shop", "orders:read")

	api := httptest.NewServer(newAPI(client.NewVerifier(kp.URL, kp.Verify), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer api.Close()
	call := func(method, key, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, api.URL+"/orders", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	if code, body := call("POST", shop.KeyValue, `{"item": "coffee beans"}`); code != 201 || !strings.Contains(body, `"createdBy":"`+shop.ID+`"`) {
		t.Fatalf("place an order: %d %s", code, body)
	}
	code, body := call("GET", shop.KeyValue, "")
	var got struct {
		Orders []order `json:"orders"`
		KeyID  string  `json:"keyId"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got.Orders) != 1 || got.Orders[0].Item != "coffee beans" || got.KeyID != shop.ID {
		t.Fatalf("list orders: %d %s", code, body)
	}
	// Another workspace's key sees none of them, and may not place orders.
	if code, body := call("GET", other.KeyValue, ""); code != 200 || !strings.Contains(body, `"orders":[]`) {
		t.Errorf("another workspace lists: %d %s", code, body)
	}
	if code, body := call("POST", other.KeyValue, `{"item": "tea"}`); code != 403 || !strings.Contains(body, `"forbidden"`) {
		t.Errorf("a read-only key places an order: %d %s", code, body)
	}
	if code, _ := call("GET", "", ""); code != 401 {
		t.Errorf("no key: %d", code)
	}
	if code, _ := call("GET", "kp_sk_test_notakey", ""); code != 401 {
		t.Errorf("a malformed key: %d", code)
	}
	// A revoked key is refused once the middleware's cache (5 s) no longer holds it: the next
	// POST was never cached (403s are not), so it shows at once.
	if _, err := otherWS.RevokeAPIKey(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := call("POST", other.KeyValue, `{"item": "tea"}`); code != 401 {
		t.Errorf("a revoked key: %d", code)
	}
}
