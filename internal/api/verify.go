package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/verify"
)

type verifyRequest struct {
	Key         string               `json:"key"`
	Permissions []string             `json:"permissions"`
	IP          string               `json:"ip"`
	Origin      string               `json:"origin"`
	Environment keyplane.Environment `json:"environment"`
	Credits     *verifyCredits       `json:"credits"`
	RateLimits  []limitRequest       `json:"rateLimits"`
	Tags        []string             `json:"tags"`
}

// verifyCredits is what a verification spends of the key's credits.
type verifyCredits struct {
	Cost *int64 `json:"cost"`
}

// limitRequest names a rate limit a verification applies besides the auto-applied ones.
type limitRequest struct {
	Name string `json:"name"`
	Cost *int64 `json:"cost"` // default 1
}

type verifyAnswer struct {
	Valid  bool                `json:"valid"`
	Code   keyplane.VerifyCode `json:"code"`
	Reason *string             `json:"reason,omitempty"` // why a signature or token was refused
	// verifiedKey is filled in from key, rateLimit and claims by withKey, only where encoding/json
	// writes the answer: the hot path writes the key's part from its memoized encoding instead.
	*verifiedKey
	key       *keyplane.CompiledKey
	rateLimit *rateLimitState
	claims    map[string]any
	// limits are every rate limit decision (the default limit's too); hasCredits says that the key
	// or its identity has credits, of which credits are left.
	limits     verify.Decisions
	hasCredits bool
	credits    int64
}

// withKey returns a with its key's fields filled in, as encoding/json writes them.
func (a verifyAnswer) withKey() verifyAnswer {
	if a.key != nil {
		a.verifiedKey = newVerifiedKey(a.key)
		a.RateLimit, a.Claims = a.rateLimit, a.claims
		for i := range a.limits.Len() {
			d := a.limits.At(i)
			a.RateLimits = append(a.RateLimits, limitState{Name: d.Name, Limit: d.Limit, Remaining: d.Remaining,
				ResetAt: keyplane.FormatTime(d.ResetAt), Exceeded: !d.Allowed})
		}
		if a.hasCredits {
			a.Credits = &creditsState{Remaining: a.credits}
		}
		if id := a.key.Identity; id != nil {
			a.Identity = identityRef(id)
		}
	}
	return a
}

// identityRef is what a verification answer says of a key's identity.
func identityRef(id *keyplane.Identity) *keyplane.IdentityRef {
	meta := id.Meta
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	return &keyplane.IdentityRef{ID: id.ID, ExternalID: id.ExternalID, Meta: meta}
}

// verifiedKey is what a verification says of a key it found, whatever the code.
type verifiedKey struct {
	KeyID       string           `json:"keyId"`
	WorkspaceID string           `json:"workspaceId"`
	Name        string           `json:"name"`
	KeyType     keyplane.KeyType `json:"keyType"`
	Environment string           `json:"environment"`
	Permissions []string         `json:"permissions"`
	Meta        json.RawMessage  `json:"meta"`
	ExpiresAt   *string          `json:"expiresAt"`
	RateLimit   *rateLimitState  `json:"ratelimit,omitempty"`
	// RateLimits are every limit the verification was counted against, the default one included,
	// up to the one that refused it.
	RateLimits []limitState          `json:"ratelimits,omitempty"`
	Credits    *creditsState         `json:"credits,omitempty"`
	Identity   *keyplane.IdentityRef `json:"identity,omitempty"`
	Claims     map[string]any        `json:"claims,omitempty"` // a JWT's, once it checked out
}

// limitState is one rate limit's decision of a verification.
type limitState struct {
	Name      string `json:"name"`
	Limit     int64  `json:"limit"`
	Remaining int64  `json:"remaining"`
	ResetAt   string `json:"resetAt"`
	Exceeded  bool   `json:"exceeded"`
}

// creditsState is the credits left of the key, or of its identity when the key has none of its own.
type creditsState struct {
	Remaining int64 `json:"remaining"`
}

// rateLimitState is a key's rate limit after the request: present when the key has a limit and the
// request was counted against it.
type rateLimitState struct {
	Limit     int64  `json:"limit"`
	Remaining int64  `json:"remaining"`
	ResetAt   string `json:"resetAt"`
}

