package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// writeKeyValue answers a key object with its value: the answers that show a value (create, rotate,
// the publishable key).
func writeKeyValue(w http.ResponseWriter, status int, k *keyplane.APIKey, value string) {
	v := k.View(time.Now())
	v.KeyValue = value
	writeData(w, status, v)
}

type createKeyRequest struct {
	Name           string                    `json:"name"`
	Description    string                    `json:"description"`
	KeyType        keyplane.KeyType          `json:"keyType"`
	Environment    keyplane.Environment      `json:"environment"`
	Permissions    []string                  `json:"permissions"`
	ExpiresAt      keyplane.Optional[string] `json:"expiresAt"`
	IPAllowlist    []string                  `json:"ipAllowlist"`
	AllowedOrigins []string                  `json:"allowedOrigins"`
	Meta           json.RawMessage           `json:"meta"`
	RateLimit      *keyplane.RateLimit       `json:"rateLimit"`
	Recoverable    bool                      `json:"recoverable"`
	Credits        *service.CreditsInput     `json:"credits"`
	RateLimits     []keyplane.NamedRateLimit `json:"rateLimits"`
	ExternalID     keyplane.Optional[string] `json:"externalId"`
	IdentityID     keyplane.Optional[string] `json:"identityId"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createKeyRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	exp, err := parseTime("expiresAt", req.ExpiresAt)
	if err != nil {
		return err
	}
	k, value, err := s.svc.CreateAPIKey(r.Context(), c.Caller, c.ws, service.CreateKeyInput{
		Name: req.Name, Description: req.Description, KeyType: req.KeyType, Environment: req.Environment,
		Permissions: req.Permissions, ExpiresAt: exp, IPAllowlist: req.IPAllowlist, AllowedOrigins: req.AllowedOrigins,
		Meta: req.Meta, RateLimit: req.RateLimit, Recoverable: req.Recoverable,
		Credits: req.Credits, RateLimits: req.RateLimits, ExternalID: req.ExternalID, IdentityID: req.IdentityID,
	})
	if err != nil {
		return err
	}
	writeKeyValue(w, http.StatusCreated, k, value)
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var v keyplane.Validation
	if e := q.Get("externalId"); utf8.RuneCountInString(e) > keyplane.MaxExternalIDLen || !utf8.ValidString(e) || strings.IndexFunc(e, unicode.IsControl) >= 0 {
		v.Add("externalId", "must be an externalId: 1 to %d printable characters", keyplane.MaxExternalIDLen)
	}
	if !filterValue(q.Get("identityId")) {
		v.Add("identityId", "must be an identity's id (idn_…)")
	}
	if err := v.Err(); err != nil {
		return err
	}
	keys, next, err := s.svc.ListAPIKeysOf(r.Context(), c.Caller, c.ws, keyplane.KeyFilter{
		Environment: keyplane.Environment(q.Get("environment")), KeyType: keyplane.KeyType(q.Get("keyType")),
		Status: keyplane.Status(q.Get("status")), Limit: limit, Cursor: cursor,
	}, q.Get("externalId"), q.Get("identityId"))
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]*keyplane.APIKeyView, len(keys))
	for i := range keys {
		out[i] = keys[i].View(now)
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request, c *call) error {
	k, err := s.svc.GetAPIKey(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, k.View(time.Now()))
	return nil
}

type patchKeyRequest struct {
	Name           keyplane.Optional[string]                    `json:"name"`
	Description    keyplane.Optional[string]                    `json:"description"`
	Permissions    keyplane.Optional[[]string]                  `json:"permissions"`
	IPAllowlist    keyplane.Optional[[]string]                  `json:"ipAllowlist"`
	AllowedOrigins keyplane.Optional[[]string]                  `json:"allowedOrigins"`
	Meta           keyplane.Optional[json.RawMessage]           `json:"meta"`
	RateLimit      keyplane.Optional[keyplane.RateLimit]        `json:"rateLimit"`
	ExpiresAt      keyplane.Optional[string]                    `json:"expiresAt"`
	Enabled        keyplane.Optional[bool]                      `json:"enabled"`
	Credits        keyplane.Optional[service.CreditsInput]      `json:"credits"`
	RateLimits     keyplane.Optional[[]keyplane.NamedRateLimit] `json:"rateLimits"`
	ExternalID     keyplane.Optional[string]                    `json:"externalId"`
	IdentityID     keyplane.Optional[string]                    `json:"identityId"`
	// Present only to say why they cannot be changed.
	KeyType     json.RawMessage `json:"keyType"`
	Environment json.RawMessage `json:"environment"`
}

func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, c *call) error {
	var req patchKeyRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	var v keyplane.Validation
	if req.KeyType != nil {
		v.Add("keyType", "cannot be changed; create a new key of the other type")
	}
	if req.Environment != nil {
		v.Add("environment", "cannot be changed; create a new key in the other environment")
	}
	if err := v.Err(); err != nil {
		return err
	}
	exp, err := parseTime("expiresAt", req.ExpiresAt)
	if err != nil {
		return err
	}
	k, err := s.svc.UpdateAPIKey(r.Context(), c.Caller, c.ws, r.PathValue("id"), service.KeyPatch{
		Name: req.Name, Description: req.Description, Permissions: req.Permissions, IPAllowlist: req.IPAllowlist,
		AllowedOrigins: req.AllowedOrigins, Meta: req.Meta, RateLimit: req.RateLimit, ExpiresAt: exp, Enabled: req.Enabled,
		Credits: req.Credits, RateLimits: req.RateLimits, ExternalID: req.ExternalID, IdentityID: req.IdentityID,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, k.View(time.Now()))
	return nil
}

type rotateRequest struct {
	ExpireOldAfterSeconds int64 `json:"expireOldAfterSeconds"`
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, c *call) error {
	var req rotateRequest
	if err := decode(w, r, &req, maxManagementBody, true); err != nil {
		return err
	}
	if req.ExpireOldAfterSeconds < 0 || req.ExpireOldAfterSeconds > keyplane.MaxRotationGrace {
		return invalid("expireOldAfterSeconds", "must be from 0 to %d (seven days)", keyplane.MaxRotationGrace)
	}
	k, value, err := s.svc.RotateAPIKey(r.Context(), c.Caller, c.ws, r.PathValue("id"), time.Duration(req.ExpireOldAfterSeconds)*time.Second)
	if err != nil {
		return err
	}
	writeKeyValue(w, http.StatusOK, k, value)
	return nil
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request, c *call) error {
	permanent := false
	switch p := r.URL.Query().Get("permanent"); p {
	case "", "false":
	case "true":
		permanent = true
	default:
		return invalid("permanent", "must be true or false")
	}
	keyID := r.PathValue("id")
	if permanent {
		if err := s.svc.DeleteAPIKey(r.Context(), c.Caller, c.ws, keyID); err != nil {
			return err
		}
		writeData(w, http.StatusOK, map[string]any{"id": keyID, "deleted": true})
		return nil
	}
	k, err := s.svc.RevokeAPIKey(r.Context(), c.Caller, c.ws, keyID)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, map[string]any{"id": k.ID, "revokedAt": keyplane.FormatTime(*k.RevokedAt)})
	return nil
}

func (s *Server) publishableKey(w http.ResponseWriter, r *http.Request, c *call) error {
	k, value, err := s.svc.GetPublishableKey(r.Context(), c.Caller, c.ws, keyplane.Environment(r.URL.Query().Get("environment")))
	if err != nil {
		return err
	}
	writeKeyValue(w, http.StatusOK, k, value)
	return nil
}

func (s *Server) revealKey(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := decode(w, r, &struct{}{}, maxManagementBody, true); err != nil {
		return err
	}
	k, value, err := s.svc.RevealAPIKey(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, map[string]string{"id": k.ID, "keyValue": value})
	return nil
}
