package keyplane

import (
	"encoding/json"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// KeyType says whether a key is a server-side secret or a client-side publishable key.
type KeyType string

// Key types.
const (
	KeyTypeSecret      KeyType = "secret"
	KeyTypePublishable KeyType = "publishable"
)

// Short returns the type's tag inside a key value: "sk" or "pk".
func (t KeyType) Short() string {
	if t == KeyTypePublishable {
		return "pk"
	}
	return "sk"
}

// Valid reports whether t is a known key type.
func (t KeyType) Valid() bool { return t == KeyTypeSecret || t == KeyTypePublishable }

// Environment separates test traffic from live traffic.
type Environment string

// Environments.
const (
	EnvLive Environment = "live"
	EnvTest Environment = "test"
)

// Valid reports whether e is a known environment.
func (e Environment) Valid() bool { return e == EnvLive || e == EnvTest }

// Status is derived from a key's fields; it is never stored.
type Status string

// Key statuses, in the order they take precedence.
const (
	StatusRevoked  Status = "revoked"
	StatusExpired  Status = "expired"
	StatusDisabled Status = "disabled"
	StatusActive   Status = "active"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusRevoked, StatusExpired, StatusDisabled, StatusActive:
		return true
	}
	return false
}

// RateLimit allows Limit verifications per WindowMs milliseconds.
type RateLimit struct {
	Limit    int64 `json:"limit"`
	WindowMs int64 `json:"windowMs"`
}

// Bounds of a key's fields.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 500
	MaxMetaBytes      = 4096
	MaxPermissions    = 100
	MaxIPAllowlist    = 100
	MaxOrigins        = 50
	MaxRateLimit      = 1_000_000
	MinRateWindowMs   = 1000
	MaxRateWindowMs   = 86_400_000
	MaxRotationGrace  = 604800 // seconds: seven days
)

// APIKey is a workspace's credential. It never holds a secret value: those live in Secret.
type APIKey struct {
	ID             string
	WorkspaceID    string
	Name           string
	Description    string
	KeyType        KeyType
	Environment    Environment
	Prefix         string // e.g. "kp_sk_live_"
	Start          string // prefix plus the first four random characters
	End            string // the last four characters of the value
	Enabled        bool
	Permissions    []string
	IPAllowlist    []string
	AllowedOrigins []string
	Meta           json.RawMessage  // a JSON object, "{}" when empty
	RateLimit      *RateLimit       // the limit named "default", auto-applied
	RateLimits     []NamedRateLimit // the key's other named limits (never "default")
	Credits        *Credits         // nil: unlimited
	IdentityID     string           // "" when the key belongs to no identity
	// Identity is the key's identity as read with it, for verification: set by the lookups that
	// verify (LookupSecret, FindAPIKey) and by GetAPIKey, never written back through the key.
	Identity    *Identity
	Recoverable bool
	ExpiresAt   *time.Time
	LastUsedAt  *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DisabledAt  *time.Time
	RevokedAt   *time.Time
	CreatedBy   Actor
}

// Status derives the key's status at now: revoked, else expired, else disabled, else active.
func (k *APIKey) Status(now time.Time) Status {
	return status(now, k.RevokedAt != nil, k.ExpiresAt, k.Enabled)
}

// status is the one rule of a key's status, for APIKey and CompiledKey alike.
func status(now time.Time, revoked bool, expiresAt *time.Time, enabled bool) Status {
	switch {
	case revoked:
		return StatusRevoked
	case expiresAt != nil && !now.Before(*expiresAt):
		return StatusExpired
	case !enabled:
		return StatusDisabled
	default:
		return StatusActive
	}
}

// Secret is one value of a key, stored as its SHA-256 digest. A key has one current secret and, during
// a rotation's grace period, older ones that expire. Ciphertext holds the value sealed with the master
// key for publishable and recoverable keys only.
type Secret struct {
	Hash        []byte
	KeyID       string
	WorkspaceID string
	ExpiresAt   *time.Time // set on superseded values: the end of the rotation grace period
	Ciphertext  []byte
	CreatedAt   time.Time
}

// VerifyCode is the outcome of a verification.
type VerifyCode string

// Verification outcomes of the contract.
const (
	VerifyValid                   VerifyCode = "VALID"
	VerifyNotFound                VerifyCode = "NOT_FOUND"
	VerifyDisabled                VerifyCode = "DISABLED"
	VerifyExpired                 VerifyCode = "EXPIRED"
	VerifyRevoked                 VerifyCode = "REVOKED"
	VerifyForbidden               VerifyCode = "FORBIDDEN"
	VerifyInsufficientPermissions VerifyCode = "INSUFFICIENT_PERMISSIONS"
	VerifyRateLimited             VerifyCode = "RATE_LIMITED"
	VerifyUsageExceeded           VerifyCode = "USAGE_EXCEEDED" // fewer credits left than the cost
	VerifyInvalidSignature        VerifyCode = "INVALID_SIGNATURE"
)

