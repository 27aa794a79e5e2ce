package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/maypok86/otter/v2"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// Signed verification rules of the contract.
const (
	// SignatureWindow is how far a signed request's timestamp may be from now, either way.
	SignatureWindow = 300 * time.Second
	// MaxTokenLifetime bounds a JWT's exp after its iat (or after now when it has none).
	MaxTokenLifetime = time.Hour
	// TokenLeeway is the clock skew allowed on exp, nbf and iat.
	TokenLeeway = 30 * time.Second
)

// valueEntry is a cached read of a key by id: the digest and, for a recoverable key, the plain
// value of its current secret (held in memory only, never written anywhere). An unknown id has
// found false.
type valueEntry struct {
	found       bool
	recoverable bool
	value       string
	digest      [32]byte
	key         *keyplane.CompiledKey
}

// byID returns the key with this id, its current value when it is recoverable, and its verification
// entry. The id cache is checked against the digest cache, which the service invalidates on every
// change: a value that no longer matches a current secret (rotated, or its key deleted) sends the id
// back to the store once.
func (v *Verifier) byID(ctx context.Context, keyID string) (valueEntry, entry, error) {
	if !id.Valid(id.APIKey, keyID) {
		return valueEntry{}, entry{}, nil
	}
	for try := 0; ; try++ {
		ve, err := v.values.Get(ctx, keyID, otter.LoaderFunc[string, valueEntry](v.loadValue))
		if err != nil || !ve.found || !ve.recoverable {
			return ve, entry{}, err
		}
		e, err := v.lookup(ctx, ve.digest)
		if err != nil {
			return valueEntry{}, entry{}, err
		}
		if (e.key != nil && e.secretExpiresAt == nil) || try == 1 {
			if e.key == nil {
				return valueEntry{}, entry{}, nil
			}
			return ve, e, nil
		}
		v.values.Invalidate(keyID)
	}
}

func (v *Verifier) loadValue(ctx context.Context, keyID string) (valueEntry, error) {
	k, err := v.store.FindAPIKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return valueEntry{}, nil
	}
	if err != nil {
		return valueEntry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ve := valueEntry{found: true, key: keyplane.Compile(k)}
	if !k.Recoverable || v.box == nil {
		return ve, nil
	}
	secrets, err := v.store.ListSecrets(ctx, keyID)
	if err != nil {
		return valueEntry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, s := range secrets {
		if s.ExpiresAt == nil && len(s.Ciphertext) > 0 {
			pt, err := v.box.Open(s.Ciphertext, keyplane.SealedKeyAD(k.WorkspaceID, k.ID))
			if err != nil {
				return valueEntry{}, fmt.Errorf("open key %s: %w", k.ID, err)
			}
			ve.recoverable, ve.value, ve.digest = true, string(pt), keyformat.Hash(string(pt))
			break
		}
	}
	return ve, nil
}

// unrecoverable answers for a key whose value keyplane does not hold: REVOKED when it is revoked (its
// value was erased then: there is nothing left to check, and nothing to protect), else
// INVALID_SIGNATURE with reason.
func unrecoverable(ve valueEntry, reason string) (Result, bool) {
	if ve.recoverable {
		return Result{}, false
	}
	if ve.key != nil && ve.key.Revoked() {
		return Result{Code: keyplane.VerifyRevoked, Key: ve.key}, true
	}
	return Result{Code: keyplane.VerifyInvalidSignature, Reason: reason}, true
}

// SignedRequest is a request signed with a key's value (POST /v1/verify/signature).
type SignedRequest struct {
	KeyID      string
	Timestamp  int64 // unix seconds
	Signature  string
	Method     string
	Path       string // with its query
	BodySHA256 string // hex
	Req        keyplane.VerifyRequest
}

// MaxSignedPath bounds the path (with its query) a signature covers.
const MaxSignedPath = 8192

// ValidMethod reports whether m may be a signed request's method: an HTTP method token (RFC 9110) of
// at most 32 characters, without lower-case letters. Besides matching what HTTP can carry, this keeps
// line breaks out of the canonical string, whose lines would otherwise not say where the method ends
// ("POST\n/a" and "/b" would sign the same string as "POST" and "/a\n/b").
func ValidMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidPath reports whether p may be a signed request's path: it starts with "/", holds at most
// MaxSignedPath bytes and no ASCII control character (a request target never does), so that it stays
// on its one line of the canonical string.
func ValidPath(p string) bool {
	if !strings.HasPrefix(p, "/") || len(p) > MaxSignedPath {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return false
		}
	}
	return true
}

