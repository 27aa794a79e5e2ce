package client

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of MiddlewareOptions.
const (
	DefaultCacheTTL  = 5 * time.Second
	DefaultCacheSize = 10000
)

// maxKeyLen bounds the key a middleware sends to keyplane: key values are about 60 characters; a
// longer string is no key and is refused without a call.
const maxKeyLen = 512

// MiddlewareOptions configure Verifier.Middleware. The zero value is usable: the key from
// Authorization: Bearer or X-API-Key, the client's address from r.RemoteAddr, the Origin header,
// VALID answers cached for 5 s, and 503 when keyplane cannot be reached.
type MiddlewareOptions struct {
	// Permissions are required of every request's key (all of them).
	Permissions []string
	// Environment, when set, is the environment the key must belong to (live or test).
	Environment Environment

	// Key extracts the key from a request; "" means none (401). Default: the credential of
	// Authorization: Bearer, else the X-API-Key header.
	Key func(r *http.Request) string
	// ClientIP is the address the request comes from, sent as the verification's ip (checked
	// against the key's ipAllowlist). Default: the host of r.RemoteAddr. Behind a reverse proxy,
	// return the address your proxy vouches for; return "" to send none.
	ClientIP func(r *http.Request) string
	// Origin is the web origin sent as the verification's origin (checked against a publishable
	// key's allowedOrigins). Default: the Origin header.
	Origin func(r *http.Request) string

	// CacheTTL is how long an answer is reused without asking keyplane: default 5 s (DefaultCacheTTL);
	// negative turns the cache off. Only VALID answers of keys without a rate limit, and NOT_FOUND
	// answers, are cached; a change to a key (revocation, disabling, new permissions) is therefore
	// seen at most CacheTTL late by this process.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached answers: default 10000 (DefaultCacheSize).
	CacheSize int

	// FailOpen lets requests through, without a result in their context, when keyplane cannot be
	// reached or answers 5xx. Default false: such requests are answered 503. Errors that mean the
	// middleware is misconfigured (a wrong root key: 401/403 from keyplane) always answer 503.
	FailOpen bool
	// OnError, if set, is told every error met while verifying (keyplane unreachable, a wrong root
	// key…), for logging. The key is never part of err.
	OnError func(r *http.Request, err error)
	// WriteError, if set, writes the refusals instead of the default JSON body
	// {"error": {"code": "…", "message": "…"}}. Retry-After (429) and WWW-Authenticate (401) are
	// already set when it is called; res is nil when no key was sent or keyplane gave no answer.
	WriteError func(w http.ResponseWriter, r *http.Request, status int, code, message string, res *VerifyResult)
}

type ctxKey struct{}

// FromContext returns the verification result the middleware put in a request's context: the
// caller's key id, workspace, permissions and meta. It is shared with other requests of the same key
// (cached answers): do not change it.
func FromContext(ctx context.Context) (*VerifyResult, bool) {
	r, ok := ctx.Value(ctxKey{}).(*VerifyResult)
	return r, ok && r != nil
}

// NewContext returns ctx holding res as FromContext finds it: for tests of handlers that sit behind
// the middleware.
func NewContext(ctx context.Context, res *VerifyResult) context.Context {
	return context.WithValue(ctx, ctxKey{}, res)
}

// Middleware returns net/http middleware that admits only requests carrying a VALID key. A request
// that passes reaches next with its *VerifyResult in the context (FromContext). The others are
// answered here, with a small JSON body {"error": {"code", "message"}}:
//
//	401 unauthorized   no key, or NOT_FOUND, DISABLED, EXPIRED, REVOKED (WWW-Authenticate: Bearer)
//	403 forbidden      FORBIDDEN (ip, origin or environment), INSUFFICIENT_PERMISSIONS
//	429 rate_limited   RATE_LIMITED, with Retry-After up to the key's ratelimit.resetAt
//	503 unavailable    keyplane could not be asked (unless FailOpen)
//
// Answers are cached in process for CacheTTL (see MiddlewareOptions): VALID answers of keys without
// a rate limit, and NOT_FOUND answers. Cache entries are indexed by the SHA-256 of the key, the
// client address and the origin; the key itself is never kept. A VALID answer of a key with a rate
// limit is never cached, so that every request of such a key is counted by keyplane.
func (v *Verifier) Middleware(opts MiddlewareOptions) func(http.Handler) http.Handler {
	m := &middleware{v: v, o: opts}
	if m.o.Key == nil {
		m.o.Key = KeyFromRequest
	}
	if m.o.ClientIP == nil {
		m.o.ClientIP = RemoteIP
	}
	if m.o.Origin == nil {
		m.o.Origin = func(r *http.Request) string { return r.Header.Get("Origin") }
	}
	if m.o.CacheTTL == 0 {
		m.o.CacheTTL = DefaultCacheTTL
	}
	if m.o.CacheSize <= 0 {
		m.o.CacheSize = DefaultCacheSize
	}
	if m.o.CacheTTL > 0 {
		m.cache = newCache(m.o.CacheSize)
	}
	m.o.Permissions = slices.Clone(m.o.Permissions)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
	}
}

// KeyFromRequest is the middleware's default key extractor: the credential of
// Authorization: Bearer <key>, else the X-API-Key header.
func KeyFromRequest(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if scheme, cred, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(cred)
		}
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// RemoteIP is the middleware's default client address: the host of r.RemoteAddr when it is an IP
// address, else "".
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return ""
	}
	if a.Is4In6() {
		return a.Unmap().String()
	}
	return host
}