func (s *Server) verifyKey(w http.ResponseWriter, r *http.Request, c *call) error {
	var req verifyRequest
	if err := decodeFast(w, r, &req, maxVerifyBody, false, req.decodeKeyOnly); err != nil {
		return err
	}
	var v keyplane.Validation
	if req.Key == "" {
		v.Add("key", "is required")
	}
	vr := keyplane.VerifyRequest{Permissions: req.Permissions, Origin: req.Origin, Environment: req.Environment}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil || ip.Zone() != "" {
			v.Add("ip", "must be an IPv4 or IPv6 address")
		}
		vr.IP = ip.Unmap()
	}
	if req.Environment != "" && !req.Environment.Valid() {
		v.Add("environment", "must be live or test")
	}
	if len(req.Permissions) > keyplane.MaxPermissions {
		v.Add("permissions", "at most %d permissions", keyplane.MaxPermissions)
	}
	req.usage(&v, &vr)
	if err := v.Err(); err != nil {
		return err
	}
	res, err := s.ver.Verify(r.Context(), req.Key, &vr)
	if err != nil {
		return unknownLimit(err)
	}
	writeVerified(w, s.verified(r, c, res, keyplane.SourceVerify, &vr))
	return nil
}

// usage reads the usage-based fields of a verification (credits, rateLimits, tags) into vr, and
// adds what is wrong with them to v.
func (q *verifyRequest) usage(v *keyplane.Validation, vr *keyplane.VerifyRequest) {
	vr.Cost = keyplane.DefaultCreditCost
	if q.Credits != nil && q.Credits.Cost != nil {
		if c := *q.Credits.Cost; c < 0 || c > keyplane.MaxCost {
			v.Add("credits.cost", "must be from 0 to %d", keyplane.MaxCost)
		} else {
			vr.Cost = c
		}
	}
	if len(q.RateLimits) > keyplane.MaxNamedLimits {
		v.Add("rateLimits", "at most %d limits", keyplane.MaxNamedLimits)
	}
	for i, l := range q.RateLimits {
		cost := int64(1)
		if l.Cost != nil {
			cost = *l.Cost
		}
		if !keyplane.ValidLimitName(l.Name) {
			v.Add(fmt.Sprintf("rateLimits[%d].name", i), "must be a limit's name: [a-z0-9_.:-]{1,%d}", keyplane.MaxLimitNameLen)
		}
		if cost < 0 || cost > keyplane.MaxCost {
			v.Add(fmt.Sprintf("rateLimits[%d].cost", i), "must be from 0 to %d", keyplane.MaxCost)
		}
		vr.Limits = append(vr.Limits, keyplane.LimitCost{Name: l.Name, Cost: cost})
	}
	if len(q.Tags) > keyplane.MaxTags {
		v.Add("tags", "at most %d tags", keyplane.MaxTags)
	}
	for i, t := range q.Tags {
		if len(t) > keyplane.MaxTagLen {
			v.Add(fmt.Sprintf("tags[%d]", i), "at most %d bytes", keyplane.MaxTagLen)
		}
	}
	vr.Tags = q.Tags
}

// unknownLimit turns a verification that named limits the key does not have into the 400 that
// names each; other errors are left as they are.
func unknownLimit(err error) error {
	var u *verify.UnknownLimitError
	if !errors.As(err, &u) {
		return err
	}
	var v keyplane.Validation
	for j, i := range u.Indexes {
		v.Add(fmt.Sprintf("rateLimits[%d].name", i), "the key and its identity have no limit named %q", u.Names[j])
	}
	return v.Err()
}

// decodeKeyOnly reads the commonest verification body, {"key": "…"} whose value has only the
// characters of key values (A–Z, a–z, 0–9, _), without encoding/json, and reports whether it did; any
// other body (more fields, escapes, other characters) is left to encoding/json.
func (q *verifyRequest) decodeKeyOnly(b []byte) bool {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
			i++
		}
	}
	lit := func(s string) bool {
		ws()
		if len(b)-i < len(s) || string(b[i:i+len(s)]) != s {
			return false
		}
		i += len(s)
		return true
	}
	if !lit("{") || !lit(`"key"`) || !lit(":") || !lit(`"`) {
		return false
	}
	start := i
	for i < len(b) && (b[i] >= 'a' && b[i] <= 'z' || b[i] >= 'A' && b[i] <= 'Z' || b[i] >= '0' && b[i] <= '9' || b[i] == '_') {
		i++
	}
	end := i
	// The closing quote must follow the key at once: lit would skip white space first, and read
	// {"key":"abc "} as the key "abc".
	if i == len(b) || b[i] != '"' {
		return false
	}
	i++
	if !lit("}") {
		return false
	}
	ws()
	if i != len(b) {
		return false
	}
	q.Key = string(b[start:end])
	return true
}

