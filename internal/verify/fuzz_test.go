package verify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// fuzzNow is the fuzz targets' fixed clock, so that a saved input means the same on every run.
var fuzzNow = time.Unix(1_900_000_000, 0).UTC()

// everFirst is a replay guard that has seen nothing: the fuzzer repeats inputs, and a replay is not
// what these targets look at.
type everFirst struct{}

func (everFirst) First(context.Context, string, time.Duration) (bool, error) { return true, nil }

// fuzzKeys is a verifier on a SQLite store holding a recoverable key (signer) and one that is not
// (plain), on the fixed clock.
type fuzzKeys struct {
	ver                     *verify.Verifier
	signer, plain           *keyplane.APIKey
	signerValue, plainValue string
	otherKID                string
}

func newFuzzKeys(f *testing.F) *fuzzKeys {
	clock := func() time.Time { return fuzzNow }
	st := storetest.Open(f, "sqlite")
	box := servicetest.Box(f)
	ver, err := verify.New(st, verify.Options{KeyPrefix: "kp", Box: box, Now: clock, Replay: everFirst{}})
	if err != nil {
		f.Fatal(err)
	}
	svc := servicetest.New(f, st, service.Options{Forget: ver.Forget, Now: clock})
	ctx, sys := context.Background(), keyplane.System("fuzz")
	w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		f.Fatal(err)
	}
	fk := &fuzzKeys{ver: ver, otherKID: "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C"}
	if fk.signer, fk.signerValue, err = svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "signer", KeyType: keyplane.KeyTypeSecret, Recoverable: true}); err != nil {
		f.Fatal(err)
	}
	if fk.plain, fk.plainValue, err = svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "plain", KeyType: keyplane.KeyTypeSecret}); err != nil {
		f.Fatal(err)
	}
	return fk
}

