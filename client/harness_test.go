package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/api/openapitest"
	"github.com/keyplane/keyplane/internal/kptest"
)

// shared is the server most tests use, started by TestMain: webhooks may post to loopback and the
// request log is flushed every 100 ms.
var shared *kptest.Server

// checked carries the calls of every SDK client the tests build (newClient, newVerifier,
// newCounting): each answer is checked against the OpenAPI document, and TestMain fails the run if
// the SDK never called a documented operation it is meant to cover.
var checked *openapitest.Transport

// notSDK are the documented operations the SDK leaves to others on purpose: GET /healthz is for
// orchestrators' liveness probes, and GET /v1/auth is forward auth, called by nginx, Traefik or Envoy
// (the SDK's equivalent is Verifier.Middleware).
// POST /v1/secret-scanning/github is GitHub's to call, signed with GitHub's key.
var notSDK = map[string]bool{"GET /healthz": true, "GET /v1/auth": true, "POST /v1/secret-scanning/github": true}

func TestMain(m *testing.M) {
	v, err := openapitest.New(api.OpenAPI())
	if err != nil {
		fmt.Fprintln(os.Stderr, "OpenAPI document:", err)
		os.Exit(1)
	}
	checked = openapitest.NewTransport(v, nil)
	s, err := kptest.Start(map[string]string{
		"KEYPLANE_CONFIG":                "../examples/keyplane.json",
		"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true",
		"KEYPLANE_LOG_FLUSH_INTERVAL":    "100ms",
		"KEYPLANE_USAGE_FLUSH_INTERVAL":  "100ms",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting keyplane:", err)
		os.Exit(1)
	}
	shared = s
	code := m.Run()
	if errs := checked.Errors(); len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d answers do not match the OpenAPI document:\n  %s\n", len(errs), strings.Join(errs, "\n  "))
		code = 1
	}
	if code == 0 && !openapitest.Filtered(os.Args[1:]) {
		if missing := v.Unexercised(notSDK, checked); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: documented operations no SDK test called: %v\n", missing)
			code = 1
		}
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping keyplane:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// newClient is client.New on the shared server, its calls checked against the OpenAPI document
// (opts may replace the HTTP client; newCounting's is checked too).
func newClient(cred string, opts ...client.Option) *client.Client {
	return client.New(shared.URL, cred, append([]client.Option{client.WithHTTPClient(checkedHTTP())}, opts...)...)
}

// newVerifier is client.NewVerifier on the shared server, its calls checked like newClient's.
func newVerifier(cred string, opts ...client.Option) *client.Verifier {
	return client.NewVerifier(shared.URL, cred, append([]client.Option{client.WithHTTPClient(checkedHTTP())}, opts...)...)
}

func checkedHTTP() *http.Client { return &http.Client{Transport: checked, Timeout: 10 * time.Second} }

var slugs atomic.Int64

// newWorkspace creates a workspace on the shared server and returns an admin client acting on it.
func newWorkspace(t testing.TB, name string) (*client.Client, *client.Workspace) {
	t.Helper()
	c := newClient(shared.Admin)
	slug := fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e9, slugs.Add(1))
	ws, err := c.CreateWorkspace(context.Background(), client.CreateWorkspaceRequest{Name: "SDK " + name, Slug: slug, MaxKeys: new(100)})
	if err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	return c.InWorkspace(ws.ID), ws
}

// mustKey creates a key or fails the test.
func mustKey(t testing.TB, c *client.Client, req client.CreateAPIKeyRequest) *client.APIKey {
	t.Helper()
	k, err := c.CreateAPIKey(context.Background(), req)
	if err != nil {
		t.Fatalf("create key %q: %v", req.Name, err)
	}
	return k
}

// counting is an http.RoundTripper that counts the requests it carries.
type counting struct {
	n  atomic.Int64
	rt http.RoundTripper
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func newCounting() *counting { return &counting{rt: checked} }

// apiError returns err as an *client.Error or fails the test.
func apiError(t testing.TB, err error) *client.Error {
	t.Helper()
	var e *client.Error
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is not a *client.Error", err, err)
	}
	return e
}

func (c *counting) client() *http.Client {
	return &http.Client{Transport: c, Timeout: 10 * time.Second}
}