// writeVerified writes a verification's answer: the same bytes as writeData, but without reflection
// for the answers of the hot path (no reason, no claims): their key's fields come encoded once per
// compiled key, and the rest is appended by hand.
func writeVerified(w http.ResponseWriter, a verifyAnswer) {
	if a.Reason != nil || a.claims != nil {
		writeData(w, http.StatusOK, a.withKey())
		return
	}
	buf := getBuffer()
	defer putBuffer(buf)
	b := append(buf.AvailableBuffer(), `{"success":true,"data":{"valid":`...)
	b = strconv.AppendBool(b, a.Valid)
	b = append(b, `,"code":`...)
	b = strconv.AppendQuote(b, string(a.Code)) // codes are upper-case ASCII letters and _
	if a.key != nil {
		b = append(b, ',')
		b = appendVerifiedKey(b, a.key)
		if rl := a.rateLimit; rl != nil {
			b = append(b, `,"ratelimit":{"limit":`...)
			b = strconv.AppendInt(b, rl.Limit, 10)
			b = append(b, `,"remaining":`...)
			b = strconv.AppendInt(b, rl.Remaining, 10)
			b = append(b, `,"resetAt":`...)
			b = strconv.AppendQuote(b, rl.ResetAt) // an RFC 3339 time: ASCII, nothing to escape
			b = append(b, '}')
		}
		b = appendUsage(b, &a)
	}
	b = append(b, "}}\n"...)
	buf.Write(b) // where b outgrew the buffer, the buffer grows to hold it next time
	// The same headers as writeJSON's, from shared values rather than a new slice each: net/http
	// only reads them, and a handler that added to one would append to a full slice, so copy it.
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// appendUsage appends the usage-based part of an answer: its limits' decisions, credits and
// identity, as encoding/json writes verifiedKey's RateLimits, Credits and Identity.
func appendUsage(b []byte, a *verifyAnswer) []byte {
	if n := a.limits.Len(); n > 0 {
		b = append(b, `,"ratelimits":[`...)
		for i := range n {
			d := a.limits.At(i)
			if i > 0 {
				b = append(b, ',')
			}
			// Limit names are [a-z0-9_.:-]: nothing to escape.
			b = append(b, `{"name":"`...)
			b = append(b, d.Name...)
			b = append(b, `","limit":`...)
			b = strconv.AppendInt(b, d.Limit, 10)
			b = append(b, `,"remaining":`...)
			b = strconv.AppendInt(b, d.Remaining, 10)
			b = append(b, `,"resetAt":"`...)
			b = d.ResetAt.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `","exceeded":`...)
			b = strconv.AppendBool(b, !d.Allowed)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if a.hasCredits {
		b = append(b, `,"credits":{"remaining":`...)
		b = strconv.AppendInt(b, a.credits, 10)
		b = append(b, '}')
	}
	if id := a.key.Identity; id != nil {
		b = append(b, `,"identity":`...)
		if !plainJSON(id.ID) || !plainJSON(id.ExternalID) || !compactPlainJSON(id.Meta) {
			enc, err := json.Marshal(identityRef(id))
			if err != nil {
				// Only a meta that is not JSON could fail, and the store only holds what was validated.
				enc, _ = json.Marshal(keyplane.IdentityRef{ID: id.ID, ExternalID: id.ExternalID, Meta: json.RawMessage("{}")})
			}
			return append(b, enc...)
		}
		b = append(b, `{"id":"`...)
		b = append(b, id.ID...)
		b = append(b, `","externalId":"`...)
		b = append(b, id.ExternalID...)
		b = append(b, `","meta":`...)
		if len(id.Meta) == 0 {
			b = append(b, "{}"...)
		} else {
			b = append(b, id.Meta...)
		}
		b = append(b, '}')
	}
	return b
}

// Header values of every verification answer, shared; their capacity is their length (see
// writeVerified).
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	noSniff         = []string{"nosniff"}
)

// appendVerifiedKey appends the key's part of a verification answer, the bytes encodeVerifiedKey
// makes. A key whose strings need no escaping and whose meta is compact (nearly all) is appended
// by hand, with nothing kept: a cached key would otherwise hold a copy of its fields, a fifth of
// its weight in the cache (docs/performance.md, "Memory"). Any other key's encoding is made by
// encoding/json, once per compiled key.
func appendVerifiedKey(b []byte, k *keyplane.CompiledKey) []byte {
	if !plainJSON(k.ID) || !plainJSON(k.WorkspaceID) || !plainJSON(k.Name) || !plainJSON(string(k.KeyType)) ||
		!plainJSON(string(k.Environment)) || !compactPlainJSON(k.Meta) {
		return append(b, k.Encoded(encodeVerifiedKey)...)
	}
	for _, p := range k.Permissions {
		if !plainJSON(p) {
			return append(b, k.Encoded(encodeVerifiedKey)...)
		}
	}
	b = append(b, `"keyId":"`...)
	b = append(b, k.ID...)
	b = append(b, `","workspaceId":"`...)
	b = append(b, k.WorkspaceID...)
	b = append(b, `","name":"`...)
	b = append(b, k.Name...)
	b = append(b, `","keyType":"`...)
	b = append(b, k.KeyType...)
	b = append(b, `","environment":"`...)
	b = append(b, k.Environment...)
	b = append(b, `","permissions":[`...)
	for i, p := range k.Permissions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, p...)
		b = append(b, '"')
	}
	b = append(b, `],"meta":`...)
	if len(k.Meta) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, k.Meta...)
	}
	b = append(b, `,"expiresAt":`...)
	exp := k.ExpiresAt()
	if exp == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = exp.UTC().AppendFormat(b, time.RFC3339Nano) // keyplane.FormatTime: ASCII, nothing to escape
	return append(b, '"')
}

