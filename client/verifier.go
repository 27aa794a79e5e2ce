package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Verifier calls keyplane's verification API with a root key that has the verify scope. It is safe
// for concurrent use; build it once and share it.
type Verifier struct {
	c *Client
}

// NewVerifier returns a verification client for the keyplane server at baseURL, authenticating with
// verifyRootKey, a root key with the verify scope. Unless WithHTTPClient says otherwise, calls time
// out after 5 seconds and keep up to 64 idle connections to the server, so that a busy middleware
// reuses them. WithWorkspace has no effect on verification.
func NewVerifier(baseURL, verifyRootKey string, opts ...Option) *Verifier {
	cfg := newConfig(append([]Option{WithHTTPClient(defaultVerifyHTTPClient())}, opts...))
	return &Verifier{c: &Client{base: trimBase(baseURL), cred: verifyRootKey, ua: cfg.ua, hc: cfg.hc}}
}

func defaultVerifyHTTPClient() *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Client{Timeout: 5 * time.Second}
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Timeout: 5 * time.Second, Transport: t}
}

// VerifyRequest is what a key must satisfy besides existing: every permission held, the ip inside
// its ipAllowlist, the origin among its allowedOrigins, the environment its own. Empty fields are not
// sent. A key with an ipAllowlist or allowedOrigins verified without ip or origin is FORBIDDEN.
type VerifyRequest struct {
	Permissions []string    `json:"permissions,omitempty"`
	IP          string      `json:"ip,omitempty"`
	Origin      string      `json:"origin,omitempty"`
	Environment Environment `json:"environment,omitempty"`
	// Credits is what the verification spends of the key's (or its identity's) credits when it is
	// otherwise VALID; nil: the server's default cost, 1. Cost 0 checks without spending.
	Credits *VerifyCredits `json:"credits,omitempty"`
	// RateLimits are named limits to apply besides the auto-applied ones, each with its cost.
	RateLimits []LimitCost `json:"rateLimits,omitempty"`
	// Tags (at most 10 of at most 128 bytes) are stored with the request log entry.
	Tags []string `json:"tags,omitempty"`
}

// VerifyCredits is the cost of a verification in credits (0–1000).
type VerifyCredits struct {
	Cost int64 `json:"cost"`
}

// LimitCost names a rate limit to apply, and what the verification counts against it (0–1000).
type LimitCost struct {
	Name string `json:"name"`
	Cost int64  `json:"cost"`
}

// CreditsState is a balance after a verification.
type CreditsState struct {
	Remaining int64 `json:"remaining"`
}

// NamedLimitState is a named limit after a verification.
type NamedLimitState struct {
	Name      string    `json:"name"`
	Limit     int64     `json:"limit"`
	Remaining int64     `json:"remaining"`
	ResetAt   time.Time `json:"resetAt"`
	Exceeded  bool      `json:"exceeded"`
}

// IdentityRef is what a verification says of the key's identity.
type IdentityRef struct {
	ID         string          `json:"id"`
	ExternalID string          `json:"externalId"`
	Meta       json.RawMessage `json:"meta"`
}

type verifyBody struct {
	Key string `json:"key"`
	VerifyRequest
}

// RateLimitState is a key's rate limit after a request that counted against it.
type RateLimitState struct {
	Limit int64 `json:"limit"`
	// Remaining is how many more requests are allowed at once.
	Remaining int64 `json:"remaining"`
	// ResetAt is when the key is back to its full limit.
	ResetAt time.Time `json:"resetAt"`
}