type middleware struct {
	v     *Verifier
	o     MiddlewareOptions
	cache *cache
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	key := m.o.Key(r)
	if key == "" {
		m.refuse(w, r, http.StatusUnauthorized, CodeUnauthorized, "an API key is required: send it as Authorization: Bearer <key> or X-API-Key", nil)
		return
	}
	if len(key) > maxKeyLen {
		m.refuse(w, r, http.StatusUnauthorized, CodeUnauthorized, "the API key is not valid", nil)
		return
	}
	ip, origin := m.o.ClientIP(r), m.o.Origin(r)

	var ck [sha256.Size]byte
	if m.cache != nil {
		ck = cacheKey(key, ip, origin)
		if res, ok := m.cache.get(ck, time.Now()); ok {
			m.answer(w, r, next, res)
			return
		}
	}
	res, err := m.v.Verify(r.Context(), key, VerifyRequest{Permissions: m.o.Permissions, IP: ip, Origin: origin, Environment: m.o.Environment})
	if err != nil {
		m.failed(w, r, next, err)
		return
	}
	if m.cache != nil && cacheable(res) {
		now := time.Now()
		until := now.Add(m.o.CacheTTL)
		if res.ExpiresAt != nil && res.ExpiresAt.Before(until) {
			until = *res.ExpiresAt // never serve a key past its expiry
		}
		if until.After(now) {
			m.cache.put(ck, res, until, now)
		}
	}
	m.answer(w, r, next, res)
}

// cacheable: VALID answers of keys without a rate limit (a cached answer would let requests past
// the limit uncounted), and NOT_FOUND answers (so that a flood of one bad key stays local).
func cacheable(res *VerifyResult) bool {
	switch res.Code {
	case VerifyValid:
		// Nor answers that spent credits or counted against a named limit: each must reach keyplane.
		return res.RateLimit == nil && res.Credits == nil && len(res.RateLimits) == 0
	case VerifyNotFound:
		return true
	}
	return false
}

func (m *middleware) answer(w http.ResponseWriter, r *http.Request, next http.Handler, res *VerifyResult) {
	switch res.Code {
	case VerifyValid:
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), res)))
	case VerifyForbidden:
		m.refuse(w, r, http.StatusForbidden, CodeForbidden, "the API key may not be used from here (address, origin or environment)", res)
	case VerifyInsufficientPermissions:
		m.refuse(w, r, http.StatusForbidden, CodeForbidden, "the API key lacks a permission this call needs", res)
	case VerifyRateLimited:
		secs := int64(1)
		if rl := res.RateLimit; rl != nil {
			secs = max(1, int64(math.Ceil(time.Until(rl.ResetAt).Seconds())))
		}
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		m.refuse(w, r, http.StatusTooManyRequests, CodeRateLimited, "the API key's rate limit is used up; retry after "+strconv.FormatInt(secs, 10)+" s", res)
	case VerifyUsageExceeded:
		m.refuse(w, r, http.StatusTooManyRequests, CodeRateLimited, "the API key's credits are used up", res)
	case VerifyDisabled:
		m.refuse(w, r, http.StatusUnauthorized, CodeUnauthorized, "the API key is disabled", res)
	case VerifyExpired:
		m.refuse(w, r, http.StatusUnauthorized, CodeUnauthorized, "the API key has expired", res)
	case VerifyRevoked:
		m.refuse(w, r, http.StatusUnauthorized, CodeUnauthorized, "the API key has been revoked", res)
	default: // NOT_FOUND, and any code this SDK does not know
		m.refuse(w, r, http.StatusUnauthorized, CodeUnauthorized, "the API key is not valid", res)
	}
}

// failed answers a request whose key could not be verified.
func (m *middleware) failed(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	if m.o.OnError != nil {
		m.o.OnError(r, err)
	}
	var e *Error
	misconfigured := errors.As(err, &e) && e.StatusCode < 500
	if m.o.FailOpen && !misconfigured {
		next.ServeHTTP(w, r)
		return
	}
	if e != nil && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(e.RetryAfter.Seconds()))), 10))
	}
	m.refuse(w, r, http.StatusServiceUnavailable, CodeUnavailable, "the API key could not be verified right now; try again shortly", nil)
}

func (m *middleware) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string, res *VerifyResult) {
	h := w.Header()
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	if m.o.WriteError != nil {
		m.o.WriteError(w, r, status, code, msg, res)
		return
	}
	b, _ := json.Marshal(struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{Error: struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// cacheKey is SHA-256(key NUL ip NUL origin): the key is never kept, and an answer is reused only
// for the address and origin it was given for.
func cacheKey(key, ip, origin string) [sha256.Size]byte {
	var buf [256]byte
	b := append(buf[:0], key...)
	b = append(b, 0)
	b = append(b, ip...)
	b = append(b, 0)
	b = append(b, origin...)
	return sha256.Sum256(b)
}

// cache is a bounded map of answers with an expiry each. When full, an insert first drops the
// expired entries and then, if that freed less than a tenth of the room, further entries in map
// order (about random) until a tenth is free: the sweep's cost is spread over many inserts, so that
// a flood of distinct bad keys cannot make every insert scan the whole map.
type cache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	res   *VerifyResult
	until time.Time
}

func newCache(size int) *cache {
	return &cache{max: size, entries: make(map[[sha256.Size]byte]cacheEntry, min(size, 1024))}
}

func (c *cache) get(k [sha256.Size]byte, now time.Time) (*VerifyResult, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return e.res, true
}

func (c *cache) put(k [sha256.Size]byte, res *VerifyResult, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for ek, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, ek)
			}
		}
		room := c.max - max(1, c.max/10)
		for ek := range c.entries {
			if len(c.entries) <= room {
				break
			}
			delete(c.entries, ek)
		}
	}
	c.entries[k] = cacheEntry{res: res, until: until}
}
