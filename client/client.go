// Package client is the Go SDK of keyplane's REST API.
//
// It has two halves:
//
//   - [Client], the management client: workspaces, API keys, the audit trail, the request log,
//     webhooks and events, with a typed method for every management call of the OpenAPI document
//     (GET /v1/openapi.json). Build it with [New] and an admin root key or a workspace secret key.
//   - [Verifier], the verification client: [Verifier.Verify], [Verifier.VerifySignature],
//     [Verifier.VerifyJWT], and [Verifier.Middleware], a net/http middleware that protects a handler
//     with a small cache of VALID answers. Build it with [NewVerifier] and a root key with the
//     verify scope. [Sign] is the client's half of request signatures.
//
// Every call takes a context. An answer of the API that is not a success is returned as an
// [*Error], which carries the HTTP status, the API's error code, the request id, the invalid
// fields and, for 429 and 503, how long to wait:
//
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == client.CodeNotFound { … }
//
// Failures to reach the server at all (refused connections, timeouts, a cancelled context) are
// returned as the net/http client reports them, wrapped, and are not *Error.
//
// The package uses the standard library only.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Version is the SDK's version, sent in the default User-Agent.
const Version = "0.1.0"

// DefaultUserAgent is the User-Agent sent unless WithUserAgent says otherwise.
const DefaultUserAgent = "keyplane-go/" + Version

// maxAnswer bounds how much of an answer is read: keyplane's answers are small (a page of 100 keys
// is well under 1 MiB); a larger one is not keyplane's.
const maxAnswer = 32 << 20

// Client calls keyplane's management API. It is safe for concurrent use; build it once and share it.
type Client struct {
	base      string // without a trailing slash
	cred      string
	workspace string
	ua        string
	hc        *http.Client
	retries   int
}

// Option configures a Client or a Verifier.
type Option func(*config)

type config struct {
	hc        *http.Client
	workspace string
	ua        string
	retries   int
}

// WithHTTPClient makes calls with hc instead of a client with a 30-second timeout. Give it a
// Transport to count, trace or sign requests, or a Timeout of your own.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.hc = hc } }

// WithWorkspace sends X-Workspace-Id: id on every call, which root keys need for the calls that act
// on one workspace (API keys, audit logs, request logs, webhooks, events). Workspace keys act on
// their own workspace whatever this says. See also Client.InWorkspace.
func WithWorkspace(id string) Option { return func(c *config) { c.workspace = id } }

// WithUserAgent sets the User-Agent of every call (default DefaultUserAgent). keyplane writes it
// into the request log of calls made with workspace keys and of verifications.
func WithUserAgent(ua string) Option { return func(c *config) { c.ua = ua } }

// WithRetries makes a management call try again, up to n more times, when it may safely do so and a
// later try may succeed: the server could not be reached or did not answer (a transport error), or
// it answered 429, 502, 503 or 504, or 409 idempotency_key_in_use (the call's first try is still
// running). It waits Retry-After when the answer says, else 250 ms doubled at each try (at most 5 s),
// give or take a fifth. GET calls are retried, and POST and PATCH calls, which carry an
// Idempotency-Key that stays the same across the tries of one call: the server runs the call once
// and answers its retries with the first answer. DELETE calls are not retried. Default 0: no retry.
func WithRetries(n int) Option { return func(c *config) { c.retries = max(n, 0) } }