// Canonical is the string a request signature signs: timestamp, method, path and body digest,
// each on a line. It is unambiguous only for a method and path that ValidMethod and ValidPath accept.
func Canonical(timestamp int64, method, path, bodySHA256 string) string {
	return strconv.FormatInt(timestamp, 10) + "\n" + method + "\n" + path + "\n" + bodySHA256
}

// Sign is the signature of a request under a key value, as a client makes it.
func Sign(value string, timestamp int64, method, path, bodySHA256 string) string {
	m := hmac.New(sha256.New, []byte(value))
	m.Write([]byte(Canonical(timestamp, method, path, bodySHA256)))
	return hex.EncodeToString(m.Sum(nil))
}

// skewText says how far off a timestamp is, given in seconds that may be past a Duration's range.
func skewText(seconds uint64) string {
	if seconds > uint64(math.MaxInt64/int64(time.Second)) {
		return strconv.FormatUint(seconds, 10) + "s"
	}
	return (time.Duration(seconds) * time.Second).String()
}

// invalid is an INVALID_SIGNATURE result for a key that was found.
func invalid(k *keyplane.CompiledKey, reason string) Result {
	return Result{Code: keyplane.VerifyInvalidSignature, Key: k, Reason: reason}
}

// VerifySignature checks a signed request: the key by id, then the signature (constant-time), the
// timestamp's window and replays, then the key's own checks and rate limit. The key's status is only
// told to a caller whose signature was good.
func (v *Verifier) VerifySignature(ctx context.Context, sr *SignedRequest) (Result, error) {
	ve, e, err := v.byID(ctx, sr.KeyID)
	if err != nil {
		return Result{}, err
	}
	if !ve.found {
		return Result{Code: keyplane.VerifyNotFound}, nil
	}
	if r, done := unrecoverable(ve, "the key is not recoverable: keyplane cannot check what it signs (create it with recoverable: true)"); done {
		return r, nil
	}
	// The API refuses these first; checked here too because a signature over them proves nothing.
	if !ValidMethod(sr.Method) || !ValidPath(sr.Path) {
		return invalid(e.key, "bad request: the method must be an HTTP method in capitals and the path must start with / and hold no control characters"), nil
	}
	got, err := hex.DecodeString(sr.Signature)
	want := hmac.New(sha256.New, []byte(ve.value))
	want.Write([]byte(Canonical(sr.Timestamp, sr.Method, sr.Path, sr.BodySHA256)))
	if err != nil || !hmac.Equal(got, want.Sum(nil)) {
		return invalid(e.key, "bad signature: it does not match the method, path, body digest and timestamp under this key"), nil
	}
	// Compared in whole seconds: time.Unix of a far-future stamp wraps into the distant past.
	now, window := v.now().Unix(), int64(SignatureWindow/time.Second)
	switch {
	case sr.Timestamp < now && uint64(now)-uint64(sr.Timestamp) > uint64(window):
		return invalid(e.key, fmt.Sprintf("stale timestamp: %s old, more than the %s allowed", skewText(uint64(now)-uint64(sr.Timestamp)), SignatureWindow)), nil
	case sr.Timestamp > now && uint64(sr.Timestamp)-uint64(now) > uint64(window):
		return invalid(e.key, fmt.Sprintf("timestamp in the future: %s ahead, more than the %s allowed", skewText(uint64(sr.Timestamp)-uint64(now)), SignatureWindow)), nil
	}
	// Remembered as bytes: the same signature in other letter case is the same signature.
	first, err := v.replay.First(ctx, sr.KeyID+":"+hex.EncodeToString(got), 2*SignatureWindow+time.Minute)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !first {
		return invalid(e.key, "replay: this signature was already used"), nil
	}
	return v.finish(ctx, e, &sr.Req)
}

