package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/kptest"
)

// TestIterator: 7 keys in pages of 3, by hand and with the iterator, and stopping early.
func TestIterator(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "iter")
	var want []string
	for i := range 7 {
		k := mustKey(t, w, client.CreateAPIKeyRequest{Name: fmt.Sprintf("key %d", i), KeyType: client.KeyTypeSecret})
		want = append(want, k.ID)
	}
	slices.Reverse(want) // newest first

	var sizes []int
	var byHand []string
	p := client.ListAPIKeysParams{Limit: 3}
	for {
		page, err := w.ListAPIKeys(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Items))
		for _, k := range page.Items {
			byHand = append(byHand, k.ID)
		}
		if page.NextCursor == "" {
			break
		}
		p.Cursor = page.NextCursor
	}
	if !slices.Equal(sizes, []int{3, 3, 1}) || !slices.Equal(byHand, want) {
		t.Fatalf("pages %v: %v, want %v", sizes, byHand, want)
	}

	cnt := newCounting()
	wc := newClient(shared.Admin, client.WithHTTPClient(cnt.client()), client.WithWorkspace(w.Workspace()))
	var got []string
	for k, err := range wc.AllAPIKeys(ctx, client.ListAPIKeysParams{Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k.ID)
	}
	if !slices.Equal(got, want) || cnt.n.Load() != 3 {
		t.Fatalf("iterator: %v in %d requests, want %v in 3", got, cnt.n.Load(), want)
	}

	// Breaking out after 4 keys fetches two pages only.
	cnt.n.Store(0)
	n := 0
	for _, err := range wc.AllAPIKeys(ctx, client.ListAPIKeysParams{Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 4 {
			break
		}
	}
	if cnt.n.Load() != 2 {
		t.Errorf("4 keys took %d requests, want 2", cnt.n.Load())
	}

	// Starting from a cursor, and an error ending the sequence.
	first, _ := w.ListAPIKeys(ctx, client.ListAPIKeysParams{Limit: 3})
	got = got[:0]
	for k, err := range w.AllAPIKeys(ctx, client.ListAPIKeysParams{Limit: 3, Cursor: first.NextCursor}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k.ID)
	}
	if !slices.Equal(got, want[3:]) {
		t.Errorf("from the second page: %v, want %v", got, want[3:])
	}
	errs := 0
	for _, err := range w.AllAPIKeys(ctx, client.ListAPIKeysParams{Cursor: "not a cursor"}) {
		if e := apiError(t, err); e.Code != client.CodeInvalidRequest {
			t.Errorf("bad cursor: %v", e)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("a bad cursor yielded %d errors", errs)
	}
}

// TestErrors: the API's errors as *client.Error.
func TestErrors(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "errors")

	// 404, found by errors.As through wrapping, with the request id we sent.
	_, err := w.GetAPIKey(client.WithRequestID(ctx, "sdk-test-404"), "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C")
	wrapped := fmt.Errorf("loading the key: %w", err)
	var e *client.Error
	if !errors.As(wrapped, &e) {
		t.Fatalf("%v is not a *client.Error", err)
	}
	if e.StatusCode != 404 || e.Code != client.CodeNotFound || e.Message == "" || e.RequestID != "sdk-test-404" || client.ErrorCode(wrapped) != "not_found" {
		t.Errorf("404: %+v", e)
	}

	// 400 with every invalid field in Details.
	_, err = w.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "", KeyType: "bogus", RateLimit: &client.RateLimit{Limit: 0, WindowMs: 10}})
	e = apiError(t, err)
	if e.StatusCode != 400 || e.Code != client.CodeInvalidRequest || len(e.Details) < 3 {
		t.Fatalf("400: %+v", e)
	}
	for _, f := range []string{"name", "keyType", "rateLimit.limit"} {
		if msg, ok := e.Field(f); !ok || msg == "" {
			t.Errorf("no detail on %s: %+v", f, e.Details)
		}
	}
	if e.RequestID == "" || e.Error() == "" {
		t.Errorf("400 without a request id: %+v", e)
	}

	// A root key without a workspace, an unknown workspace, a wrong credential.
	_, err = newClient(shared.Admin).ListAPIKeys(ctx, client.ListAPIKeysParams{})
	if e := apiError(t, err); e.StatusCode != 400 {
		t.Errorf("no X-Workspace-Id: %+v", e)
	} else if _, ok := e.Field("X-Workspace-Id"); !ok {
		t.Errorf("no detail on X-Workspace-Id: %+v", e.Details)
	}
	_, err = w.InWorkspace("ws_01JDQ4ZT0M5P2R8S4V6X9Y1Z2A").ListAPIKeys(ctx, client.ListAPIKeysParams{})
	if e := apiError(t, err); e.StatusCode != 404 {
		t.Errorf("unknown workspace: %+v", e)
	}
	_, err = newClient("kp_root_nope").ListWorkspaces(ctx, client.ListParams{})
	if e := apiError(t, err); e.StatusCode != 401 || e.Code != client.CodeUnauthorized {
		t.Errorf("bad credential: %+v", e)
	}
	_, err = newClient(shared.Verify).ListWorkspaces(ctx, client.ListParams{})
	if e := apiError(t, err); e.StatusCode != 403 || e.Code != client.CodeForbidden {
		t.Errorf("verify root key on management: %+v", e)
	}

	// A server that cannot be reached is the transport's error, not an *Error.
	_, err = client.New(deadURL(t), shared.Admin).ListWorkspaces(ctx, client.ListParams{})
	if err == nil || errors.As(err, &e) {
		t.Errorf("unreachable server: %v", err)
	}
	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.Status(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestRateLimitedManagement: 429 with RetryAfter, on a server allowing 5 calls a minute.
func TestRateLimitedManagement(t *testing.T) {
	s := kptest.StartT(t, map[string]string{"KEYPLANE_CONFIG": "../examples/keyplane.json", "KEYPLANE_MANAGEMENT_RATE_LIMIT": "5/1m"})
	c := client.New(s.URL, s.Admin)
	ctx := context.Background()
	for i := range 5 {
		if _, err := c.ListWorkspaces(ctx, client.ListParams{}); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	_, err := c.ListWorkspaces(ctx, client.ListParams{})
	e := apiError(t, err)
	if e.StatusCode != 429 || e.Code != client.CodeRateLimited || e.RetryAfter < time.Second || e.RetryAfter > time.Minute {
		t.Fatalf("429: %+v", e)
	}
}

// deadURL is the address of a port nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
