package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/jcs"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// CreateKeyInput is a new key's settings.
type CreateKeyInput struct {
	Name           string
	Description    string
	KeyType        keyplane.KeyType
	Environment    keyplane.Environment // empty: live
	Permissions    []string
	ExpiresAt      keyplane.Optional[time.Time]
	IPAllowlist    []string
	AllowedOrigins []string
	Meta           json.RawMessage
	RateLimit      *keyplane.RateLimit
	Recoverable    bool
	// Usage-based keys: the key's own credits (nil: unlimited), its named limits (an entry named
	// "default" is its RateLimit), and the identity it belongs to, by externalId (made on first use)
	// or by identityId, not both.
	Credits    *CreditsInput
	RateLimits []keyplane.NamedRateLimit
	ExternalID keyplane.Optional[string]
	IdentityID keyplane.Optional[string]
}

// KeyPatch changes a key; absent fields are left alone, null clears the nullable ones.
type KeyPatch struct {
	Name           keyplane.Optional[string]
	Description    keyplane.Optional[string]
	Permissions    keyplane.Optional[[]string]
	IPAllowlist    keyplane.Optional[[]string]
	AllowedOrigins keyplane.Optional[[]string]
	Meta           keyplane.Optional[json.RawMessage]
	RateLimit      keyplane.Optional[keyplane.RateLimit]
	ExpiresAt      keyplane.Optional[time.Time]
	Enabled        keyplane.Optional[bool]
	// Credits null makes the key unlimited. RateLimits replaces the key's whole list, its rateLimit
	// included (as the entry named "default") unless RateLimit is given too. ExternalID or IdentityID
	// moves the key to that identity; null takes it out of its identity.
	Credits    keyplane.Optional[CreditsInput]
	RateLimits keyplane.Optional[[]keyplane.NamedRateLimit]
	ExternalID keyplane.Optional[string]
	IdentityID keyplane.Optional[string]
}

// keyAD binds a sealed key value to its key and workspace.
func keyAD(wsID, keyID string) []byte { return keyplane.SealedKeyAD(wsID, keyID) }

// A workspace key acting through the API is bounded by itself: it creates, changes and reveals keys
// of its own environment only, gives only permissions it holds, changes only keys that hold nothing
// it lacks (rotating one would hand it the key's new value), and never patches itself. Otherwise a
// key with api_keys:write alone is every permission of the workspace, and a test key is a live one.
// People and operators are bounded by their roles and scopes instead.

// keyBound says whether c is a workspace key, bounded by what it holds. It goes by the actor's type,
// so that a key caller missing its environment is refused everything rather than bounded by nothing.
func keyBound(c *keyplane.Caller) bool { return c.Actor.Type == keyplane.ActorAPIKey && !c.Operator }

// checkEnvironment refuses a workspace key a key of the other environment.
func checkEnvironment(c *keyplane.Caller, env keyplane.Environment) error {
	if !keyBound(c) || env == c.Environment {
		return nil
	}
	return keyplane.Errorf(keyplane.CodeForbidden, "this is a %s key: it may create, change and reveal %s keys only, not %s keys", c.Environment, c.Environment, env)
}

// checkGrant refuses a workspace key permissions it does not hold itself.
func checkGrant(c *keyplane.Caller, perms []string) error {
	if !keyBound(c) {
		return nil
	}
	for _, p := range perms {
		if !slices.Contains(c.Permissions, p) {
			return keyplane.Errorf(keyplane.CodeForbidden, "this key cannot grant %s, which it does not hold itself", truncate(p, 100))
		}
	}
	return nil
}

// checkReach refuses a workspace key a change to k unless k is of its environment and holds no
// permission the caller lacks.
func checkReach(c *keyplane.Caller, k *keyplane.APIKey) error {
	if err := checkEnvironment(c, k.Environment); err != nil {
		return err
	}
	if !keyBound(c) {
		return nil
	}
	for _, p := range k.Permissions {
		if !slices.Contains(c.Permissions, p) {
			return keyplane.Errorf(keyplane.CodeForbidden, "key %s holds %s, which this key does not: a key changes only keys that hold no permission it lacks", k.ID, truncate(p, 100))
		}
	}
	return checkBounds(c, k, "key "+k.ID)
}