// FuzzVerifySignature signs (timestamp, method, path, body) with the client SDK's Sign and checks:
//   - client.Sign and verify.Sign agree, and the body digest is the body's SHA-256 in lowercase hex;
//   - the signature verifies (VALID) when the timestamp is inside the window, and is refused as stale
//     or from the future outside it; a method or path the canonical string cannot carry unambiguously
//     is refused whatever the signature;
//   - any one-byte change of the method, path or body digest, or a timestamp one second off, fails as
//     a bad signature;
//   - the canonical string is unambiguous: the same bytes split into another method and path (moving
//     a line break between them) never verify.
func FuzzVerifySignature(f *testing.F) {
	fk := newFuzzKeys(f)
	for _, s := range []struct {
		skew         int64
		method, path string
		body         []byte
		which        uint8
		pos          uint16
		to           byte
	}{
		{0, "POST", "/charges?expand=customer", []byte(`{"amount":42}`), 0, 0, 'P'},
		{299, "GET", "/", nil, 1, 0, '\\'},
		{-300, "DELETE", "/a/b", nil, 2, 10, '0'},
		{301, "POST", "/late", nil, 3, 0, 0},
		{-301, "POST", "/early", nil, 0, 0, 0},
		{0, "", "", nil, 0, 0, 0},
		{0, "post", "/lower", nil, 0, 0, 0},
		{0, "POST", "/a\n/b", nil, 0, 0, 0},
		{0, "POST\n/a", "/b", nil, 0, 0, 0},
		{0, "POST", "/a\r\nX-Injected: 1", nil, 0, 0, 0},
		{0, "POST", "/nul\x00", nil, 0, 0, 0},
		{0, "M-SEARCH", "*", nil, 0, 0, 0},
		{0, "GET", "/ü/日本?q=é", []byte("\xff\xfe"), 1, 3, 'x'},
		{0, "PATCH", "/" + strings.Repeat("a", 9000), nil, 0, 0, 0},
		{math.MaxInt64, "POST", "/", nil, 0, 0, 0},
		{math.MinInt64, "POST", "/", nil, 0, 0, 0},
	} {
		f.Add(s.skew, s.method, s.path, s.body, s.which, s.pos, s.to)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, skew int64, method, path string, body []byte, which uint8, pos uint16, to byte) {
		skew %= 400
		ts := fuzzNow.Unix() + skew
		sig, sum := client.Sign(fk.signerValue, ts, method, path, body)
		if want := sha256.Sum256(body); sum != hex.EncodeToString(want[:]) {
			t.Fatalf("client.Sign's body digest %q is not the body's SHA-256", sum)
		}
		if v := verify.Sign(fk.signerValue, ts, method, path, sum); v != sig {
			t.Fatalf("client.Sign = %s, verify.Sign = %s", sig, v)
		}
		check := func(m, p, bodySum string, ts int64) verify.Result {
			t.Helper()
			res, err := fk.ver.VerifySignature(ctx, &verify.SignedRequest{KeyID: fk.signer.ID, Timestamp: ts, Signature: sig,
				Method: m, Path: p, BodySHA256: bodySum})
			if err != nil {
				t.Fatalf("VerifySignature(%q %q): %v", m, p, err)
			}
			if res.Code != keyplane.VerifyValid && res.Code != keyplane.VerifyInvalidSignature {
				t.Fatalf("VerifySignature(%q %q) = %s", m, p, res.Code)
			}
			if res.Code == keyplane.VerifyInvalidSignature && res.Reason == "" {
				t.Fatalf("VerifySignature(%q %q): INVALID_SIGNATURE without a reason", m, p)
			}
			return res
		}

		res := check(method, path, sum, ts)
		wellFormed := verify.ValidMethod(method) && verify.ValidPath(path)
		switch {
		case !wellFormed:
			if res.Code == keyplane.VerifyValid {
				t.Fatalf("a signature over method %q and path %q verifies, but they are not well formed", method, path)
			}
		case skew > 300 || skew < -300:
			if res.Code == keyplane.VerifyValid || !strings.Contains(res.Reason, "timestamp") {
				t.Fatalf("a signature %d s off verifies: %s %q", skew, res.Code, res.Reason)
			}
		case res.Code != keyplane.VerifyValid:
			t.Fatalf("a good signature over %q %q (%d s off) is refused: %s", method, path, skew, res.Reason)
		}

		// badSig checks the answer for a changed request: refused, as a bad signature unless the
		// change made it malformed.
		badSig := func(what, m, p string, r verify.Result) {
			t.Helper()
			ok := verify.ValidMethod(m) && verify.ValidPath(p)
			if r.Code == keyplane.VerifyValid || (ok && !strings.HasPrefix(r.Reason, "bad signature")) {
				t.Fatalf("%s: %s %q, want a bad signature", what, r.Code, r.Reason)
			}
		}
		flip := func(s string) (string, bool) {
			if len(s) == 0 {
				return s + string(rune(to)), true
			}
			i := int(pos) % len(s)
			if s[i] == to {
				return s, false
			}
			return s[:i] + string([]byte{to}) + s[i+1:], true
		}
		switch which % 4 {
		case 0:
			if m, ok := flip(method); ok {
				badSig("method "+strconv.Quote(m), m, path, check(m, path, sum, ts))
			}
		case 1:
			if p, ok := flip(path); ok {
				badSig("path "+strconv.Quote(p), method, p, check(method, p, sum, ts))
			}
		case 2:
			if b, ok := flip(sum); ok {
				badSig("body digest "+b, method, path, check(method, path, b, ts))
			}
		case 3:
			badSig("timestamp+1", method, path, check(method, path, sum, ts+1))
			badSig("timestamp-1", method, path, check(method, path, sum, ts-1))
		}

		joined := method + "\n" + path
		for i := 0; i < len(joined); i++ {
			if joined[i] != '\n' || i == len(method) {
				continue
			}
			m, p := joined[:i], joined[i+1:]
			if r := check(m, p, sum, ts); r.Code == keyplane.VerifyValid {
				t.Fatalf("the signature of method %q, path %q also verifies method %q, path %q", method, path, m, p)
			}
		}
	})
}

// jwtB64 is base64url without padding, as JWTs write their segments.
func jwtB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwtVerdict is refJWT's answer: whether a token is good, and whether that is certain (a time within
// a couple of seconds of a limit, where whole-second truncation decides, is not).
type jwtVerdict struct {
	valid, certain bool
	why            string
}

