package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/redact"
)

// authMode says which credentials an endpoint takes.
type authMode int

const (
	anyCaller   authMode = iota // root key with admin scope, or a workspace secret key
	inWorkspace                 // the same, and the call acts on one workspace
	verifier                    // root key with the verify scope
)

// call is an authenticated request: who calls, the workspace it acts on (inWorkspace only), and when
// it arrived.
type call struct {
	*keyplane.Caller
	ws    string
	start time.Time
	// key is the workspace key that authenticated the call, or failed to, and code its verification's
	// outcome: the call is logged in the key's request log. Nil for root keys and unknown keys.
	key  *keyplane.CompiledKey
	code keyplane.VerifyCode
}

type handler func(w http.ResponseWriter, r *http.Request, c *call) error

// auth authenticates the request for mode and runs h, answering any error in the envelope. A call made
// with a workspace key is logged once answered, whether it succeeded or not.
func (s *Server) auth(mode authMode, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := accesslog.Start(r.Context())
		if start.IsZero() {
			start = time.Now() // served without the access log wrapper (tests)
		}
		var c *call
		err := s.limitAddress(w, r, mode)
		if err == nil {
			c, err = s.authenticate(r, mode)
		}
		if err == nil {
			err = s.limitCredential(w, r, mode, c)
		}
		if err == nil {
			c.start = start
			err = h(w, r, c)
		}
		if err != nil && !errors.As(err, new(answered)) {
			s.writeError(w, r, err)
		}
		if c != nil && c.key != nil {
			s.logManagement(r, c, err, start)
		}
	}
}

// limitAddress counts a management call against its client address's limit, before the credential
// is looked at, so that guessing credentials is slowed down as much as using one.
func (s *Server) limitAddress(w http.ResponseWriter, r *http.Request, mode authMode) error {
	if mode == verifier {
		return nil
	}
	ip := s.ClientIP(r)
	if !ip.IsValid() {
		return nil
	}
	return s.limit(w, r, "mgmt-ip:"+ip.String(), s.addrLim, "this address")
}

// limitCredential counts an authenticated management call against its credential's limit.
func (s *Server) limitCredential(w http.ResponseWriter, r *http.Request, mode authMode, c *call) error {
	if mode == verifier {
		return nil
	}
	return s.limit(w, r, "mgmt-cred:"+c.Actor.ID, s.credLim, "this credential")
}