// checkBounds refuses a workspace key a key that is less bounded than itself: one that outlives it,
// is usable from addresses it is not, or may be verified more often. Otherwise a key that expires in
// an hour, limited to one address, mints a copy with neither, which can then change the original.
// whose names k in the refusal ("the new key", "key apk_…").
func checkBounds(c *keyplane.Caller, k *keyplane.APIKey, whose string) error {
	if !keyBound(c) {
		return nil
	}
	const tail = ": a key creates and changes only keys at least as bounded as itself"
	if c.ExpiresAt != nil && (k.ExpiresAt == nil || k.ExpiresAt.After(*c.ExpiresAt)) {
		return keyplane.Errorf(keyplane.CodeForbidden, "expiresAt: %s must expire no later than this key, at %s%s", whose, keyplane.FormatTime(*c.ExpiresAt), tail)
	}
	if len(c.IPAllowlist) > 0 {
		if len(k.IPAllowlist) == 0 {
			return keyplane.Errorf(keyplane.CodeForbidden, "ipAllowlist: %s must have an IP allow-list within this key's%s", whose, tail)
		}
		for _, e := range k.IPAllowlist {
			if !withinAllowlist(c.IPAllowlist, e) {
				return keyplane.Errorf(keyplane.CodeForbidden, "ipAllowlist: %s allows %s, outside this key's allow-list%s", whose, truncate(e, 60), tail)
			}
		}
	}
	if rl := c.RateLimit; rl != nil && (k.RateLimit == nil || k.RateLimit.Limit > rl.Limit || k.RateLimit.WindowMs < rl.WindowMs) {
		return keyplane.Errorf(keyplane.CodeForbidden, "rateLimit: %s must have a rate limit no looser than this key's: at most %d requests, in a window of at least %d ms%s", whose, rl.Limit, rl.WindowMs, tail)
	}
	return nil
}

// withinAllowlist says whether the allow-list entry e (an address or a prefix) lies inside one of
// list's entries. An entry that does not parse is within nothing.
func withinAllowlist(list []string, e string) bool {
	q, err := keyplane.ParseIPOrPrefix(e)
	if err != nil {
		return false
	}
	for _, s := range list {
		p, err := keyplane.ParseIPOrPrefix(s)
		if err == nil && p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
			return true
		}
	}
	return false
}