// refJWT judges a token by the contract, independently of golang-jwt: three segments; a JSON header
// with alg HS256 and kid the signer's id; a JSON claims object; the HMAC-SHA256 of the first two
// segments under the signer's value; exp required, not past (with 30 s of leeway); nbf and iat, when
// given, not ahead (same leeway); exp at most an hour (and the leeway) after iat, or after now
// without one. Times are NumericDates: JSON numbers of seconds no larger in magnitude than the end
// of the year 9999 (0 counts as absent, as golang-jwt reads it).
func refJWT(token, kid, value string) (jwtVerdict, map[string]any) {
	no := func(why string) (jwtVerdict, map[string]any) { return jwtVerdict{certain: true, why: why}, nil }
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return no("segments")
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sb, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return no("base64")
	}
	var header map[string]any
	if json.Unmarshal(hb, &header) != nil || header["alg"] != "HS256" || header["kid"] != kid {
		return no("header")
	}
	claims := map[string]any{}
	if json.Unmarshal(cb, &claims) != nil {
		return no("claims JSON")
	}
	m := hmac.New(sha256.New, []byte(value))
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sb, m.Sum(nil)) {
		return no("signature")
	}
	now := float64(fuzzNow.Unix())
	date := func(name string) (float64, bool, bool) {
		v, ok := claims[name]
		if !ok {
			return 0, false, true
		}
		f, ok := v.(float64)
		if !ok {
			return 0, false, false
		}
		return f, f != 0, true
	}
	exp, hasExp, ok1 := date("exp")
	nbf, hasNbf, ok2 := date("nbf")
	iat, hasIat, ok3 := date("iat")
	if !ok1 || !ok2 || !ok3 {
		return no("a time claim that is not a number")
	}
	if !hasExp {
		return no("no exp")
	}
	if math.Abs(exp) > 253402300799 || math.Abs(nbf) > 253402300799 || math.Abs(iat) > 253402300799 {
		return no("a time after the year 9999")
	}
	verdict := jwtVerdict{valid: true, certain: true}
	// limit: the token is good only if lo < hi; within 2 s either way the truncation to whole
	// seconds decides, so the answer is not certain.
	limit := func(lo, hi float64, why string) {
		if !(lo < hi) {
			verdict.valid, verdict.why = false, why
		}
		if math.Abs(hi-lo) < 2 {
			verdict.certain = false
		}
	}
	limit(now, exp+30, "expired")
	if hasNbf {
		limit(nbf-30, now+0.5, "nbf ahead")
	}
	if hasIat {
		limit(iat-30, now+0.5, "iat ahead")
	}
	start := now
	if hasIat {
		start = iat
	}
	limit(exp-start, 3600+30+0.5, "lives too long")
	if verdict.valid {
		verdict.why = ""
	}
	return verdict, claims
}

