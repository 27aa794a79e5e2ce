package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/service"
)

type leaksRequest struct {
	Keys   []string `json:"keys"`
	Source string   `json:"source"`
	URL    string   `json:"url"`
}

// reportLeaks is POST /v1/leaks: the platform's own scanners report values found in public.
func (s *Server) reportLeaks(w http.ResponseWriter, r *http.Request, c *call) error {
	var req leaksRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	res, err := s.svc.ReportLeaks(r.Context(), c.Caller, service.LeakReport{Values: req.Keys, Source: req.Source, URL: req.URL})
	if err != nil {
		return err
	}
	out := make([]keyplane.LeakResultView, len(res))
	for i, x := range res {
		out[i] = keyplane.LeakResultView{Found: x.Found, KeyID: x.KeyID, Action: x.Action}
	}
	writeData(w, http.StatusOK, out)
	return nil
}

// githubScanLimit bounds the batches one address may send: GitHub sends few, and each costs a
// signature check (and, once it passes, a look-up per token), so that nobody else can make the
// endpoint a load on the node or the store.
var githubScanLimit = ratelimit.Limit{Limit: 120, Window: 10 * time.Second}

// githubToken is one entry of GitHub's batch. Fields GitHub may add are ignored: the signature
// covers the whole body, and the answer names only what is known.
type githubToken struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

type githubLabel struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// githubScanning is POST /v1/secret-scanning/github, GitHub's secret scanning partner endpoint. No
// keyplane credential: GitHub's signature over the raw body is the authentication. Without
// --github-scanning-keys the route answers 404, as if it did not exist. Errors are in the envelope;
// the success answer is GitHub's own array.
func (s *Server) githubScanning(w http.ResponseWriter, r *http.Request) {
	if s.ghKeys == nil {
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeNotFound, "no such route: %s %s", r.Method, r.URL.Path))
		return
	}
	if ip := s.ClientIP(r); ip.IsValid() {
		if err := s.limit(w, r, "ghscan-ip:"+ip.String(), githubScanLimit, "this address"); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if r.ContentLength > maxManagementBody {
		s.writeError(w, r, keyplane.Errorf(keyplane.CodePayloadTooLarge, "the body is larger than %d bytes", maxManagementBody))
		return
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxManagementBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(w, r, keyplane.Errorf(keyplane.CodePayloadTooLarge, "the body is larger than %d bytes", maxManagementBody))
			return
		}
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeInvalidRequest, "the body could not be read"))
		return
	}
	body := buf.Bytes()
	// The signature first: nothing of an unsigned body is parsed, let alone looked up.
	if err := s.ghKeys.Verify(r.Header.Get("Github-Public-Key-Identifier"), r.Header.Get("Github-Public-Key-Signature"), body); err != nil {
		s.writeError(w, r, unauthorized("the Github-Public-Key-Signature header does not sign this body with a known GitHub key"))
		return
	}
	var tokens []githubToken
	if err := json.Unmarshal(body, &tokens); err != nil {
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeInvalidRequest, "the body must be a JSON array of {token, type, url, source}"))
		return
	}
	if len(tokens) > keyplane.MaxLeakBatch {
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeInvalidRequest, "at most %d tokens per batch", keyplane.MaxLeakBatch))
		return
	}
	in := make([]service.GitHubToken, len(tokens))
	for i, t := range tokens {
		in[i] = service.GitHubToken{Token: t.Token, Type: t.Type, URL: t.URL, Source: t.Source}
	}
	c := &keyplane.Caller{UserAgent: redact.UserAgent(r.UserAgent()), RequestID: requestID(r.Context())}
	if ip := s.ClientIP(r); ip.IsValid() {
		c.IP = ip.String()
	}
	res, err := s.svc.ReportGitHubLeaks(r.Context(), c, in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]githubLabel, len(tokens))
	positives := 0
	for i, t := range tokens {
		label := "false_positive"
		if res[i].Found && res[i].TokenType == string(keyplane.KeyTypeSecret) {
			label = "true_positive"
			positives++
		}
		out[i] = githubLabel{TokenHash: hexSHA256(t.Token), TokenType: t.Type, Label: label}
	}
	// Counts only: the tokens are secrets, and the audit trail names each key acted on.
	s.log.InfoContext(r.Context(), "github secret scanning batch", "tokens", len(tokens), "true_positives", positives)
	writeJSON(w, http.StatusOK, out)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