func newConfig(opts []Option) config {
	c := config{ua: DefaultUserAgent}
	for _, o := range opts {
		o(&c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	return c
}

// New returns a management client for the keyplane server at baseURL (such as
// "https://keyplane.internal:8080"), authenticating with credential: an admin root key (kp_root_…)
// or a workspace secret key holding keyplane's permissions.
func New(baseURL, credential string, opts ...Option) *Client {
	c := newConfig(opts)
	return &Client{base: trimBase(baseURL), cred: credential, workspace: c.workspace, ua: c.ua, hc: c.hc, retries: c.retries}
}

func trimBase(u string) string { return strings.TrimRight(u, "/") }

// InWorkspace returns a copy of c that acts on workspace id (X-Workspace-Id), sharing its HTTP
// client: handy for a root key that manages several workspaces.
func (c *Client) InWorkspace(id string) *Client {
	cp := *c
	cp.workspace = id
	return &cp
}

// Workspace is the workspace c names in X-Workspace-Id, or "".
func (c *Client) Workspace() string { return c.workspace }

type requestIDKey struct{}

// WithRequestID returns a context whose calls send X-Request-Id: id, so that keyplane's logs and
// error answers carry an id of yours (at most 64 characters of A–Z a–z 0–9 . _ -; keyplane replaces
// anything else with an id of its own).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

type idempotencyKey struct{}

// WithIdempotencyKey returns a context whose POST and PATCH calls send Idempotency-Key: key instead
// of a key of the client's own. The client sends one on every POST and PATCH call, made once per
// call and kept across its retries (WithRetries); give one of yours to make the same change safely
// from a later call too, or from another process: within 24 hours, the same key with the same call
// (method, path, body) and credential is answered with the first answer, and changes nothing more
// (the answer's Idempotent-Replayed header says so); with another call, the server refuses it
// (422, CodeIdempotencyKeyReused). An empty key sends none. One key is for one call: a context that
// carries one is for one call.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// newIdempotencyKey is the key of a call that was given none: 128 random bits.
func newIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "kpgo_" + hex.EncodeToString(b)
}

// envelope is keyplane's answer: {success, data, nextCursor} or {success: false, error}. Data holds
// the caller's destination, a pointer, so that the answer is decoded in one pass.
type envelope struct {
	Success    bool      `json:"success"`
	Data       any       `json:"data"`
	NextCursor *string   `json:"nextCursor"`
	Error      *apiError `json:"error"`
}

type apiError struct {
	Code      string       `json:"code"`
	Message   string       `json:"message"`
	RequestID string       `json:"requestId"`
	Details   []FieldError `json:"details"`
}

// call is one request of the API.
type call struct {
	method string
	path   string // escaped
	query  url.Values
	body   any // JSON-encoded unless nil
	// noWorkspace leaves X-Workspace-Id out (calls outside a workspace: the header is harmless
	// there, but it is not theirs).
	noWorkspace bool
	// payload is body encoded, once for all of a call's tries; idemKey its Idempotency-Key.
	payload []byte
	idemKey string
}

// do makes the call and decodes data into out (a pointer, or nil); it returns the page cursor.
func (c *Client) do(ctx context.Context, k call, out any) (next string, err error) {
	b, status, h, err := c.raw(ctx, k)
	if err != nil {
		return "", err
	}
	if out == nil {
		out = new(json.RawMessage)
	}
	env := envelope{Data: out}
	if status >= 300 {
		env.Data = new(json.RawMessage)
	}
	jerr := json.Unmarshal(b, &env)
	switch {
	case status >= 300 && (jerr != nil || env.Error == nil):
		return "", httpError(status, h, b)
	case env.Error != nil || status >= 300:
		e := &Error{StatusCode: status, Code: env.Error.Code, Message: env.Error.Message, RequestID: env.Error.RequestID,
			Details: env.Error.Details, RetryAfter: retryAfter(h)}
		if e.RequestID == "" {
			e.RequestID = h.Get("X-Request-Id")
		}
		return "", e
	case jerr != nil:
		return "", fmt.Errorf("keyplane: %s %s: decoding the answer: %w", k.method, k.path, jerr)
	case !env.Success:
		return "", fmt.Errorf("keyplane: %s %s: the answer is not keyplane's JSON envelope", k.method, k.path)
	}
	if env.NextCursor != nil {
		next = *env.NextCursor
	}
	return next, nil
}

// raw makes the call, with its retries (WithRetries), and returns the last answer's body, status
// and headers, whatever the status.
func (c *Client) raw(ctx context.Context, k call) ([]byte, int, http.Header, error) {
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("keyplane: encoding the request: %w", err)
		}
		k.payload = b
	}
	idempotent := k.method == http.MethodGet || k.method == http.MethodHead
	if k.method == http.MethodPost || k.method == http.MethodPatch {
		key, given := ctx.Value(idempotencyKey{}).(string)
		if !given {
			key = newIdempotencyKey()
		}
		k.idemKey, idempotent = key, key != ""
	}
	for try := 0; ; try++ {
		b, status, h, err := c.rawOnce(ctx, k)
		if try >= c.retries || !idempotent || ctx.Err() != nil || !retryable(status, b, err) {
			return b, status, h, err
		}
		wait := retryAfter(h)
		if wait <= 0 || wait > 30*time.Second {
			wait = min(250*time.Millisecond<<try, 5*time.Second)
		}
		wait += time.Duration((mrand.Float64()*0.4 - 0.2) * float64(wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return b, status, h, err
		case <-t.C:
		}
	}
}

// retryable reports whether an answer (or the failure to get one) may be different on another try.
func retryable(status int, body []byte, err error) bool {
	if err != nil {
		return true
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusConflict:
		return bytes.Contains(body, []byte(`"`+CodeIdempotencyKeyInUse+`"`))
	}
	return false
}

// rawOnce is one try of raw.
func (c *Client) rawOnce(ctx context.Context, k call) ([]byte, int, http.Header, error) {
	res, err := c.send(ctx, k, "application/json")
	if err != nil {
		return nil, 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("keyplane: %s %s: reading the answer: %w", k.method, k.path, err)
	}
	return b, res.StatusCode, res.Header, nil
}

// send makes the call and returns the answer unread: the caller closes its body.
func (c *Client) send(ctx context.Context, k call, accept string) (*http.Response, error) {
	u := c.base + k.path
	if len(k.query) > 0 {
		u += "?" + k.query.Encode()
	}
	var body io.Reader
	if k.payload == nil && k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, fmt.Errorf("keyplane: encoding the request: %w", err)
		}
		k.payload = b
	}
	if k.payload != nil {
		body = bytes.NewReader(k.payload)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("keyplane: %w", err)
	}
	h := req.Header
	if c.cred != "" {
		h.Set("Authorization", "Bearer "+c.cred)
	}
	if c.workspace != "" && !k.noWorkspace {
		h.Set("X-Workspace-Id", c.workspace)
	}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Accept", accept)
	if c.ua != "" {
		h.Set("User-Agent", c.ua)
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		h.Set("X-Request-Id", id)
	}
	if k.idemKey != "" {
		h.Set("Idempotency-Key", k.idemKey)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keyplane: %w", err)
	}
	return res, nil
}

// get, post, patch and del are do with the method filled in.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) (string, error) {
	return c.do(ctx, call{method: http.MethodGet, path: path, query: q}, out)
}

func (c *Client) post(ctx context.Context, path string, body, out any) error {
	_, err := c.do(ctx, call{method: http.MethodPost, path: path, body: body}, out)
	return err
}

func (c *Client) patch(ctx context.Context, path string, body, out any) error {
	_, err := c.do(ctx, call{method: http.MethodPatch, path: path, body: body}, out)
	return err
}

// seg escapes one path segment (an id).
func seg(id string) string { return url.PathEscape(id) }

// query builds a query from name/value pairs, leaving out empty values.
func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

func addTime(q url.Values, name string, t time.Time) {
	if !t.IsZero() {
		q.Set(name, t.UTC().Format(time.RFC3339Nano))
	}
}

func addPage(q url.Values, limit int, cursor string) {
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}
