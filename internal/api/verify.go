package api

import (
	"encoding/json"
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
}

// withKey returns a with its key's fields filled in, as encoding/json writes them.
func (a verifyAnswer) withKey() verifyAnswer {
	if a.key != nil {
		a.verifiedKey = newVerifiedKey(a.key.Key)
		a.RateLimit, a.Claims = a.rateLimit, a.claims
	}
	return a
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
	Claims      map[string]any   `json:"claims,omitempty"` // a JWT's, once it checked out
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
	if err := v.Err(); err != nil {
		return err
	}
	res, err := s.ver.Verify(r.Context(), req.Key, &vr)
	if err != nil {
		return err
	}
	writeVerified(w, s.verified(r, c, res, keyplane.SourceVerify, vr.IP))
	return nil
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
func appendVerifiedKey(b []byte, c *keyplane.CompiledKey) []byte {
	k := c.Key
	if !plainJSON(k.ID) || !plainJSON(k.WorkspaceID) || !plainJSON(k.Name) || !plainJSON(string(k.KeyType)) ||
		!plainJSON(string(k.Environment)) || !compactPlainJSON(k.Meta) {
		return append(b, c.Encoded(encodeVerifiedKey)...)
	}
	for _, p := range k.Permissions {
		if !plainJSON(p) {
			return append(b, c.Encoded(encodeVerifiedKey)...)
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
	if k.ExpiresAt == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = k.ExpiresAt.UTC().AppendFormat(b, time.RFC3339Nano) // keyplane.FormatTime: ASCII, nothing to escape
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
func encodeVerifiedKey(k *keyplane.APIKey) []byte {
	b, err := json.Marshal(newVerifiedKey(k))
	if err != nil || len(b) < 2 {
		// Only a meta that is not JSON could fail, and the store only holds what was validated.
		b, _ = json.Marshal(verifiedKey{KeyID: k.ID, WorkspaceID: k.WorkspaceID, Name: k.Name, KeyType: k.KeyType,
			Environment: string(k.Environment), Permissions: []string{}, Meta: json.RawMessage("{}")})
	}
	return b[1 : len(b)-1]
}

// newVerifiedKey is what a verification answer says of a key, whatever the code.
func newVerifiedKey(k *keyplane.APIKey) *verifiedKey {
	v := &verifiedKey{KeyID: k.ID, WorkspaceID: k.WorkspaceID, Name: k.Name, KeyType: k.KeyType,
		Environment: string(k.Environment), Permissions: k.Permissions, Meta: k.Meta}
	if v.Permissions == nil {
		v.Permissions = []string{}
	}
	if len(v.Meta) == 0 {
		v.Meta = json.RawMessage("{}")
	}
	if k.ExpiresAt != nil {
		e := keyplane.FormatTime(*k.ExpiresAt)
		v.ExpiresAt = &e
	}
	return v
}

// verified records a verification (metrics, and the request log when a key was found) and returns
// its answer. The logged IP is the one the request named, never the address of the backend asking;
// an unknown key is in no workspace, so it is in no log.
func (s *Server) verified(r *http.Request, c *call, res verify.Result, source keyplane.LogSource, ip netip.Addr) verifyAnswer {
	a := verifyAnswer{Valid: res.Code == keyplane.VerifyValid, Code: res.Code}
	if res.Reason != "" {
		reason := res.Reason // a copy, so that res itself stays on the stack
		a.Reason = &reason
	}
	s.observe(string(res.Code), string(source), time.Since(c.start))
	if res.Key == nil {
		return a
	}
	k := res.Key.Key
	var logged string
	if ip.IsValid() {
		logged = ip.String()
	}
	// Logged once the outcome is known and before the answer is written; Log never waits.
	s.reqlog.Log(keyplane.RequestLog{
		WorkspaceID: k.WorkspaceID, KeyID: k.ID, Code: res.Code, Source: source,
		Method: r.Method, Path: redact.Secrets(r.URL.Path), IP: logged, UserAgent: redact.UserAgent(r.UserAgent()),
		LatencyMicros: time.Since(c.start).Microseconds(), Timestamp: c.start,
	})
	a.key, a.claims = res.Key, res.Claims
	if d := res.RateLimit; d != nil {
		a.rateLimit = &rateLimitState{Limit: d.Limit, Remaining: d.Remaining, ResetAt: keyplane.FormatTime(d.ResetAt)}
	}
	return a
}