// checkList checks a list field of at most max entries (noun names them in the refusal): each entry
// is written as norm returns it, or refused with norm's reason; an entry given twice is kept once, in
// its first place.
func checkList(v *keyplane.Validation, field string, list []string, max int, noun string, norm func(string) (string, string)) []string {
	if len(list) > max {
		v.Add(field, "at most %d %s", max, noun)
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		n, reason := norm(e)
		if reason != "" {
			v.Add(field, "%s", reason)
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func (s *Service) checkPermissions(v *keyplane.Validation, perms []string) []string {
	out := checkList(v, "permissions", perms, keyplane.MaxPermissions, "permissions", func(p string) (string, string) {
		if !s.catalog.HasPermission(p) {
			return "", fmt.Sprintf("%q is not in the permission catalog (GET /v1/permissions lists it)", truncate(p, 100))
		}
		return p, ""
	})
	slices.Sort(out)
	return out
}

func checkIPAllowlist(v *keyplane.Validation, list []string) []string {
	return checkList(v, "ipAllowlist", list, keyplane.MaxIPAllowlist, "entries", func(s string) (string, string) {
		p, err := keyplane.ParseIPOrPrefix(strings.TrimSpace(s))
		if err != nil {
			return "", fmt.Sprintf("%q: %s", truncate(s, 60), err.(*keyplane.Error).Message)
		}
		if p.IsSingleIP() {
			return p.Addr().String(), ""
		}
		return p.String(), ""
	})
}

// checkOrigins accepts web origins such as https://shop.example.com or http://localhost:3000 and
// writes them as browsers send them in the Origin header: lower-case scheme and host, no path.
func checkOrigins(v *keyplane.Validation, list []string) []string {
	return checkList(v, "allowedOrigins", list, keyplane.MaxOrigins, "origins", func(o string) (string, string) {
		norm, ok := keyplane.NormalizeOrigin(strings.TrimSpace(o))
		if !ok || len(o) > 300 {
			return "", fmt.Sprintf("%q is not an origin such as https://shop.example.com (http or https, a host, a port from 1 to 65535; no path or wildcard)", truncate(o, 60))
		}
		return norm, ""
	})
}

// insertSecret stores value (whose digest is h) as a secret of k, sealed when k is recoverable. The
// digest is admitted first, before the value can reach anyone: a filter must never refuse it.
func (s *Service) insertSecret(ctx context.Context, tx store.Tx, wsID string, k *keyplane.APIKey, value string, h []byte, now time.Time) error {
	sec := &keyplane.Secret{Hash: h, KeyID: k.ID, WorkspaceID: wsID, CreatedAt: now}
	if k.Recoverable {
		sec.Ciphertext = s.box.Seal([]byte(value), keyAD(wsID, k.ID))
	}
	s.admit(h)
	return tx.InsertSecret(ctx, sec)
}

func checkMeta(v *keyplane.Validation, meta json.RawMessage) json.RawMessage {
	if len(meta) == 0 || bytes.Equal(bytes.TrimSpace(meta), []byte("null")) {
		return json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(meta, &obj); err != nil {
		v.Add("meta", "must be a JSON object")
		return nil
	}
	// encoding/json passes bytes that are not UTF-8 through a raw value untouched, and PostgreSQL
	// refuses them as text.
	if !utf8.Valid(meta) {
		v.Add("meta", "must be valid UTF-8")
		return nil
	}
	// The audit trail records meta in its RFC 8785 form, whose numbers are IEEE 754 doubles: a number
	// beyond them (1e400) would fail the change at its audit entry.
	if _, err := jcs.Canonicalize(meta); err != nil {
		v.Add("meta", "must hold only numbers that fit an IEEE 754 double")
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, meta); err != nil {
		v.Add("meta", "must be a JSON object")
		return nil
	}
	if buf.Len() > keyplane.MaxMetaBytes {
		v.Add("meta", "must be at most %d bytes of JSON, is %d", keyplane.MaxMetaBytes, buf.Len())
		return nil
	}
	return buf.Bytes()
}

func checkRateLimit(v *keyplane.Validation, r *keyplane.RateLimit) {
	if r == nil {
		return
	}
	if r.Limit < 1 || r.Limit > keyplane.MaxRateLimit {
		v.Add("rateLimit.limit", "must be from 1 to %d", keyplane.MaxRateLimit)
	}
	if r.WindowMs < keyplane.MinRateWindowMs || r.WindowMs > keyplane.MaxRateWindowMs {
		v.Add("rateLimit.windowMs", "must be from %d (one second) to %d (one day)", keyplane.MinRateWindowMs, keyplane.MaxRateWindowMs)
	}
}

// checkExpiry applies the expiry rules: a test key always expires, no later than its creation plus the
// workspace's test key TTL; any given expiry lies in the future.
func checkExpiry(v *keyplane.Validation, env keyplane.Environment, exp keyplane.Optional[time.Time], created, now time.Time, ttl int64) *time.Time {
	limit := created.Add(time.Duration(ttl) * time.Second)
	switch {
	case env == keyplane.EnvTest && exp.Set && exp.Null:
		v.Add("expiresAt", "test keys always expire; omit it for the default of %s", humanSeconds(ttl))
		return nil
	case exp.Set && exp.Null, !exp.Set && env == keyplane.EnvLive:
		return nil
	case !exp.Set:
		return &limit
	}
	t := exp.Value.UTC().Truncate(time.Microsecond)
	switch {
	case !t.After(now):
		v.Add("expiresAt", "must be in the future")
	case env == keyplane.EnvTest && t.After(limit):
		v.Add("expiresAt", "test keys expire at most %s after creation (by %s)", humanSeconds(ttl), keyplane.FormatTime(limit))
	}
	return &t
}

func humanSeconds(s int64) string {
	switch {
	case s%86400 == 0:
		return plural(s/86400, "day")
	case s%3600 == 0:
		return plural(s/3600, "hour")
	case s%60 == 0:
		return plural(s/60, "minute")
	}
	return plural(s, "second")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CreateAPIKey makes a key and returns its value, shown this once (publishable and recoverable values
// can be revealed later).
func (s *Service) CreateAPIKey(ctx context.Context, c *keyplane.Caller, wsID string, in CreateKeyInput) (*keyplane.APIKey, string, error) {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysWrite); err != nil {
		return nil, "", err
	}
	if !mayOpenWorkspace(c, wsID) {
		return nil, "", keyplane.NotFound("workspace")
	}
	// The rules that do not depend on the workspace's settings are checked first, against a
	// workspace that allows all its settings could (live mode, the longest test-key lifetime), so
	// that a request they refuse takes neither the writer nor the workspace's lock. The workspace
	// itself is read in the change's transaction, on the writer, rather than before it from the
	// readers: under a flood of verifications the readers are busy with keys not yet cached, and a
	// creation waited its turn behind them (docs/performance.md, "Creation under a flood").
	anyWorkspace := &keyplane.Workspace{ID: wsID, LiveModeEnabled: true, TestKeyTTLSeconds: keyplane.MaxTestKeyTTLSeconds}
	if _, err := s.draftKey(c, anyWorkspace, in, s.clock()); err != nil {
		return nil, "", err
	}
	var k *keyplane.APIKey
	var value string
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		w, err := tx.GetWorkspace(ctx, wsID)
		if err != nil {
			return nil, notFound(err, "workspace")
		}
		d, err := s.draftKey(c, w, in, now)
		if err != nil {
			return nil, err
		}
		k = d.k
		value = keyformat.Generate(s.prefix, k.KeyType.Short(), string(k.Environment))
		k.Prefix = s.prefix + "_" + k.KeyType.Short() + "_" + string(k.Environment) + "_"
		k.Start, k.End = keyformat.Start(s.prefix, value), keyformat.End(value)
		h := keyformat.Hash(value)
		n, err := tx.CountKeys(ctx, wsID)
		if err != nil {
			return nil, err
		}
		if n >= w.MaxKeys {
			return nil, keyplane.Errorf(keyplane.CodeKeyLimitReached, "this workspace already has %d keys, its limit; revoke one (revoked keys do not count) or ask for a higher limit", n)
		}
		k.CreatedAt, k.UpdatedAt = now, now
		if d.externalID != "" || d.identityID != "" {
			i, err := s.resolveIdentity(ctx, tx, c, wsID, d.externalID, d.identityID, now)
			if err != nil {
				return nil, err
			}
			k.IdentityID, k.Identity = i.ID, i
		}
		if err := tx.InsertAPIKey(ctx, k); err != nil {
			return nil, err
		}
		// Balances are written by the credit calls alone (store.Tx.SetCredits).
		if d.credits != nil {
			if err := tx.SetCredits(ctx, keyAccount(k), d.credits); err != nil {
				return nil, err
			}
			k.Credits = d.credits
		}
		if err := s.insertSecret(ctx, tx, wsID, k, value, h[:], now); err != nil {
			return nil, err
		}
		view := k.View(now)
		return &outcome{
			audit: &keyplane.AuditRecord{Action: keyplane.EventAPIKeyCreated, Target: keyTarget(k),
				Changes: diff(nil, view, "id", "workspaceId", "createdAt", "updatedAt", "createdBy", "lastUsedAt", "disabledAt", "revokedAt")},
			events: []pendingEvent{{keyplane.EventAPIKeyCreated, keyEvent(view, nil)}},
			forget: [][]byte{h[:]}, // a negative entry for this digest, however unlikely, must go
		}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return k, value, nil
}

// keyDraft is a new key that passed creation's rules, with what is stored beside it.
type keyDraft struct {
	k                      *keyplane.APIKey
	credits                *keyplane.Credits
	externalID, identityID string
}

// draftKey applies the rules of a new key to in, for the workspace w at now: every field's
// validation, and the bounds of a workspace key acting through the API. Created and imported keys
// both go through it, so that the rules are written once. The key has no value yet, nor times. Of w
// it reads the id, LiveModeEnabled and TestKeyTTLSeconds only: CreateAPIKey checks a request first
// against a workspace that sets just those, and a rule that read more would need a place there.
func (s *Service) draftKey(c *keyplane.Caller, w *keyplane.Workspace, in CreateKeyInput, now time.Time) (*keyDraft, error) {
	wsID := w.ID
	if in.Environment == "" {
		in.Environment = keyplane.EnvLive
	}
	var v keyplane.Validation
	k := &keyplane.APIKey{
		ID: id.NewAt(id.APIKey, now), WorkspaceID: wsID, KeyType: in.KeyType, Environment: in.Environment,
		Enabled: true, RateLimit: in.RateLimit, Recoverable: in.Recoverable || in.KeyType == keyplane.KeyTypePublishable,
		CreatedBy: c.Actor,
	}
	k.Name = checkName(&v, "name", in.Name, keyplane.MaxNameLen, true)
	k.Description = checkName(&v, "description", in.Description, keyplane.MaxDescriptionLen, false)
	if !in.KeyType.Valid() {
		v.Add("keyType", "must be secret or publishable")
	}
	if !in.Environment.Valid() {
		v.Add("environment", "must be live or test")
	}
	k.Permissions = s.checkPermissions(&v, in.Permissions)
	k.IPAllowlist = checkIPAllowlist(&v, in.IPAllowlist)
	if len(in.AllowedOrigins) > 0 && in.KeyType != keyplane.KeyTypePublishable {
		v.Add("allowedOrigins", "only publishable keys are used from browsers; secret keys cannot have allowed origins")
	}
	k.AllowedOrigins = checkOrigins(&v, in.AllowedOrigins)
	k.Meta = checkMeta(&v, in.Meta)
	checkRateLimit(&v, in.RateLimit)
	if in.RateLimits != nil {
		def, named := splitKeyLimits(&v, "rateLimits", in.RateLimits)
		if def != nil && in.RateLimit != nil {
			v.Add("rateLimits", "has a limit named default, which is the key's rateLimit: give rateLimit or that entry, not both")
		} else if def != nil {
			k.RateLimit = def
		}
		k.RateLimits = named
	}
	checkLimitCount(&v, k)
	credits := checkCredits(&v, "credits", in.Credits, now)
	externalID, identityID := checkKeyIdentity(&v, in.ExternalID, in.IdentityID)
	k.ExpiresAt = checkExpiry(&v, in.Environment, in.ExpiresAt, now, now, w.TestKeyTTLSeconds)
	if keyBound(c) && c.ExpiresAt != nil && !in.ExpiresAt.Set && k.ExpiresAt != nil && k.ExpiresAt.After(*c.ExpiresAt) {
		// A test key's default expiry, made by a key that expires sooner, ends with that key: else
		// no test key could make one without giving a date (checkBounds).
		end := *c.ExpiresAt
		k.ExpiresAt = &end
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := checkEnvironment(c, k.Environment); err != nil {
		return nil, err
	}
	if err := checkGrant(c, k.Permissions); err != nil {
		return nil, err
	}
	if err := checkPortalCreate(c, in); err != nil {
		return nil, err
	}
	if err := checkBounds(c, k, "the new key"); err != nil {
		return nil, err
	}
	if k.Environment == keyplane.EnvLive && !w.LiveModeEnabled {
		return nil, keyplane.Errorf(keyplane.CodeLiveModeDisabled, "live mode is off for this workspace; create a test key, or ask the operator to enable live mode")
	}
	return &keyDraft{k: k, credits: credits, externalID: externalID, identityID: identityID}, nil
}

func keyTarget(k *keyplane.APIKey) keyplane.Target { return keyplane.Target{Type: "api_key", ID: k.ID} }

func keyEvent(view *keyplane.APIKeyView, extra map[string]any) map[string]any {
	m := map[string]any{"apiKey": view}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// ListAPIKeysOf lists the keys of the identity an externalId or an identityId names (not both),
// newest first: none when the workspace has no such identity.
func (s *Service) ListAPIKeysOf(ctx context.Context, c *keyplane.Caller, wsID string, f keyplane.KeyFilter, externalID, identityID string) ([]keyplane.APIKey, string, error) {
	switch {
	case externalID != "" && identityID != "":
		return nil, "", &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid filter",
			Details: []keyplane.FieldError{{Field: "identityId", Message: "filter by externalId or identityId, not both"}}}
	case externalID != "":
		if err := c.Authorize(wsID, keyplane.PermAPIKeysRead); err != nil {
			return nil, "", err
		}
		if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
			return nil, "", err
		}
		i, err := s.store.GetIdentityByExternalID(ctx, wsID, externalID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		identityID = i.ID
	case identityID != "" && !id.Valid(id.Identity, identityID):
		return nil, "", nil
	}
	f.IdentityID = identityID
	return s.ListAPIKeys(ctx, c, wsID, f)
}

// ListAPIKeys lists a workspace's keys, newest first.
func (s *Service) ListAPIKeys(ctx context.Context, c *keyplane.Caller, wsID string, f keyplane.KeyFilter) ([]keyplane.APIKey, string, error) {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysRead); err != nil {
		return nil, "", err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, "", err
	}
	var v keyplane.Validation
	if f.Environment != "" && !f.Environment.Valid() {
		v.Add("environment", "must be live or test")
	}
	if f.KeyType != "" && !f.KeyType.Valid() {
		v.Add("keyType", "must be secret or publishable")
	}
	if f.Status != "" && !f.Status.Valid() {
		v.Add("status", "must be active, disabled, expired or revoked")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	keys, next, err := s.store.ListAPIKeys(ctx, wsID, store.KeyFilter{KeyFilter: f, Now: s.clock()})
	return keys, next, badCursor(err)
}

// GetAPIKey returns one key of the workspace.
func (s *Service) GetAPIKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string) (*keyplane.APIKey, error) {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysRead); err != nil {
		return nil, err
	}
	if !id.Valid(id.APIKey, keyID) {
		return nil, keyplane.NotFound("API key")
	}
	k, err := s.store.GetAPIKey(ctx, wsID, keyID)
	return k, notFound(err, "API key")
}

// mutateKey loads a key inside a change, refusing a workspace key a key beyond its reach, and returns
// the key's digests so that caches forget them.
func (s *Service) mutateKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string, fn func(tx store.Tx, k *keyplane.APIKey, now time.Time) (*outcome, error)) error {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysWrite); err != nil {
		return err
	}
	if !id.Valid(id.APIKey, keyID) {
		return keyplane.NotFound("API key")
	}
	return s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		k, err := tx.GetAPIKey(ctx, wsID, keyID)
		if err != nil {
			return nil, notFound(err, "API key")
		}
		if err := checkReach(c, k); err != nil {
			return nil, err
		}
		if err := checkPortalReach(c, k); err != nil {
			return nil, err
		}
		out, err := fn(tx, k, now)
		if err != nil || out == nil {
			return out, err
		}
		secrets, err := tx.ListSecrets(ctx, keyID)
		if err != nil {
			return nil, err
		}
		for _, sec := range secrets {
			out.forget = append(out.forget, sec.Hash)
		}
		return out, nil
	})
}

