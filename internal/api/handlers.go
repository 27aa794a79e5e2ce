package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/verify"
)

// page reads ?limit (1–100, default 50) and ?cursor.
func page(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return 0, "", invalid("limit", "must be a whole number from 1 to 100")
		}
		limit = n
	}
	cursor := q.Get("cursor")
	if len(cursor) > 200 {
		return 0, "", invalid("cursor", "was not made by this list")
	}
	return limit, cursor, nil
}

func timeParam(r *http.Request, name string) (*time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, invalid(name, "must be an RFC 3339 time such as 2030-01-31T12:00:00Z")
	}
	return &t, nil
}

// listQuery is what every filtered list reads from its query: the page, the since/until range, and
// its text filters.
type listQuery struct {
	limit        int
	cursor       string
	since, until *time.Time
	q            url.Values
}

// readList reads a list's query, checking the named filters so that every store can compare them.
func readList(r *http.Request, filters ...string) (*listQuery, error) {
	lq := &listQuery{q: r.URL.Query()}
	var err error
	if lq.limit, lq.cursor, err = page(r); err != nil {
		return nil, err
	}
	if lq.since, err = timeParam(r, "since"); err != nil {
		return nil, err
	}
	if lq.until, err = timeParam(r, "until"); err != nil {
		return nil, err
	}
	for _, f := range filters {
		if v := lq.q.Get(f); !filterValue(v) {
			return nil, invalid(f, "must be at most 100 printable characters")
		}
	}
	return lq, nil
}

// filterValue accepts a query filter that every store can compare: printable UTF-8, no NUL.
func filterValue(s string) bool {
	return len(s) <= 100 && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

func parseTime(field string, o keyplane.Optional[string]) (keyplane.Optional[time.Time], error) {
	out := keyplane.Optional[time.Time]{Set: o.Set, Null: o.Null}
	if o.Set && !o.Null {
		t, err := time.Parse(time.RFC3339Nano, o.Value)
		if err != nil {
			return out, invalid(field, "must be an RFC 3339 time such as 2030-01-31T12:00:00Z, or null")
		}
		out.Value = t
	}
	return out, nil
}

func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, c *call) error {
	writeData(w, http.StatusOK, s.svc.Catalog().Permissions())
	return nil
}

func (s *Server) listEventTypes(w http.ResponseWriter, r *http.Request, c *call) error {
	writeData(w, http.StatusOK, s.svc.Catalog().EventTypes())
	return nil
}

// Workspaces