// plainJSON reports whether encoding/json writes s as it is between quotes: printable ASCII other
// than the quote, the backslash and the three characters it escapes for HTML.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// compactPlainJSON reports whether encoding/json writes the raw JSON m as it is: no white space
// outside strings (it compacts), nothing it escapes for HTML, only ASCII (so no U+2028 or U+2029 to
// escape). Escapes inside strings stay as they are, so a backslash is fine; empty m is written as
// {} by the caller.
func compactPlainJSON(m json.RawMessage) bool {
	in := false
	for i := 0; i < len(m); i++ {
		switch c := m[i]; {
		case c >= 0x7f || c == '<' || c == '>' || c == '&':
			return false
		case in && c == '\\':
			i++ // the escaped character, a quote perhaps, does not end the string
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

// encodeVerifiedKey is the key's part of a verification answer, as encoding/json writes it, without
// the braces: "keyId":…,…,"expiresAt":….
func encodeVerifiedKey(k *keyplane.CompiledKey) []byte {
	b, err := json.Marshal(newVerifiedKey(k))
	if err != nil || len(b) < 2 {
		// Only a meta that is not JSON could fail, and the store only holds what was validated.
		b, _ = json.Marshal(verifiedKey{KeyID: k.ID, WorkspaceID: k.WorkspaceID, Name: k.Name, KeyType: k.KeyType,
			Environment: string(k.Environment), Permissions: []string{}, Meta: json.RawMessage("{}")})
	}
	return b[1 : len(b)-1]
}

// newVerifiedKey is what a verification answer says of a key, whatever the code.
func newVerifiedKey(k *keyplane.CompiledKey) *verifiedKey {
	v := &verifiedKey{KeyID: k.ID, WorkspaceID: k.WorkspaceID, Name: k.Name, KeyType: k.KeyType,
		Environment: string(k.Environment), Permissions: k.Permissions, Meta: k.Meta}
	if v.Permissions == nil {
		v.Permissions = []string{}
	}
	if len(v.Meta) == 0 {
		v.Meta = json.RawMessage("{}")
	}
	if exp := k.ExpiresAt(); exp != nil {
		e := keyplane.FormatTime(*exp)
		v.ExpiresAt = &e
	}
	return v
}

// verified records a verification (metrics, and the request log when a key was found) and returns
// its answer. The logged IP is the one the request named, never the address of the backend asking;
// an unknown key is in no workspace, so it is in no log.
func (s *Server) verified(r *http.Request, c *call, res verify.Result, source keyplane.LogSource, vr *keyplane.VerifyRequest) verifyAnswer {
	a := verifyAnswer{Valid: res.Code == keyplane.VerifyValid, Code: res.Code}
	if res.Reason != "" {
		reason := res.Reason // a copy, so that res itself stays on the stack
		a.Reason = &reason
	}
	s.observe(string(res.Code), string(source), time.Since(c.start))
	if res.Key == nil {
		return a
	}
	k := res.Key
	var logged string
	if vr.IP.IsValid() {
		logged = vr.IP.String()
	}
	// Logged once the outcome is known and before the answer is written; Log never waits.
	s.reqlog.Log(keyplane.RequestLog{
		WorkspaceID: k.WorkspaceID, KeyID: k.ID, Code: res.Code, Source: source,
		Method: r.Method, Path: redact.Secrets(r.URL.Path), IP: logged, UserAgent: redact.UserAgent(r.UserAgent()),
		LatencyMicros: time.Since(c.start).Microseconds(), Timestamp: c.start,
		IdentityID: k.IdentityID, CreditsSpent: res.CreditsSpent, Tags: vr.Tags,
	})
	a.key, a.claims = res.Key, res.Claims
	if d, ok := res.Limits.Default(); ok {
		a.rateLimit = &rateLimitState{Limit: d.Limit, Remaining: d.Remaining, ResetAt: keyplane.FormatTime(d.ResetAt)}
	}
	a.limits, a.hasCredits, a.credits = res.Limits, res.HasCredits, res.CreditsRemaining
	return a
}