// FuzzVerifyJWT builds a compact JWT from a fuzzed header and claims ("$KID" in the header stands for
// the signer's id, "$PLAIN" for the unrecoverable key's, "$NOW" in the claims for the clock's unix
// time), signed with the signer's value (mode 0), with another key's value (1), with a fuzzed
// signature segment (2), or takes the fuzzed text as the whole token (3), and checks VerifyJWT against
// refJWT: it never fails or panics, answers VALID only for a token refJWT finds good (and then the
// decoded claims), answers VALID for every token refJWT is certain is good, never accepts a token
// not signed with its kid's value or naming an unrecoverable key, answers NOT_FOUND only when the
// kid names no key, and always says why it refused.
func FuzzVerifyJWT(f *testing.F) {
	fk := newFuzzKeys(f)
	hs := `{"alg":"HS256","typ":"JWT","kid":"$KID"}`
	for _, s := range []struct {
		header, claims string
		mode           uint8
		raw            string
	}{
		{hs, `{"sub":"user_1","iat":$NOW,"exp":$NOW600}`, 0, ""},
		{hs, `{"exp":$NOW3000}`, 0, ""},
		{hs, `{"exp":$NOW3700}`, 0, ""},
		{hs, `{"iat":1899999000,"exp":1900000590}`, 0, ""},
		{hs, `{"exp":1899999990}`, 0, ""},
		{hs, `{"exp":1899999960}`, 0, ""},
		{hs, `{"exp":1900000600,"nbf":1900000029}`, 0, ""},
		{hs, `{"exp":1900000600,"nbf":1e19}`, 0, ""},
		{hs, `{"exp":1900000600,"nbf":9223372036000000000}`, 0, ""},
		{hs, `{"exp":1900000600,"iat":-1e300}`, 0, ""},
		{hs, `{"exp":1e19}`, 0, ""},
		{hs, `{"exp":-1e19}`, 0, ""},
		{hs, `{"exp":"1900000600"}`, 0, ""},
		{hs, `{"exp":1900000600.999999}`, 0, ""},
		{hs, `{"exp":0,"iat":0}`, 0, ""},
		{hs, `{"exp":1900000600,"exp":1}`, 0, ""},
		{hs, `{"exp":1900000600}garbage`, 0, ""},
		{hs, `null`, 0, ""},
		{hs, `[]`, 0, ""},
		{hs, `{"exp":1900000600,"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, 0, ""},
		{hs, `{"exp":1900000600,"s":"\u0000\ud800"}`, 0, ""},
		{hs, `{"exp":1900000600}`, 1, ""},
		{hs, `{"exp":1900000600}`, 2, "AAAA"},
		{`{"alg":"none","kid":"$KID"}`, `{"exp":1900000600}`, 2, ""},
		{`{"alg":"HS384","kid":"$KID"}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"hs256","kid":"$KID"}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"HS256","kid":"$PLAIN"}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"HS256","KID":"$KID"}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"HS256","kid":"$KID","kid":"apk_x"}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"HS256","kid":["$KID"]}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"HS256"}`, `{"exp":1900000600}`, 0, ""},
		{`{"alg":"HS256","kid":"apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C"}`, `{"exp":1900000600}`, 0, ""},
		{`not json`, `{}`, 0, ""},
		{"", "", 3, ""},
		{"", "", 3, "..."},
		{"", "", 3, "a.b.c.d"},
		{"", "", 3, "eyJhbGciOiJIUzI1NiJ9.e30."},
		{"", "", 3, strings.Repeat("A", 20000)},
	} {
		f.Add(s.header, s.claims, s.mode, s.raw)
	}
	ctx := context.Background()
	now := strconv.FormatInt(fuzzNow.Unix(), 10)
	claimsRepl := strings.NewReplacer("$NOW600", strconv.FormatInt(fuzzNow.Unix()+600, 10),
		"$NOW3000", strconv.FormatInt(fuzzNow.Unix()+3000, 10), "$NOW3700", strconv.FormatInt(fuzzNow.Unix()+3700, 10), "$NOW", now)
	headerRepl := strings.NewReplacer("$KID", fk.signer.ID, "$PLAIN", fk.plain.ID)
	f.Fuzz(func(t *testing.T, header, claims string, mode uint8, raw string) {
		header, claims = headerRepl.Replace(header), claimsRepl.Replace(claims)
		input := jwtB64([]byte(header)) + "." + jwtB64([]byte(claims))
		mac := func(value string) string {
			m := hmac.New(sha256.New, []byte(value))
			m.Write([]byte(input))
			return jwtB64(m.Sum(nil))
		}
		var token string
		switch mode % 4 {
		case 0:
			token = input + "." + mac(fk.signerValue)
		case 1:
			token = input + "." + mac(fk.plainValue)
		case 2:
			token = input + "." + raw
		case 3:
			token = raw
		}
		res, err := fk.ver.VerifyJWT(ctx, token, &keyplane.VerifyRequest{})
		if err != nil {
			t.Fatalf("VerifyJWT(%q): %v", token, err)
		}
		want, wantClaims := refJWT(token, fk.signer.ID, fk.signerValue)
		switch res.Code {
		case keyplane.VerifyValid:
			if !want.valid && want.certain {
				t.Fatalf("VerifyJWT(%q) = VALID; the contract refuses it (%s)", token, want.why)
			}
			if mode%4 == 1 {
				t.Fatalf("VerifyJWT(%q) = VALID for a token signed with another key's value", token)
			}
			if res.Key == nil || res.Key.ID != fk.signer.ID {
				t.Fatalf("VerifyJWT(%q) = VALID for key %v", token, res.Key)
			}
			if want.valid && !reflect.DeepEqual(map[string]any(res.Claims), wantClaims) {
				t.Fatalf("VerifyJWT(%q) claims %v, want %v", token, res.Claims, wantClaims)
			}
		case keyplane.VerifyInvalidSignature:
			if res.Reason == "" {
				t.Fatalf("VerifyJWT(%q) = INVALID_SIGNATURE without a reason", token)
			}
			if want.valid && want.certain {
				t.Fatalf("VerifyJWT(%q) refuses a good token: %s", token, res.Reason)
			}
		case keyplane.VerifyNotFound:
			var h map[string]any
			if p, _, ok := strings.Cut(token, "."); ok {
				if b, err := base64.RawURLEncoding.DecodeString(p); err == nil && json.Unmarshal(b, &h) == nil {
					if kid := h["kid"]; kid == fk.signer.ID || kid == fk.plain.ID {
						t.Fatalf("VerifyJWT(%q) = NOT_FOUND, but its kid %v names a key", token, kid)
					}
				}
			}
			if want.valid && want.certain {
				t.Fatalf("VerifyJWT(%q) = NOT_FOUND for a good token", token)
			}
		default:
			t.Fatalf("VerifyJWT(%q) = %s", token, res.Code)
		}
	})
}
