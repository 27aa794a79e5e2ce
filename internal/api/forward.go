package api

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
)

// forwardAuth is GET /v1/auth (any method): forward authentication for nginx auth_request, Traefik
// ForwardAuth and Envoy ext_authz (HTTP). The proxy sends the client's request headers; the answer's
// status is the decision and its X-Keyplane-* headers tell the upstream who called. Its body is the
// usual envelope, which proxies may show the client on a refusal: it names no key.
func (s *Server) forwardAuth(w http.ResponseWriter, r *http.Request) {
	start := accesslog.Start(r.Context())
	if start.IsZero() {
		start = time.Now()
	}
	c := &call{Caller: &keyplane.Caller{}, start: start}
	root := r.Header.Get("X-Keyplane-Root-Key")
	if root == "" {
		s.log.WarnContext(r.Context(), "forward auth refused: the proxy sent no X-Keyplane-Root-Key; configure it to send a root key with the verify scope")
		s.writeError(w, r, unauthorized("the proxy must send a root key with the verify scope in X-Keyplane-Root-Key"))
		return
	}
	rk, err := s.ver.RootKey(r.Context(), root)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return
	case rk == nil || !rk.HasScope(keyplane.ScopeVerify):
		s.log.WarnContext(r.Context(), "forward auth refused: X-Keyplane-Root-Key is not a root key with the verify scope (unknown, revoked, or admin only)")
		s.writeError(w, r, unauthorized("the proxy must send a root key with the verify scope in X-Keyplane-Root-Key"))
		return
	}

	key := r.Header.Get("X-API-Key")
	if scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		key = strings.TrimSpace(cred)
	}
	ip := s.ClientIP(r)
	vr := keyplane.VerifyRequest{IP: ip, Origin: r.Header.Get("Origin"), Cost: keyplane.DefaultCreditCost}
	for _, p := range strings.Split(r.Header.Get("X-Required-Permissions"), ",") {
		if p = strings.TrimSpace(p); p != "" && len(vr.Permissions) < keyplane.MaxPermissions {
			vr.Permissions = append(vr.Permissions, p)
		}
	}
	res, err := s.ver.Verify(r.Context(), key, &vr)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The request log shows the client's request, as the proxy describes it, when a trusted proxy
	// does; else this call's own.
	lr := r
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/auth/"); ok {
		lr = r.Clone(r.Context())
		lr.URL.Path = "/" + rest
	}
	if s.FromTrustedProxy(r) {
		if lr == r {
			lr = r.Clone(r.Context())
		}
		if m := firstHeader(r, "X-Forwarded-Method", "X-Original-Method"); m != "" {
			lr.Method = m
		}
		if u := firstHeader(r, "X-Forwarded-Uri", "X-Original-URI"); u != "" {
			path, _, _ := strings.Cut(u, "?")
			lr.URL.Path = path
		}
	}
	a := s.verified(lr, c, res, keyplane.SourceAuth, &vr)
	h := w.Header()
	switch res.Code {
	case keyplane.VerifyValid:
		k := res.Key
		h.Set("X-Keyplane-Key-Id", k.ID)
		h.Set("X-Keyplane-Workspace-Id", k.WorkspaceID)
		h.Set("X-Keyplane-Environment", string(k.Environment))
		h.Set("X-Keyplane-Permissions", strings.Join(k.Permissions, ","))
		if d, ok := res.Limits.Default(); ok {
			h.Set("X-RateLimit-Limit", strconv.FormatInt(d.Limit, 10))
			h.Set("X-RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10))
		}
		writeData(w, http.StatusOK, map[string]any{"valid": true, "code": a.Code})
	case keyplane.VerifyForbidden, keyplane.VerifyInsufficientPermissions:
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeForbidden, "the key may not do this (%s)", res.Code))
	case keyplane.VerifyRateLimited:
		d, _ := res.Limits.Refused()
		secs := int64(math.Ceil(d.RetryAfter.Seconds()))
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeRateLimited, "the key's rate limit %q is used up; retry after %d s", d.Name, max(secs, 1)))
	case keyplane.VerifyUsageExceeded:
		// No Retry-After: credits come back only with a refill or a top-up, not with time.
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeRateLimited, "the key's credits are used up"))
	default:
		s.writeError(w, r, unauthorized("send a valid API key as Authorization: Bearer <key> or X-API-Key"))
	}
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}
