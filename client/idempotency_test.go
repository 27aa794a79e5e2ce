package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
)

// losing is a transport that carries every request to the server, and loses the answers of the
// first lose requests that match: the server ran them, the client hears a reset connection. It
// records the Idempotency-Key of every request.
type losing struct {
	mu    sync.Mutex
	lose  int
	match string // "METHOD /path"
	keys  []string
}

func (l *losing) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := checked.RoundTrip(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Method+" "+r.URL.Path != l.match {
		return res, err
	}
	l.keys = append(l.keys, r.Header.Get("Idempotency-Key"))
	if err == nil && l.lose > 0 {
		l.lose--
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return nil, errors.New("connection reset by peer")
	}
	return res, err
}

func (l *losing) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

// TestIdempotencyKeys: a POST whose answer is lost is retried with the same Idempotency-Key and
// answered with the first answer, keyValue included: one key is made, not two. Every POST and
// PATCH carries a key of its own, or the caller's.
func TestIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	admin, _ := newWorkspace(t, "idem")
	l := &losing{lose: 1, match: "POST /v1/api-keys"}
	c := newClient(shared.Admin, client.WithHTTPClient(&http.Client{Transport: l, Timeout: 10 * time.Second}), client.WithRetries(2)).InWorkspace(admin.Workspace())

	k, err := c.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "lost once", KeyType: client.KeyTypeSecret})
	if err != nil {
		t.Fatalf("create with a lost answer and retries: %v", err)
	}
	if k.KeyValue == "" {
		t.Error("the replayed answer has no keyValue")
	}
	keys := l.seen()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("Idempotency-Keys of the two tries: %q, want one key, twice", keys)
	}
	page, err := admin.ListAPIKeys(ctx, client.ListAPIKeysParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != k.ID {
		t.Fatalf("%d keys after a retried create, want the one answered", len(page.Items))
	}

	// Without retries, the lost answer is the caller's error, and each call has a key of its own.
	l2 := &losing{lose: 1, match: "POST /v1/api-keys"}
	once := newClient(shared.Admin, client.WithHTTPClient(&http.Client{Transport: l2, Timeout: 10 * time.Second})).InWorkspace(admin.Workspace())
	if _, err := once.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "lost", KeyType: client.KeyTypeSecret}); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("a lost answer without retries: %v", err)
	}
	if _, err := once.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "lost", KeyType: client.KeyTypeSecret}); err != nil {
		t.Fatal(err)
	}
	if keys := l2.seen(); len(keys) != 2 || keys[0] == keys[1] || keys[1] == "" {
		t.Fatalf("two calls' Idempotency-Keys: %q, want two different keys", keys)
	}

	// The caller's own key: a later call with it is answered with the first answer; with another
	// body it is refused.
	own := client.WithIdempotencyKey(ctx, "order-42-key")
	k1, err := admin.CreateAPIKey(own, client.CreateAPIKeyRequest{Name: "order 42", KeyType: client.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := admin.CreateAPIKey(own, client.CreateAPIKeyRequest{Name: "order 42", KeyType: client.KeyTypeSecret})
	if err != nil || k2.ID != k1.ID || k2.KeyValue != k1.KeyValue {
		t.Fatalf("the same call with the same key: %v, %+v; want the first answer", err, k2)
	}
	_, err = admin.CreateAPIKey(own, client.CreateAPIKeyRequest{Name: "order 43", KeyType: client.KeyTypeSecret})
	if e := apiError(t, err); e.StatusCode != 422 || e.Code != client.CodeIdempotencyKeyReused {
		t.Fatalf("another body with the key: %d %s", e.StatusCode, e.Code)
	}
	// A PATCH carries one too; an empty key sends none.
	l3 := &losing{match: "PATCH /v1/api-keys/" + k1.ID}
	p := newClient(shared.Admin, client.WithHTTPClient(&http.Client{Transport: l3, Timeout: 10 * time.Second})).InWorkspace(admin.Workspace())
	if _, err := p.UpdateAPIKey(ctx, k1.ID, client.UpdateAPIKeyRequest{Name: new("renamed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpdateAPIKey(client.WithIdempotencyKey(ctx, ""), k1.ID, client.UpdateAPIKeyRequest{Name: new("again")}); err != nil {
		t.Fatal(err)
	}
	if keys := l3.seen(); len(keys) != 2 || keys[0] == "" || keys[1] != "" {
		t.Fatalf("PATCH Idempotency-Keys: %q, want one, then none", keys)
	}
}
