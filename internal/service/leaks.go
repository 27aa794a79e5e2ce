package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// LeakReport is a report of key values found in public: by the platform's own scanners (POST
// /v1/leaks) or by GitHub's secret scanning, whose every token says where it was found.
type LeakReport struct {
	Values []string
	Source string
	URL    string
}

// maxLeakValueLen bounds what is hashed of a reported value: anything longer is no key of ours
// (keyformat refuses it first), and must cost no more than a short one.
const maxLeakValueLen = 1024

// ReportLeaks looks up each reported value as verification does (by its digest), and applies the
// workspace's leakPolicy to every secret key found, one value at a time, each in one transaction with
// its leak record, its audit entry and its events. It answers per value, in order. Operator only: it
// reaches keys of every workspace.
func (s *Service) ReportLeaks(ctx context.Context, c *keyplane.Caller, in LeakReport) ([]keyplane.LeakResult, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	switch {
	case len(in.Values) == 0:
		v.Add("keys", "is required: at least one value")
	case len(in.Values) > keyplane.MaxLeakBatch:
		v.Add("keys", "must hold at most %d values", keyplane.MaxLeakBatch)
	}
	for i, val := range in.Values {
		if val == "" || len(val) > maxLeakValueLen {
			v.Add(fmt.Sprintf("keys[%d]", i), "must be 1 to %d bytes", maxLeakValueLen)
		}
	}
	source := checkName(&v, "source", in.Source, keyplane.MaxLeakSourceLen, false)
	url := checkName(&v, "url", in.URL, keyplane.MaxLeakURLLen, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	sys := leakCaller(c, "leak report")
	out := make([]keyplane.LeakResult, len(in.Values))
	for i, val := range in.Values {
		r, err := s.reportLeak(ctx, sys, val, source, url)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// GitHubToken is one match of GitHub's secret scanning, as its partner program sends it.
type GitHubToken struct {
	Token  string
	Type   string
	URL    string
	Source string
}

// ReportGitHubLeaks is ReportLeaks for a batch GitHub sent (its signature checked by the caller):
// each token carries its own url and source, which are cut to their bounds rather than refused, since
// GitHub would only send the batch again. The source recorded is "github" followed by GitHub's own
// (commit, issue, gist…).
func (s *Service) ReportGitHubLeaks(ctx context.Context, c *keyplane.Caller, tokens []GitHubToken) ([]keyplane.LeakResult, error) {
	if len(tokens) > keyplane.MaxLeakBatch {
		return nil, keyplane.Errorf(keyplane.CodeInvalidRequest, "at most %d tokens per batch", keyplane.MaxLeakBatch)
	}
	sys := leakCaller(c, "GitHub secret scanning")
	out := make([]keyplane.LeakResult, len(tokens))
	for i, t := range tokens {
		source := keyplane.LeakSourceGitHub
		if t.Source != "" {
			source += ":" + t.Source
		}
		r, err := s.reportLeak(ctx, sys, t.Token, clip(source, keyplane.MaxLeakSourceLen), clip(t.URL, keyplane.MaxLeakURLLen))
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// clip cuts s to at most n bytes of printable text, on a rune boundary: what GitHub says of where a
// token was found is shown in the dashboard and the audit trail.
func clip(s string, n int) string {
	if len(s) > 4*n {
		s = s[:4*n] // bounds the work below whatever GitHub sent
	}
	b := make([]byte, 0, min(len(s), n))
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsControl(r) || invisible(r) || r == utf8.RuneError {
			continue
		}
		if len(b)+utf8.RuneLen(r) > n {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// leakCaller is the caller a leak's audit entry names: keyplane itself (actor type system), which
// applied the workspace's policy, with the request that brought the report.
func leakCaller(c *keyplane.Caller, name string) *keyplane.Caller {
	sys := keyplane.System(name)
	sys.IP, sys.UserAgent, sys.RequestID = c.IP, c.UserAgent, c.RequestID
	return sys
}

// errReported ends a leak's transaction, writing nothing, when its value has a record already.
var errReported = errors.New("leak already reported")

// reportLeak handles one value. A value that is not a well-formed API key of the deployment's prefix
// is not looked up (root keys neither: they belong to no workspace, and no policy of one applies).
func (s *Service) reportLeak(ctx context.Context, sys *keyplane.Caller, value, source, url string) (keyplane.LeakResult, error) {
	kind, err := keyformat.Parse(s.prefix, value)
	switch {
	case err != nil:
		return keyplane.LeakResult{Action: keyplane.LeakNone, TokenType: "unknown"}, nil
	case kind.Root:
		return keyplane.LeakResult{Action: keyplane.LeakNone, TokenType: "root"}, nil
	}
	typ := string(keyplane.KeyTypeSecret)
	if kind.Publishable {
		typ = string(keyplane.KeyTypePublishable)
	}
	h := keyformat.Hash(value)
	k, _, err := s.store.LookupSecret(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return keyplane.LeakResult{Action: keyplane.LeakNone, TokenType: typ}, nil
	}
	if err != nil {
		return keyplane.LeakResult{}, fmt.Errorf("look up a leaked value: %w", err)
	}
	res := keyplane.LeakResult{Found: true, KeyID: k.ID, Action: keyplane.LeakNone, TokenType: typ}
	if k.KeyType != keyplane.KeyTypeSecret {
		// A publishable key is public by design: nothing leaked.
		res.TokenType = string(k.KeyType)
		return res, nil
	}
	// A value reported before is answered from a read, without the chain's lock: GitHub may send the
	// same token many times (each push that holds it). The transaction checks again.
	if _, err := s.store.GetKeyLeak(ctx, h[:]); err == nil {
		res.Action = keyplane.LeakAlreadyReported
		return res, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return keyplane.LeakResult{}, fmt.Errorf("look up a leak record: %w", err)
	}
	var action keyplane.LeakAction
	err = s.change(ctx, sys, k.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		action = ""
		if _, err := tx.GetKeyLeak(ctx, h[:]); err == nil {
			return nil, errReported
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		// Read again inside the transaction: the key may have changed, rotated or gone since.
		k, sec, err := tx.LookupSecret(ctx, h[:])
		if err != nil {
			return nil, err
		}
		// The events show the key whole, its last use too, which the verification read leaves out.
		if k, err = tx.GetAPIKey(ctx, k.WorkspaceID, k.ID); err != nil {
			return nil, err
		}
		w, err := tx.GetWorkspace(ctx, k.WorkspaceID)
		if err != nil {
			return nil, err
		}
		out, act, err := s.applyLeakPolicy(ctx, tx, k, sec, w.Policy(), now)
		if err != nil {
			return nil, err
		}
		leak := &keyplane.KeyLeak{Hash: h[:], KeyID: k.ID, WorkspaceID: k.WorkspaceID, Source: source, URL: url, Action: act, ReportedAt: now}
		if err := tx.InsertKeyLeak(ctx, leak); errors.Is(err, store.ErrConflict) {
			return nil, errReported
		} else if err != nil {
			return nil, err
		}
		out.audit.Changes["leak"] = keyplane.Change{To: map[string]any{"source": source, "url": url, "action": act, "policy": w.Policy()}}
		data := keyEvent(k.View(now), map[string]any{"keyId": k.ID, "source": source, "url": url, "action": act, "reportedAt": keyplane.FormatTime(now)})
		// api_key.leaked first: the event of the report; then the policy's own (revoked, disabled),
		// so that an endpoint that listens only for those learns of the change too.
		out.events = append([]pendingEvent{{keyplane.EventAPIKeyLeaked, data}}, out.events...)
		if act == keyplane.LeakRevoked || act == keyplane.LeakDisabled {
			// Every node forgets the key's values when this commits: the change path of revokes.
			secrets, err := tx.ListSecrets(ctx, k.ID)
			if err != nil {
				return nil, err
			}
			for _, sec := range secrets {
				out.forget = append(out.forget, sec.Hash)
			}
		}
		action = act
		return out, nil
	})
	switch {
	case errors.Is(err, errReported):
		res.Action = keyplane.LeakAlreadyReported
		return res, nil
	case errors.Is(err, store.ErrNotFound):
		// The key went between the look-up and the transaction (deleted): nothing is left to do.
		return keyplane.LeakResult{Action: keyplane.LeakNone, TokenType: typ}, nil
	case err != nil:
		return keyplane.LeakResult{}, err
	}
	res.Action = action
	return res, nil
}

// applyLeakPolicy changes k as policy says, unless it already is so, or sec is an old value whose
// rotation grace period is over (it no longer verifies: nothing of the key leaked). It returns the
// change's outcome (its audit record, with the key's changes, and the policy's own event) and the
// action taken.
func (s *Service) applyLeakPolicy(ctx context.Context, tx store.Tx, k *keyplane.APIKey, sec *keyplane.Secret, policy keyplane.LeakPolicy, now time.Time) (*outcome, keyplane.LeakAction, error) {
	before := k.View(now)
	act := keyplane.LeakNone
	var event string
	live := sec.ExpiresAt == nil || sec.ExpiresAt.After(now)
	switch {
	case !live:
	case policy == keyplane.LeakNotify:
		act = keyplane.LeakNotified
	case k.RevokedAt != nil:
	case policy == keyplane.LeakRevoke:
		k.RevokedAt, k.UpdatedAt = &now, now
		act, event = keyplane.LeakRevoked, keyplane.EventAPIKeyRevoked
	case policy == keyplane.LeakDisable && k.Enabled:
		k.Enabled, k.DisabledAt, k.UpdatedAt = false, &now, now
		act, event = keyplane.LeakDisabled, keyplane.EventAPIKeyDisabled
	}
	out := &outcome{}
	if event != "" {
		if err := tx.UpdateAPIKey(ctx, k); err != nil {
			return nil, "", err
		}
		if act == keyplane.LeakRevoked {
			// As RevokeAPIKey: the digests stay, so that the value answers REVOKED; sealed values go.
			if err := tx.SupersedeSecrets(ctx, k.ID, nil, now); err != nil {
				return nil, "", err
			}
		}
		out.events = append(out.events, pendingEvent{event, keyEvent(k.View(now), map[string]any{"reason": "leaked"})})
	}
	out.audit = &keyplane.AuditRecord{Action: keyplane.EventAPIKeyLeaked, Target: keyTarget(k), Changes: diff(before, k.View(now), "updatedAt")}
	return out, act, nil
}

// KeyLeaks returns the newest leak records of a key of the workspace (at most 10), for its page.
func (s *Service) KeyLeaks(ctx context.Context, c *keyplane.Caller, wsID, keyID string) ([]keyplane.KeyLeak, error) {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysRead); err != nil {
		return nil, err
	}
	if !id.Valid(id.APIKey, keyID) {
		return nil, keyplane.NotFound("API key")
	}
	return s.store.ListKeyLeaks(ctx, wsID, keyID, 10)
}