// VerifyResult is a verification's answer. Valid is true exactly when Code is VALID. When no key has
// the value (NOT_FOUND), only Valid and Code are set; otherwise the key's fields are set whatever
// the code.
type VerifyResult struct {
	Valid bool       `json:"valid"`
	Code  VerifyCode `json:"code"`
	// Reason says why a signature or token was refused (INVALID_SIGNATURE): "bad signature",
	// "stale timestamp", "replay", "bad claims: …".
	Reason      string          `json:"reason,omitempty"`
	KeyID       string          `json:"keyId,omitempty"`
	WorkspaceID string          `json:"workspaceId,omitempty"`
	Name        string          `json:"name,omitempty"`
	KeyType     KeyType         `json:"keyType,omitempty"`
	Environment Environment     `json:"environment,omitempty"`
	Permissions []string        `json:"permissions,omitempty"`
	Meta        json.RawMessage `json:"meta,omitempty"`
	ExpiresAt   *time.Time      `json:"expiresAt,omitempty"`
	// RateLimit is set when the key has a rate limit and the request counted against it (it would
	// otherwise have been VALID).
	RateLimit *RateLimitState `json:"ratelimit,omitempty"`
	// Credits is the balance after the verification, where the key (or its identity) has credits.
	Credits *CreditsState `json:"credits,omitempty"`
	// RateLimits are the named limits the verification was counted against.
	RateLimits []NamedLimitState `json:"ratelimits,omitempty"`
	// Identity is the key's identity, where it has one.
	Identity *IdentityRef `json:"identity,omitempty"`
	// Claims are a JWT's claims, once its signature and claims checked out (VerifyJWT).
	Claims json.RawMessage `json:"claims,omitempty"`
}

// HasPermission reports whether the verified key holds permission p.
func (r *VerifyResult) HasPermission(p string) bool { return slices.Contains(r.Permissions, p) }

// Verify checks an API key (POST /v1/verify). A well-formed request always answers a result, whose
// Code is the outcome; an error is returned only when there is no outcome: keyplane unreachable
// (the transport's error), or an *Error (a wrong root key, an invalid request, 503 when keyplane's
// store cannot be read).
func (v *Verifier) Verify(ctx context.Context, key string, req VerifyRequest) (*VerifyResult, error) {
	var out VerifyResult
	if err := v.c.post(ctx, "/v1/verify", verifyBody{Key: key, VerifyRequest: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SignatureRequest is a request signed with a recoverable key's value (see Sign), as the platform
// received it.
type SignatureRequest struct {
	KeyID     string `json:"keyId"`
	Timestamp int64  `json:"timestamp"` // unix seconds; at most 300 s from keyplane's clock
	Signature string `json:"signature"` // lowercase hex
	Method    string `json:"method"`    // in capitals
	// Path is the path with its query, exactly as sent, starting with /.
	Path        string   `json:"path"`
	BodySHA256  string   `json:"bodySha256"` // lowercase hex
	Permissions []string `json:"permissions,omitempty"`
	IP          string   `json:"ip,omitempty"`
}

// VerifySignature checks a signed request (POST /v1/verify/signature). A signature is accepted once:
// a replay is INVALID_SIGNATURE with Reason "replay".
func (v *Verifier) VerifySignature(ctx context.Context, req SignatureRequest) (*VerifyResult, error) {
	var out VerifyResult
	if err := v.c.post(ctx, "/v1/verify/signature", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyJWTRequest is what a token's key must satisfy besides the token checking out.
type VerifyJWTRequest struct {
	Permissions []string `json:"permissions,omitempty"`
	IP          string   `json:"ip,omitempty"`
}

type jwtBody struct {
	Token string `json:"token"`
	VerifyJWTRequest
}

// VerifyJWT checks a compact JWT signed HS256 with a recoverable key's value, whose header's kid is
// the key's id (POST /v1/verify/jwt). A token that checks out answers its claims in Claims.
func (v *Verifier) VerifyJWT(ctx context.Context, token string, req VerifyJWTRequest) (*VerifyResult, error) {
	var out VerifyResult
	if err := v.c.post(ctx, "/v1/verify/jwt", jwtBody{Token: token, VerifyJWTRequest: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Sign is the client's half of request signatures: it returns
// hex(HMAC-SHA256(keyValue, timestamp + "\n" + method + "\n" + path + "\n" + bodySHA256)) and
// bodySHA256, the lowercase hex SHA-256 of body. method is sent in capitals and path is the path
// with its query, exactly as sent; timestamp is unix seconds (time.Now().Unix()).
func Sign(keyValue string, timestamp int64, method, path string, body []byte) (signature, bodySHA256 string) {
	sum := sha256.Sum256(body)
	bodySHA256 = hex.EncodeToString(sum[:])
	m := hmac.New(sha256.New, []byte(keyValue))
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte("\n" + method + "\n" + path + "\n" + bodySHA256))
	return hex.EncodeToString(m.Sum(nil)), bodySHA256
}