func (s *Server) limit(w http.ResponseWriter, r *http.Request, key string, l ratelimit.Limit, who string) error {
	d, err := s.limiter.Allow(r.Context(), key, l)
	if err != nil || d.Allowed {
		return nil // a limiter that cannot decide does not stop the API
	}
	secs := int64(math.Ceil(d.RetryAfter.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return keyplane.Errorf(keyplane.CodeRateLimited, "%s made more than %d management calls in %s; retry after %d s", who, l.Limit, l.Window, max(secs, 1))
}

// logManagement logs a management call made with a workspace key. Its code is the key's verification
// outcome, or INSUFFICIENT_PERMISSIONS when the call was refused for a permission the key lacks.
func (s *Server) logManagement(r *http.Request, c *call, err error, start time.Time) {
	code := c.code
	if code == keyplane.VerifyValid && err != nil {
		switch keyplane.ErrorCode(err) {
		case keyplane.CodeForbidden:
			code = keyplane.VerifyInsufficientPermissions
		case keyplane.CodeRateLimited:
			code = keyplane.VerifyRateLimited
		}
	}
	s.reqlog.Log(keyplane.RequestLog{
		WorkspaceID: c.key.WorkspaceID, KeyID: c.key.ID, Code: code, Source: keyplane.SourceManagement,
		Method: r.Method, Path: redact.Secrets(r.URL.Path), IP: c.IP, UserAgent: c.UserAgent,
		LatencyMicros: time.Since(start).Microseconds(), Timestamp: start,
	})
}

// isRootKey reports whether cred looks like a root key (its form is checked on a miss).
func (s *Server) isRootKey(cred string) bool {
	prefix := s.svc.KeyPrefix()
	return strings.HasPrefix(cred, prefix) && strings.HasPrefix(cred[len(prefix):], "_root_")
}

func unauthorized(msg string) error { return keyplane.Errorf(keyplane.CodeUnauthorized, "%s", msg) }

// authenticate finds the caller of r. When it fails after finding a workspace key (disabled, revoked,
// used from a forbidden address), it returns the call with key and code set beside the error, so that
// the attempt is logged in that key's workspace.
func (s *Server) authenticate(r *http.Request, mode authMode) (*call, error) {
	authz := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(authz, " ")
	if authz == "" {
		return nil, unauthorized("send a credential as Authorization: Bearer <key>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return nil, unauthorized("the Authorization header must be Bearer <key>")
	}
	ip := s.ClientIP(r)
	c := &call{Caller: &keyplane.Caller{UserAgent: redact.UserAgent(r.UserAgent()), RequestID: requestID(r.Context())}}
	if ip.IsValid() {
		c.IP = ip.String()
	}
	prefix := s.svc.KeyPrefix()
	// A root key is looked up by its value first (RootKey checks its form on a miss): the verify
	// root key of a platform authenticates every verification.
	var kind keyformat.Kind
	var err error
	if s.isRootKey(cred) {
		kind.Root = true
	} else if kind, err = keyformat.Parse(prefix, cred); err != nil {
		return nil, unauthorized("the credential is not a valid key")
	}
	if kind.Root {
		rk, err := s.ver.RootKey(r.Context(), cred)
		if err != nil {
			return nil, err
		}
		if rk == nil {
			if k, err := keyformat.Parse(prefix, cred); err != nil || !k.Root {
				return nil, unauthorized("the credential is not a valid key")
			}
			return nil, unauthorized("the root key is unknown or revoked")
		}
		c.Actor = keyplane.Actor{Type: keyplane.ActorRootKey, ID: rk.ID, Name: rk.Name}
		if mode == verifier {
			if !rk.HasScope(keyplane.ScopeVerify) {
				return nil, keyplane.Errorf(keyplane.CodeForbidden, "this root key lacks the verify scope")
			}
			return c, nil
		}
		if !rk.HasScope(keyplane.ScopeAdmin) {
			return nil, keyplane.Errorf(keyplane.CodeForbidden, "this root key lacks the admin scope")
		}
		c.Operator = true
		if mode == inWorkspace {
			ws := r.Header.Get("X-Workspace-Id")
			if ws == "" {
				return nil, invalid("X-Workspace-Id", "a root key must name the workspace it acts on in the X-Workspace-Id header")
			}
			if !id.Valid(id.Workspace, ws) {
				return nil, keyplane.NotFound("workspace")
			}
			c.ws = ws
		}
		return c, nil
	}
	if kind.Publishable {
		return nil, unauthorized("publishable keys cannot call the management API; use a secret key")
	}
	if mode == verifier {
		// A workspace key never verifies, but only one that would authenticate lacks a scope (403):
		// an unknown, disabled, expired or revoked one is refused as any such credential is (401).
		res, err := s.ver.Check(r.Context(), cred, &keyplane.VerifyRequest{IP: ip})
		if err != nil {
			return nil, err
		}
		switch res.Code {
		case keyplane.VerifyNotFound, keyplane.VerifyDisabled, keyplane.VerifyExpired, keyplane.VerifyRevoked:
			return nil, unauthorized("the key is unknown, disabled, expired or revoked")
		}
		return nil, keyplane.Errorf(keyplane.CodeForbidden, "verification needs a root key with the verify scope")
	}
	// Checked, not verified: a management call is no verification, and must spend nothing of the
	// key's verification rate limit (the API's own limits count it, in limitCredential).
	res, err := s.ver.Check(r.Context(), cred, &keyplane.VerifyRequest{IP: ip})
	if err != nil {
		return nil, err
	}
	if res.Key != nil {
		c.key, c.code = res.Key, res.Code
	}
	switch res.Code {
	case keyplane.VerifyValid:
	case keyplane.VerifyNotFound:
		return nil, unauthorized("the key is unknown, disabled, expired or revoked")
	case keyplane.VerifyForbidden:
		return c, keyplane.Errorf(keyplane.CodeForbidden, "this key may not be used from %s", c.IP)
	default:
		return c, unauthorized("the key is unknown, disabled, expired or revoked")
	}
	k := res.Key
	c.Actor = keyplane.Actor{Type: keyplane.ActorAPIKey, ID: k.ID, Name: k.Name}
	c.WorkspaceID, c.Permissions, c.ws = k.WorkspaceID, k.Permissions, k.WorkspaceID
	c.Environment = k.Environment
	c.ExpiresAt, c.IPAllowlist, c.RateLimit = k.ExpiresAt(), k.IPAllowlist, k.RateLimit
	return c, nil
}