// VerifyRequest is what a caller asks of a key, besides the key itself.
type VerifyRequest struct {
	Permissions []string
	IP          netip.Addr // zero when the caller did not say
	Origin      string
	Environment Environment // empty: any
	// Cost is what the verification spends of the key's (and its identity's) credits when it is
	// otherwise VALID: DefaultCreditCost unless the request said; 0 checks without spending.
	Cost int64
	// Limits are the named limits to apply besides the auto-applied ones, with their cost.
	Limits []LimitCost
	// Tags are stored with the request log entry.
	Tags []string
}

// LimitCost names a rate limit a verification applies, and what it counts against it.
type LimitCost struct {
	Name string
	Cost int64
}

// CompiledKey is the verification view of a key: what Check and the verification answers read, with
// the allow-lists parsed once, so that the hot path allocates nothing. It is immutable once built and
// shared between goroutines.
//
// It holds only those fields, not the whole APIKey (its description, start and end, creator and
// timestamps stay in the store): a busy node caches ~100,000 of them, and the collector marks each
// at every cycle, so that their bytes and pointers are a share of every verification
// (docs/performance.md, "The cached key").
type CompiledKey struct {
	ID          string
	WorkspaceID string
	Name        string
	KeyType     KeyType
	Environment Environment
	Permissions []string
	Meta        json.RawMessage
	// IPAllowlist is the key's allow-list as stored; Check uses its parsed form.
	IPAllowlist []string
	RateLimit   *RateLimit // the limit named "default"
	Credits     *Credits   // nil: unlimited
	IdentityID  string
	Identity    *Identity // as read with the key
	expiresAt   time.Time // the key's expiry, when expires is set: a value, not one more pointer
	expires     bool
	revoked     bool
	enabled     bool
	// permissions is a set only for keys with many: a short list is faster to scan than a map is to
	// hash, and a map costs a cached key ~200 bytes (docs/performance.md, "Memory").
	permissions map[string]struct{}
	prefixes    []netip.Prefix
	origins     map[string]struct{}
	encoded     atomic.Pointer[[]byte]
}

// ExpiresAt returns when the key expires, nil when it does not.
func (c *CompiledKey) ExpiresAt() *time.Time {
	if !c.expires {
		return nil
	}
	return &c.expiresAt
}

// Origins yields the origins the key allows (normalised), none for a key that allows any.
func (c *CompiledKey) Origins() iter.Seq[string] { return maps.Keys(c.origins) }

// Revoked reports whether the key is revoked.
func (c *CompiledKey) Revoked() bool { return c.revoked }

// Status derives the key's status at now, as APIKey.Status does.
func (c *CompiledKey) Status(now time.Time) Status {
	return status(now, c.revoked, c.ExpiresAt(), c.enabled)
}

// Encoded returns build(c), built once for this compiled key: for an encoding of the key that every
// verification answer repeats. It stays right because a change to the key compiles a new one.
// build may run more than once when verifications race; it must not keep its argument.
func (c *CompiledKey) Encoded(build func(*CompiledKey) []byte) []byte {
	if b := c.encoded.Load(); b != nil {
		return *b
	}
	b := build(c)
	c.encoded.Store(&b)
	return b
}

// Compile prepares k for repeated checks. The compiled key shares k's strings, slices and
// pointed-to values (k must not change afterwards), not k itself. Entries of the allow-lists that do
// not parse are skipped: they were validated on the way in, so this only guards against a
// hand-edited database.
func Compile(k *APIKey) *CompiledKey {
	c := &CompiledKey{ID: k.ID, WorkspaceID: k.WorkspaceID, Name: k.Name, KeyType: k.KeyType, Environment: k.Environment,
		Permissions: k.Permissions, Meta: k.Meta, IPAllowlist: k.IPAllowlist, RateLimit: k.RateLimit, Credits: k.Credits,
		IdentityID: k.IdentityID, Identity: k.Identity, revoked: k.RevokedAt != nil, enabled: k.Enabled}
	if k.ExpiresAt != nil {
		c.expiresAt, c.expires = *k.ExpiresAt, true
	}
	if len(k.Permissions) > PermissionSetMin {
		c.permissions = make(map[string]struct{}, len(k.Permissions))
		for _, p := range k.Permissions {
			c.permissions[p] = struct{}{}
		}
	}
	for _, s := range k.IPAllowlist {
		if p, err := ParseIPOrPrefix(s); err == nil {
			c.prefixes = append(c.prefixes, p)
		}
	}
	if len(k.AllowedOrigins) > 0 {
		c.origins = make(map[string]struct{}, len(k.AllowedOrigins))
		for _, o := range k.AllowedOrigins {
			if n, ok := NormalizeOrigin(o); ok {
				o = n // a key stored before origins were normalised may hold https://x:443
			}
			c.origins[o] = struct{}{}
		}
	}
	return c
}