func revokedErr(k *keyplane.APIKey) error {
	return keyplane.Errorf(keyplane.CodeKeyRevoked, "key %s was revoked on %s; revoked keys cannot change (create a new key)", k.ID, keyplane.FormatTime(*k.RevokedAt))
}

// UpdateAPIKey changes a key's settings or enables/disables it.
func (s *Service) UpdateAPIKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string, p KeyPatch) (*keyplane.APIKey, error) {
	var out *keyplane.APIKey
	err := s.mutateKey(ctx, c, wsID, keyID, func(tx store.Tx, k *keyplane.APIKey, now time.Time) (*outcome, error) {
		if keyBound(c) && k.ID == c.Actor.ID {
			// Every setting of a key bounds it (permissions, allow-lists, limits, expiry) or is read
			// by the platform on each verification (meta): a key is not its own administrator.
			return nil, keyplane.Errorf(keyplane.CodeForbidden, "a key cannot change itself; use another key, a root key or the dashboard (a key may rotate or revoke itself)")
		}
		if k.RevokedAt != nil {
			return nil, revokedErr(k)
		}
		if err := checkPortalPatch(c, k, p); err != nil {
			return nil, err
		}
		w, err := tx.GetWorkspace(ctx, wsID)
		if err != nil {
			return nil, err
		}
		before := k.View(now)
		var v keyplane.Validation
		if p.Name.Set {
			k.Name = checkName(&v, "name", p.Name.Value, keyplane.MaxNameLen, true) // null reads as "": required
		}
		if p.Description.Set {
			k.Description = checkName(&v, "description", p.Description.Value, keyplane.MaxDescriptionLen, false)
		}
		if p.Permissions.Set {
			k.Permissions = s.checkPermissions(&v, p.Permissions.Value)
		}
		if p.IPAllowlist.Set {
			k.IPAllowlist = checkIPAllowlist(&v, p.IPAllowlist.Value)
		}
		if p.AllowedOrigins.Set {
			if len(p.AllowedOrigins.Value) > 0 && k.KeyType != keyplane.KeyTypePublishable {
				v.Add("allowedOrigins", "only publishable keys are used from browsers; secret keys cannot have allowed origins")
			}
			k.AllowedOrigins = checkOrigins(&v, p.AllowedOrigins.Value)
		}
		if p.Meta.Set {
			k.Meta = checkMeta(&v, p.Meta.Value)
		}
		if p.RateLimit.Set {
			k.RateLimit = nil
			if !p.RateLimit.Null {
				rl := p.RateLimit.Value
				checkRateLimit(&v, &rl)
				k.RateLimit = &rl
			}
		}
		if p.RateLimits.Set {
			def, named := splitKeyLimits(&v, "rateLimits", p.RateLimits.Value)
			switch {
			case def != nil && p.RateLimit.Set:
				v.Add("rateLimits", "has a limit named default, which is the key's rateLimit: give rateLimit or that entry, not both")
			case !p.RateLimit.Set:
				k.RateLimit = def // the list is the key's whole list: without a default entry, no rateLimit
			}
			k.RateLimits = named
		}
		if p.RateLimit.Set || p.RateLimits.Set {
			checkLimitCount(&v, k)
		}
		creditsSet := p.Credits.Set
		if p.Credits.Set {
			k.Credits = nil
			if !p.Credits.Null {
				k.Credits = checkCredits(&v, "credits", &p.Credits.Value, now)
			}
		}
		externalID, identityID := checkKeyIdentity(&v, p.ExternalID, p.IdentityID)
		if p.ExpiresAt.Set {
			k.ExpiresAt = checkExpiry(&v, k.Environment, p.ExpiresAt, k.CreatedAt, now, w.TestKeyTTLSeconds)
		}
		if p.Enabled.Set {
			if p.Enabled.Null {
				v.Add("enabled", "must be true or false")
			} else if p.Enabled.Value != k.Enabled {
				k.Enabled = p.Enabled.Value
				k.DisabledAt = nil
				if !k.Enabled {
					k.DisabledAt = &now
				}
			}
		}
		if err := v.Err(); err != nil {
			return nil, err
		}
		switch {
		case externalID != "" || identityID != "":
			i, err := s.resolveIdentity(ctx, tx, c, wsID, externalID, identityID, now)
			if err != nil {
				return nil, err
			}
			k.IdentityID, k.Identity = i.ID, i
		case (p.ExternalID.Set && p.ExternalID.Null) || (p.IdentityID.Set && p.IdentityID.Null):
			k.IdentityID, k.Identity = "", nil
		}
		if p.Permissions.Set {
			// The key held nothing the caller lacks (checkReach): this refuses only what it adds.
			if err := checkGrant(c, k.Permissions); err != nil {
				return nil, err
			}
		}
		// The key was at least as bounded as the caller (checkReach): this refuses what loosens it.
		if err := checkBounds(c, k, "key "+k.ID); err != nil {
			return nil, err
		}
		out = k
		after := k.View(now)
		changes := diff(before, after, "updatedAt", "status", "disabledAt")
		if len(changes) == 0 {
			return nil, nil
		}
		k.UpdatedAt = now
		after.UpdatedAt = keyplane.FormatTime(now)
		if err := tx.UpdateAPIKey(ctx, k); err != nil {
			return nil, notFound(err, "API key")
		}
		if _, changed := changes["credits"]; changed && creditsSet {
			if err := tx.SetCredits(ctx, keyAccount(k), k.Credits); err != nil {
				return nil, notFound(err, "API key")
			}
		}
		o := &outcome{audit: &keyplane.AuditRecord{Action: keyplane.EventAPIKeyUpdated, Target: keyTarget(k), Changes: changes}}
		others := maps.Clone(changes)
		delete(others, "enabled")
		if len(others) > 0 {
			o.events = append(o.events, pendingEvent{keyplane.EventAPIKeyUpdated, keyEvent(after, map[string]any{"changes": others})})
		}
		if _, flipped := changes["enabled"]; flipped {
			typ := keyplane.EventAPIKeyDisabled
			if k.Enabled {
				typ = keyplane.EventAPIKeyEnabled
			}
			if len(others) == 0 {
				o.audit.Action = typ
			}
			o.events = append(o.events, pendingEvent{typ, keyEvent(after, nil)})
		}
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RotateAPIKey gives a key a new value. The old value keeps working for grace, then answers EXPIRED.
func (s *Service) RotateAPIKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string, grace time.Duration) (*keyplane.APIKey, string, error) {
	if grace < 0 || grace > keyplane.MaxRotationGrace*time.Second {
		return nil, "", &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid expireOldAfterSeconds",
			Details: []keyplane.FieldError{{Field: "expireOldAfterSeconds", Message: fmt.Sprintf("must be from 0 to %d (seven days)", keyplane.MaxRotationGrace)}}}
	}
	var out *keyplane.APIKey
	var value string
	err := s.mutateKey(ctx, c, wsID, keyID, func(tx store.Tx, k *keyplane.APIKey, now time.Time) (*outcome, error) {
		if k.RevokedAt != nil {
			return nil, revokedErr(k)
		}
		value = keyformat.Generate(s.prefix, k.KeyType.Short(), string(k.Environment))
		h := keyformat.Hash(value)
		if err := s.insertSecret(ctx, tx, wsID, k, value, h[:], now); err != nil {
			return nil, err
		}
		oldEnds := now.Add(grace)
		if err := tx.SupersedeSecrets(ctx, k.ID, h[:], oldEnds); err != nil {
			return nil, err
		}
		before := k.View(now)
		k.Start, k.End, k.UpdatedAt = keyformat.Start(s.prefix, value), keyformat.End(value), now
		if err := tx.UpdateAPIKey(ctx, k); err != nil {
			return nil, err
		}
		out = k
		after := k.View(now)
		changes := diff(before, after, "updatedAt", "status")
		changes["previousValueExpiresAt"] = keyplane.Change{To: keyplane.FormatTime(oldEnds)}
		return &outcome{
			audit:  &keyplane.AuditRecord{Action: keyplane.EventAPIKeyRotated, Target: keyTarget(k), Changes: changes},
			events: []pendingEvent{{keyplane.EventAPIKeyRotated, keyEvent(after, map[string]any{"previousValueExpiresAt": keyplane.FormatTime(oldEnds)})}},
		}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, value, nil
}

// RevokeAPIKey revokes a key irreversibly. Revoking a revoked key answers the same and changes nothing.
func (s *Service) RevokeAPIKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string) (*keyplane.APIKey, error) {
	var out *keyplane.APIKey
	err := s.mutateKey(ctx, c, wsID, keyID, func(tx store.Tx, k *keyplane.APIKey, now time.Time) (*outcome, error) {
		out = k
		if k.RevokedAt != nil {
			return nil, nil
		}
		before := k.View(now)
		k.RevokedAt, k.UpdatedAt = &now, now
		if err := tx.UpdateAPIKey(ctx, k); err != nil {
			return nil, err
		}
		// The digests stay, so that the value answers REVOKED rather than NOT_FOUND; sealed values go.
		if err := tx.SupersedeSecrets(ctx, k.ID, nil, now); err != nil {
			return nil, err
		}
		after := k.View(now)
		return &outcome{
			audit:  &keyplane.AuditRecord{Action: keyplane.EventAPIKeyRevoked, Target: keyTarget(k), Changes: diff(before, after, "updatedAt")},
			events: []pendingEvent{{keyplane.EventAPIKeyRevoked, keyEvent(after, nil)}},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteAPIKey removes a disabled or revoked key and all its stored values for good. The audit trail
// keeps the record of it.
func (s *Service) DeleteAPIKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string) error {
	var hashes [][]byte
	err := s.mutateKey(ctx, c, wsID, keyID, func(tx store.Tx, k *keyplane.APIKey, now time.Time) (*outcome, error) {
		if k.Enabled && k.RevokedAt == nil {
			return nil, keyplane.Errorf(keyplane.CodeKeyNotDeletable, "only disabled or revoked keys can be deleted; disable or revoke it first")
		}
		secrets, err := tx.ListSecrets(ctx, k.ID)
		if err != nil {
			return nil, err
		}
		for _, sec := range secrets {
			hashes = append(hashes, sec.Hash)
		}
		if err := tx.DeleteAPIKey(ctx, wsID, k.ID); err != nil {
			return nil, notFound(err, "API key")
		}
		view := k.View(now)
		return &outcome{
			audit: &keyplane.AuditRecord{Action: keyplane.EventAPIKeyDeleted, Target: keyTarget(k),
				Changes: map[string]keyplane.Change{"name": {From: k.Name}, "deleted": {From: false, To: true}}},
			events: []pendingEvent{{keyplane.EventAPIKeyDeleted, keyEvent(view, nil)}},
			// mutateKey lists secrets after fn, when these are already gone.
			forget: hashes,
		}, nil
	})
	return err
}

// GetPublishableKey returns the newest active publishable key of an environment with its value.
func (s *Service) GetPublishableKey(ctx context.Context, c *keyplane.Caller, wsID string, env keyplane.Environment) (*keyplane.APIKey, string, error) {
	if err := c.Authorize(wsID, keyplane.PermAPIKeysRead); err != nil {
		return nil, "", err
	}
	if env == "" {
		env = keyplane.EnvLive
	}
	if !env.Valid() {
		return nil, "", &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid environment",
			Details: []keyplane.FieldError{{Field: "environment", Message: "must be live or test"}}}
	}
	if err := checkEnvironment(c, env); err != nil {
		return nil, "", err
	}
	k, sec, err := s.store.NewestPublishableKey(ctx, wsID, env, s.clock())
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", keyplane.Errorf(keyplane.CodeNotFound, "this workspace has no active %s publishable key", env)
	}
	if err != nil {
		return nil, "", err
	}
	value, err := s.open(k, sec)
	return k, value, err
}

func (s *Service) open(k *keyplane.APIKey, sec *keyplane.Secret) (string, error) {
	if len(sec.Ciphertext) == 0 {
		return "", fmt.Errorf("key %s: no sealed value stored", k.ID)
	}
	pt, err := s.box.Open(sec.Ciphertext, keyAD(k.WorkspaceID, k.ID))
	if err != nil {
		return "", fmt.Errorf("open key %s: %w", k.ID, err)
	}
	return string(pt), nil
}

// RevealAPIKey returns a key's current value: any publishable key to a caller who may read keys; a
// recoverable secret key only to a root key with the admin scope or a person who entered their
// password in the last five minutes. Every reveal, and every refused one, is audited.
func (s *Service) RevealAPIKey(ctx context.Context, c *keyplane.Caller, wsID, keyID string) (*keyplane.APIKey, string, error) {
	k, err := s.GetAPIKey(ctx, c, wsID, keyID)
	if err != nil {
		return nil, "", err
	}
	deny := func(err error) (*keyplane.APIKey, string, error) {
		return nil, "", s.auditRefusal(ctx, c, wsID, keyplane.AuditRecord{Action: "api_key.reveal_denied", Target: keyTarget(k)}, err)
	}
	if err := checkEnvironment(c, k.Environment); err != nil {
		return deny(err)
	}
	if err := checkPortalReach(c, k); err != nil {
		return deny(err)
	}
	if k.RevokedAt != nil {
		return nil, "", revokedErr(k)
	}
	if k.KeyType == keyplane.KeyTypeSecret {
		if !k.Recoverable {
			return deny(keyplane.Errorf(keyplane.CodeForbidden, "this secret key is not recoverable: its value was shown once, at creation; rotate it to get a new one"))
		}
		rootAdmin := c.Actor.Type == keyplane.ActorRootKey && c.Operator
		person := c.Actor.Type == keyplane.ActorUser && c.Reauthenticated
		if c.Portal && !c.Reauthenticated {
			return deny(keyplane.Errorf(keyplane.CodeForbidden, "revealing a secret key is open for %s after the portal is opened; open the portal again from %s", plural(int64(keyplane.ReauthWindow/time.Minute), "minute"), s.brandName(ctx, wsID)))
		}
		// The platform authenticated its user to make the link: the first minutes of a portal
		// session count as a password just entered (PortalCaller).
		portal := c.Portal && c.Actor.Type == keyplane.ActorPortalUser && c.Reauthenticated
		if !rootAdmin && !person && !portal {
			return deny(keyplane.Errorf(keyplane.CodeForbidden, "revealing a secret key needs a root key with the admin scope, or a dashboard session that entered its password in the last 5 minutes"))
		}
	}
	secrets, err := s.store.ListSecrets(ctx, k.ID)
	if err != nil {
		return nil, "", err
	}
	var current *keyplane.Secret
	for i := range secrets {
		if secrets[i].ExpiresAt == nil {
			current = &secrets[i]
			break
		}
	}
	if current == nil {
		return nil, "", keyplane.Errorf(keyplane.CodeNotFound, "this key has no current value")
	}
	value, err := s.open(k, current)
	if err != nil {
		return nil, "", err
	}
	if err := s.Audit(ctx, c, wsID, keyplane.AuditRecord{Action: "api_key.revealed", Target: keyTarget(k)}); err != nil {
		return nil, "", err
	}
	return k, value, nil
}