type workspaceRequest struct {
	Name              keyplane.Optional[string] `json:"name"`
	Slug              keyplane.Optional[string] `json:"slug"`
	MaxKeys           keyplane.Optional[int]    `json:"maxKeys"`
	TestKeyTTLSeconds keyplane.Optional[int64]  `json:"testKeyTtlSeconds"`
	LiveModeEnabled   keyplane.Optional[bool]   `json:"liveModeEnabled"`
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	var req workspaceRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	ws, err := s.svc.CreateWorkspace(r.Context(), c.Caller, service.WorkspaceInput{
		Name: req.Name.Value, Slug: req.Slug.Value, MaxKeys: req.MaxKeys, TestKeyTTLSeconds: req.TestKeyTTLSeconds, LiveModeEnabled: req.LiveModeEnabled,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusCreated, ws.View())
	return nil
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	ws, next, err := s.svc.ListWorkspaces(r.Context(), c.Caller, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]*keyplane.WorkspaceView, len(ws))
	for i := range ws {
		out[i] = ws[i].View()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	ws, err := s.svc.GetWorkspace(r.Context(), c.Caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, ws.View())
	return nil
}

func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	var req workspaceRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	ws, err := s.svc.UpdateWorkspace(r.Context(), c.Caller, r.PathValue("id"), service.WorkspacePatch{
		Name: req.Name, Slug: req.Slug, MaxKeys: req.MaxKeys, TestKeyTTLSeconds: req.TestKeyTTLSeconds, LiveModeEnabled: req.LiveModeEnabled,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, ws.View())
	return nil
}

type memberRequest struct {
	Email string        `json:"email"`
	Role  keyplane.Role `json:"role"`
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, c *call) error {
	var req memberRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	m, created, err := s.svc.AddMember(r.Context(), c.Caller, r.PathValue("id"), req.Email, req.Role)
	if err != nil {
		return err
	}
	// 201 for a new invitation; 200 for a change of role (or none) of someone already there.
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeData(w, status, m.View())
	return nil
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, c *call) error {
	m, err := s.svc.RemoveMember(r.Context(), c.Caller, r.PathValue("id"), r.PathValue("userId"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, m.View())
	return nil
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, c *call) error {
	ms, err := s.svc.ListMembers(r.Context(), c.Caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	out := make([]*keyplane.MemberView, len(ms))
	for i := range ms {
		out[i] = ms[i].View()
	}
	writeList(w, out, "")
	return nil
}

// API keys

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
	keys, next, err := s.svc.ListAPIKeys(r.Context(), c.Caller, c.ws, keyplane.KeyFilter{
		Environment: keyplane.Environment(q.Get("environment")), KeyType: keyplane.KeyType(q.Get("keyType")),
		Status: keyplane.Status(q.Get("status")), Limit: limit, Cursor: cursor,
	})
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
	Name           keyplane.Optional[string]             `json:"name"`
	Description    keyplane.Optional[string]             `json:"description"`
	Permissions    keyplane.Optional[[]string]           `json:"permissions"`
	IPAllowlist    keyplane.Optional[[]string]           `json:"ipAllowlist"`
	AllowedOrigins keyplane.Optional[[]string]           `json:"allowedOrigins"`
	Meta           keyplane.Optional[json.RawMessage]    `json:"meta"`
	RateLimit      keyplane.Optional[keyplane.RateLimit] `json:"rateLimit"`
	ExpiresAt      keyplane.Optional[string]             `json:"expiresAt"`
	Enabled        keyplane.Optional[bool]               `json:"enabled"`
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

// Audit

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	lq, err := readList(r, "action", "actorId", "targetId")
	if err != nil {
		return err
	}
	q := lq.q
	entries, next, err := s.svc.ListAudit(r.Context(), c.Caller, c.ws, keyplane.AuditFilter{
		Action: q.Get("action"), ActorID: q.Get("actorId"), TargetID: q.Get("targetId"), Since: lq.since, Until: lq.until, Limit: lq.limit, Cursor: lq.cursor,
	})
	if err != nil {
		return err
	}
	out := make([]json.RawMessage, len(entries))
	for i := range entries {
		out[i] = entries[i].JSON()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	res, err := s.svc.VerifyAudit(r.Context(), c.Caller, c.ws)
	if err != nil {
		return err
	}
	var bad *string
	if res.FirstBadID != "" {
		bad = &res.FirstBadID
	}
	writeData(w, http.StatusOK, map[string]any{"valid": res.Valid, "entries": res.Entries, "firstBadId": bad})
	return nil
}

// Request logs

func (s *Server) listLogs(w http.ResponseWriter, r *http.Request, c *call) error {
	lq, err := readList(r, "keyId", "code", "source")
	if err != nil {
		return err
	}
	q := lq.q
	entries, next, err := s.svc.ListLogs(r.Context(), c.Caller, c.ws, keyplane.LogFilter{
		KeyID: q.Get("keyId"), Code: keyplane.VerifyCode(q.Get("code")), Source: keyplane.LogSource(q.Get("source")),
		Since: lq.since, Until: lq.until, Limit: lq.limit, Cursor: lq.cursor,
	})
	if err != nil {
		return err
	}
	out := make([]*keyplane.RequestLogView, len(entries))
	for i := range entries {
		out[i] = entries[i].View()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) keyUsage(w http.ResponseWriter, r *http.Request, c *call) error {
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(r, "until")
	if err != nil {
		return err
	}
	g := r.URL.Query().Get("granularity")
	if !filterValue(g) {
		return invalid("granularity", "must be hour or day")
	}
	buckets, err := s.svc.KeyUsage(r.Context(), c.Caller, c.ws, r.PathValue("id"), service.UsageQuery{
		Granularity: keyplane.Granularity(g), Since: since, Until: until,
	})
	if err != nil {
		return err
	}
	out := make([]*keyplane.UsageBucketView, len(buckets))
	for i := range buckets {
		out[i] = buckets[i].View()
	}
	writeData(w, http.StatusOK, out)
	return nil
}

// Verification

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
		b = append(b, a.key.Encoded(encodeVerifiedKey)...)
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