// finish runs the key's own checks, then, for a request they find VALID, its rate limits and its
// spend of credits, for a request already authenticated (by value or by id).
func (v *Verifier) finish(ctx context.Context, e entry, req *keyplane.VerifyRequest) (Result, error) {
	res := Result{Code: e.key.Check(v.now(), e.secretExpiresAt, req), Key: e.key}
	if e.plan == nil && e.key.RateLimit == nil && len(req.Limits) == 0 {
		return res, nil // nothing usage-based: the commonest key
	}
	var one [1]limitRef
	limits := limitsOf(&e, &one)
	if len(req.Limits) > 0 {
		if err := unknownLimits(limits, req); err != nil {
			return Result{}, err
		}
	}
	if res.Code == keyplane.VerifyValid {
		if err := v.applyLimits(ctx, &res, limits, req); err != nil {
			return Result{}, err
		}
	}
	if res.Code != keyplane.VerifyValid {
		v.peekCredits(&res, e.plan)
		return res, nil
	}
	if err := v.spend(ctx, &res, e.plan, req.Cost); err != nil {
		return Result{}, err
	}
	return res, nil
}

// VerifyJWT checks a compact JWT signed (HS256 only) with the value of the key its kid names: the
// signature, exp (required; at most MaxTokenLifetime after iat, or after now without one), nbf and
// iat with TokenLeeway, then the key's own checks and rate limit. The claims are returned when the
// token checks out, whatever the key's code.
func (v *Verifier) VerifyJWT(ctx context.Context, token string, req *keyplane.VerifyRequest) (Result, error) {
	var ve valueEntry
	var e entry
	var lookupErr error
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(TokenLeeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
	)
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		ve, e, lookupErr = v.byID(ctx, kid)
		if lookupErr != nil {
			return nil, lookupErr
		}
		if !ve.found {
			return nil, errUnknownKid
		}
		if !ve.recoverable {
			return nil, errNotRecoverable
		}
		return []byte(ve.value), nil
	})
	if lookupErr != nil {
		return Result{}, lookupErr
	}
	switch {
	case errors.Is(err, errUnknownKid):
		return Result{Code: keyplane.VerifyNotFound}, nil
	case errors.Is(err, errNotRecoverable):
		r, _ := unrecoverable(ve, "the key named by kid is not recoverable: keyplane cannot check what it signs")
		return r, nil
	case err != nil:
		k := e.key
		if k == nil {
			// Refused before its key was looked up (a disallowed alg): the kid still names whose
			// request log should show the attempt.
			if ve, _, err := v.byID(ctx, headerKid(token)); err == nil && ve.found {
				k = ve.key
			}
		}
		return invalid(k, tokenReason(err)), nil
	}
	if !datesInRange(claims) {
		return invalid(e.key, "bad claims: exp, nbf and iat must be unix times no later than the year 9999"), nil
	}
	exp, _ := claims.GetExpirationTime()
	start := v.now()
	if iat, _ := claims.GetIssuedAt(); iat != nil {
		start = iat.Time
	}
	if life := exp.Sub(start); life > MaxTokenLifetime+TokenLeeway {
		return invalid(e.key, fmt.Sprintf("bad claims: the token lives %s, more than the %s allowed", life.Round(time.Second), MaxTokenLifetime)), nil
	}
	res, err := v.finish(ctx, e, req)
	res.Claims = claims
	return res, err
}

// maxNumericDate is the last second of the year 9999. golang-jwt turns a NumericDate into a time through
// int64 seconds, which wraps for larger values: an nbf of 1e19 would be read as long past, and the
// token accepted now rather than never.
const maxNumericDate = 253402300799

// datesInRange reports whether the token's exp, nbf and iat, where they are numbers, lie within
// ±maxNumericDate; claims of other types golang-jwt has already refused.
func datesInRange(claims jwt.MapClaims) bool {
	for _, name := range []string{"exp", "nbf", "iat"} {
		var f float64
		switch d := claims[name].(type) {
		case float64:
			f = d
		case json.Number:
			f, _ = d.Float64()
		default:
			continue
		}
		if math.Abs(f) > maxNumericDate {
			return false
		}
	}
	return true
}

// headerKid reads a compact JWT's kid without checking anything; "" when there is none.
func headerKid(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

var (
	errUnknownKid     = errors.New("kid names no key")
	errNotRecoverable = errors.New("the key is not recoverable")
)

// tokenReason says why a token was refused, in the contract's words.
func tokenReason(err error) string {
	switch {
	case strings.Contains(err.Error(), "signing method"):
		return "bad token: its alg is not allowed; only HS256 is"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token: " + err.Error()
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature: the token is not signed with this key's value"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad token: " + err.Error() + " (only HS256, with kid set to the key's id)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "bad claims: exp is required"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "bad claims: the token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "bad claims: the token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "bad claims: iat is in the future"
	}
	return "bad token: " + err.Error()
}
