package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// maxImportBody bounds an import's body: a thousand keys with their meta (4 KiB each at most) and
// the rest of their settings.
const maxImportBody = 8 << 20

type importKeysRequest struct {
	// Each item is read on its own (ImportItem), so that one that does not read fails alone.
	Keys []json.RawMessage `json:"keys"`
}

// importKeyItem is one key of an import: a created key's fields (createKeyRequest, but recoverable),
// its existing value or that value's digest, and when it was made.
type importKeyItem struct {
	Value          string                    `json:"value"`
	Hash           *importHash               `json:"hash"`
	CreatedAt      keyplane.Optional[string] `json:"createdAt"`
	Name           string                    `json:"name"`
	Description    string                    `json:"description"`
	KeyType        keyplane.KeyType          `json:"keyType"`
	Environment    keyplane.Environment      `json:"environment"`
	Permissions    []string                  `json:"permissions"`
	ExpiresAt      keyplane.Optional[string] `json:"expiresAt"`
	IPAllowlist    []string                  `json:"ipAllowlist"`
	Meta           json.RawMessage           `json:"meta"`
	RateLimit      *keyplane.RateLimit       `json:"rateLimit"`
	Credits        *service.CreditsInput     `json:"credits"`
	RateLimits     []keyplane.NamedRateLimit `json:"rateLimits"`
	ExternalID     keyplane.Optional[string] `json:"externalId"`
	IdentityID     keyplane.Optional[string] `json:"identityId"`
	AllowedOrigins []string                  `json:"allowedOrigins"`
}

type importHash struct {
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

// ImportItem reads one key of an import, as the API's POST /v1/api-keys/import does each element of
// keys and `keyplane keys import` each line of its file. An item that does not read is returned with
// Err set: the service answers it as that item's error.
func ImportItem(raw []byte) service.ImportKeyInput {
	var item importKeyItem
	fail := func(err error) service.ImportKeyInput { return service.ImportKeyInput{Err: err} }
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fail(keyplane.Errorf(keyplane.CodeInvalidRequest, "each key must be a JSON object"))
	}
	if err := checkMembers(raw, &item); err != nil {
		return fail(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&item); err != nil {
		return fail(jsonError(err))
	}
	if len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) > 0 {
		return fail(keyplane.Errorf(keyplane.CodeInvalidRequest, "malformed JSON: data after the object"))
	}
	exp, err := parseTime("expiresAt", item.ExpiresAt)
	if err != nil {
		return fail(err)
	}
	in := service.ImportKeyInput{Value: item.Value, CreateKeyInput: service.CreateKeyInput{
		Name: item.Name, Description: item.Description, KeyType: item.KeyType, Environment: item.Environment,
		Permissions: item.Permissions, ExpiresAt: exp, IPAllowlist: item.IPAllowlist, AllowedOrigins: item.AllowedOrigins,
		Meta: item.Meta, RateLimit: item.RateLimit, Credits: item.Credits, RateLimits: item.RateLimits,
		ExternalID: item.ExternalID, IdentityID: item.IdentityID,
	}}
	if item.Hash != nil {
		in.Hash = &service.ImportHash{Algorithm: item.Hash.Algorithm, Digest: item.Hash.Digest}
	}
	if item.CreatedAt.Set && !item.CreatedAt.Null {
		t, err := time.Parse(time.RFC3339Nano, item.CreatedAt.Value)
		if err != nil {
			return fail(invalid("createdAt", "must be an RFC 3339 time such as 2024-01-31T12:00:00Z"))
		}
		in.CreatedAt = &t
	}
	return in
}

// importResult is one item's answer: its id, or its error shaped as the envelope's.
type importResult struct {
	Index int              `json:"index"`
	ID    string           `json:"id,omitempty"`
	Error *importItemError `json:"error,omitempty"`
}

type importItemError struct {
	Code    keyplane.Code         `json:"code"`
	Message string                `json:"message"`
	Details []keyplane.FieldError `json:"details,omitempty"`
}

type importAnswer struct {
	Imported int            `json:"imported"`
	Failed   int            `json:"failed"`
	Results  []importResult `json:"results"`
}

func (s *Server) importKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	var req importKeysRequest
	if err := decode(w, r, &req, maxImportBody, false); err != nil {
		return err
	}
	if len(req.Keys) > service.MaxImportBatch {
		// Refused before any item is read.
		return invalid("keys", "at most %d keys per call; send the rest in further calls", service.MaxImportBatch)
	}
	in := make([]service.ImportKeyInput, len(req.Keys))
	for i, raw := range req.Keys {
		in[i] = ImportItem(raw)
	}
	results, err := s.svc.ImportAPIKeys(r.Context(), c.Caller, c.ws, in)
	if err != nil {
		return err
	}
	writeData(w, http.StatusCreated, importAnswerOf(results))
	return nil
}

func importAnswerOf(results []service.ImportResult) importAnswer {
	out := importAnswer{Results: make([]importResult, len(results))}
	for i, r := range results {
		out.Results[i] = importResult{Index: r.Index, ID: r.ID}
		if r.Err != nil {
			out.Results[i].Error = &importItemError{Code: r.Err.Code, Message: r.Err.Message, Details: r.Err.Details}
			out.Failed++
		} else {
			out.Imported++
		}
	}
	return out
}