// allowsOrigin compares origins normalised. A browser's Origin header already is, so the first look
// finds it; a caller's "https://Shop.example:443" is normalised only when that misses.
func (c *CompiledKey) allowsOrigin(o string) bool {
	if _, ok := c.origins[o]; ok {
		return true
	}
	n, ok := NormalizeOrigin(o)
	if !ok || n == o {
		return false
	}
	_, ok = c.origins[n]
	return ok
}

// NormalizeOrigin returns an origin as a browser sends it (scheme and host in lower case, the
// scheme's default port dropped, a port without leading zeros) and whether s is one: http or https,
// a host of ASCII letters, digits, '-' and '.' (an internationalised name in its xn-- form) or an IP
// address (IPv6 in brackets, without zone), a port from 1 to 65535, nothing else but a trailing "/".
// Wildcards are no origin: a browser never sends one, and keyplane does not define them.
func NormalizeOrigin(s string) (string, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	scheme = strings.ToLower(scheme)
	if !ok || scheme != "http" && scheme != "https" {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "/")
	var host, port string
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", false
		}
		a, err := netip.ParseAddr(rest[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		host, rest = "["+a.String()+"]", rest[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", false
			}
			port = rest[1:]
			if port == "" {
				return "", false
			}
		}
	} else {
		host = rest
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			host, port = rest[:i], rest[i+1:]
			if port == "" {
				return "", false
			}
		}
		if host == "" {
			return "", false
		}
		for i := 0; i < len(host); i++ {
			b := host[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.') {
				return "", false
			}
		}
		host = strings.ToLower(host)
	}
	if port != "" {
		n := 0
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' || i >= 5 {
				return "", false
			}
			n = n*10 + int(port[i]-'0')
		}
		if n < 1 || n > 65535 {
			return "", false
		}
		if n == 443 && scheme == "https" || n == 80 && scheme == "http" {
			port = ""
		} else {
			port = strconv.Itoa(n)
		}
	}
	if port == "" {
		return scheme + "://" + host, true
	}
	return scheme + "://" + host + ":" + port, true
}

// PermissionSetMin is the number of permissions above which a compiled key keeps them as a set (and
// the verification cache weighs the set).
const PermissionSetMin = 8

// HasPermission reports whether the key was granted p.
func (c *CompiledKey) HasPermission(p string) bool {
	if c.permissions != nil {
		_, ok := c.permissions[p]
		return ok
	}
	return slices.Contains(c.Permissions, p)
}

// Check decides a verification for a key whose value matched, given when that value stops working
// (nil: it does not). Restrictions fail closed: a key with an IP allow-list verified without an IP, or
// with allowed origins verified without an origin, is FORBIDDEN.
func (c *CompiledKey) Check(now time.Time, secretExpiresAt *time.Time, req *VerifyRequest) VerifyCode {
	switch c.Status(now) {
	case StatusRevoked:
		return VerifyRevoked
	case StatusExpired:
		return VerifyExpired
	case StatusDisabled:
		if secretExpiresAt != nil && !now.Before(*secretExpiresAt) {
			return VerifyExpired
		}
		return VerifyDisabled
	}
	if secretExpiresAt != nil && !now.Before(*secretExpiresAt) {
		return VerifyExpired
	}
	if req.Environment != "" && req.Environment != c.Environment {
		return VerifyForbidden
	}
	if len(c.prefixes) > 0 && !c.allowsIP(req.IP) {
		return VerifyForbidden
	}
	if c.origins != nil && !c.allowsOrigin(req.Origin) {
		return VerifyForbidden
	}
	for _, p := range req.Permissions {
		if !c.HasPermission(p) {
			return VerifyInsufficientPermissions
		}
	}
	return VerifyValid
}

func (c *CompiledKey) allowsIP(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range c.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseIPOrPrefix parses an IP address ("203.0.113.7", "2001:db8::1") as a single-address prefix, or a
// CIDR ("203.0.113.0/24"). IPv4-mapped IPv6 addresses are unmapped so that they match IPv4 entries.
// A CIDR with host bits set ("10.0.0.1/8") is refused: it almost always hides a typo.
func ParseIPOrPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, Errorf(CodeInvalidRequest, "an address with a zone is not allowed")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, Errorf(CodeInvalidRequest, "not an IP address or CIDR")
	}
	if p.Masked() != p {
		return netip.Prefix{}, Errorf(CodeInvalidRequest, "CIDR has host bits set; did you mean %s?", p.Masked())
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, Errorf(CodeInvalidRequest, "IPv4-mapped CIDR is wider than the IPv4 space")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p, nil
}

// SealedKeyAD is the associated data a key's sealed value is bound to: its workspace and id, so that a
// ciphertext moved to another key's row does not open.
func SealedKeyAD(wsID, keyID string) []byte {
	return []byte("keyplane/api-key/v1\x00" + wsID + "\x00" + keyID)
}
