package api

import (
	"net/http"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
)

// authMode says which credentials an endpoint takes.
type authMode int

const (
	anyCaller   authMode = iota // root key with admin scope, or a workspace secret key
	inWorkspace                 // the same, and the call acts on one workspace
	verifier                    // root key with the verify scope
)

// call is an authenticated request: who calls, and the workspace it acts on (inWorkspace only).
type call struct {
	*keyplane.Caller
	ws string
}

type handler func(w http.ResponseWriter, r *http.Request, c *call) error

// auth authenticates the request for mode and runs h, answering any error in the envelope.
func (s *Server) auth(mode authMode, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r, mode)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

func unauthorized(msg string) error { return keyplane.Errorf(keyplane.CodeUnauthorized, "%s", msg) }

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
	c := &call{Caller: &keyplane.Caller{UserAgent: truncateUA(r.UserAgent()), RequestID: requestID(r.Context())}}
	if ip.IsValid() {
		c.IP = ip.String()
	}
	prefix := s.svc.KeyPrefix()
	kind, err := keyformat.Parse(prefix, cred)
	if err != nil {
		return nil, unauthorized("the credential is not a valid key")
	}
	if kind.Root {
		rk, err := s.ver.RootKey(r.Context(), cred)
		if err != nil {
			return nil, err
		}
		if rk == nil {
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
		return nil, keyplane.Errorf(keyplane.CodeForbidden, "verification needs a root key with the verify scope")
	}
	res, err := s.ver.Verify(r.Context(), cred, &keyplane.VerifyRequest{IP: ip})
	if err != nil {
		return nil, err
	}
	switch res.Code {
	case keyplane.VerifyValid:
	case keyplane.VerifyForbidden:
		return nil, keyplane.Errorf(keyplane.CodeForbidden, "this key may not be used from %s", c.IP)
	default:
		return nil, unauthorized("the key is unknown, disabled, expired or revoked")
	}
	k := res.Key.Key
	c.Actor = keyplane.Actor{Type: keyplane.ActorAPIKey, ID: k.ID, Name: k.Name}
	c.WorkspaceID, c.Permissions, c.ws = k.WorkspaceID, k.Permissions, k.WorkspaceID
	return c, nil
}

func truncateUA(ua string) string {
	if len(ua) > 512 {
		return ua[:512]
	}
	return ua
}
