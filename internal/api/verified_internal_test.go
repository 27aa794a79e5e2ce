package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/verify"
)

// TestWriteVerifiedMatchesEncodingJSON: the hand-written answers of the hot path are byte for byte
// what encoding/json writes, for keys with every kind of field, odd characters included.
func TestWriteVerifiedMatchesEncodingJSON(t *testing.T) {
	exp := time.Date(2026, 12, 31, 23, 59, 59, 123456000, time.UTC)
	keys := []*keyplane.APIKey{
		{ID: "apk_1", WorkspaceID: "ws_1", Name: "plain", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive},
		{ID: "apk_2", WorkspaceID: "ws_1", Name: `<b>"Müller" & Söhne</b> \ ` + "\u2028\t", KeyType: keyplane.KeyTypePublishable,
			Environment: keyplane.EnvTest, Permissions: []string{"orders:read", "orders:write"},
			Meta: json.RawMessage(`{ "currency" : "fiat",  "tier": [1, 2], "html": "<x>" }`), ExpiresAt: &exp},
		{ID: "apk_3", WorkspaceID: "ws_2", Name: "empty lists", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive,
			Permissions: []string{}, Meta: json.RawMessage(`{}`)},
		{ID: "apk_4", WorkspaceID: "ws_2", Name: "compact meta", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive,
			Permissions: []string{"a", "b:c"}, Meta: json.RawMessage(`{"a":"x y","q":"say \"hi\" \\","n":[1,2.5e3,null,true]}`), ExpiresAt: &exp},
		{ID: "apk_5", WorkspaceID: "ws_2", Name: "odd permission", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive,
			Permissions: []string{"a&b"}, Meta: json.RawMessage(`{"a":"\u003c"}`)},
		{ID: "apk_6", WorkspaceID: "ws_2", Name: "é", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive, Meta: json.RawMessage(`{"a":1 }`)},
		{ID: "apk_7", WorkspaceID: "ws_2", Name: "non-ASCII meta", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive, Meta: json.RawMessage(`{"a":"\u2028` + "\u2028" + `"}`)},
	}
	rl := &rateLimitState{Limit: 100, Remaining: 0, ResetAt: keyplane.FormatTime(exp)}
	var answers []verifyAnswer
	for _, code := range []keyplane.VerifyCode{keyplane.VerifyNotFound} {
		answers = append(answers, verifyAnswer{Valid: false, Code: code})
	}
	for _, k := range keys {
		ck := keyplane.Compile(k)
		for _, code := range []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyRevoked, keyplane.VerifyRateLimited} {
			a := verifyAnswer{Valid: code == keyplane.VerifyValid, Code: code, key: ck}
			answers = append(answers, a)
			with := a
			with.rateLimit = rl
			answers = append(answers, with)
		}
	}
	// Usage-based answers: limit decisions, credits, an identity (plain, and one that needs escaping).
	var limits verify.Decisions
	for i, name := range []string{"default", "burst", "tokens.v2:x", "d", "e", "f"} {
		limits.Add(verify.LimitDecision{Name: name, Decision: ratelimit.Decision{Allowed: i < 5, Limit: int64(10 * i), Remaining: int64(i),
			ResetAt: exp.Add(time.Duration(i) * time.Second).In(time.FixedZone("x", 3600))}})
	}
	var one verify.Decisions
	one.Add(verify.LimitDecision{Name: "default", Decision: ratelimit.Decision{Allowed: true, Limit: 5, Remaining: 4, ResetAt: exp}})
	identities := []*keyplane.Identity{
		nil,
		{ID: "idn_1", ExternalID: "cus_1", Meta: json.RawMessage(`{"plan":"pro"}`)},
		{ID: "idn_2", ExternalID: `<Müller & "Söhne">` + " ", Meta: json.RawMessage(`{ "a" : "<b>" }`)},
		{ID: "idn_3", ExternalID: "x"},
	}
	for _, idn := range identities {
		for _, k := range keys[:2] {
			k := *k
			k.Identity = idn
			ck := keyplane.Compile(&k)
			for _, ls := range []verify.Decisions{{}, one, limits} {
				for _, credits := range []int64{-1, 0, 1_000_000_000_000} {
					a := verifyAnswer{Valid: true, Code: keyplane.VerifyValid, key: ck, limits: ls}
					if credits >= 0 {
						a.hasCredits, a.credits = true, credits
					}
					if ls.Len() > 0 {
						a.rateLimit = rl
					}
					answers = append(answers, a)
				}
			}
		}
	}
	for i, a := range answers {
		fast := httptest.NewRecorder()
		writeVerified(fast, a)
		slow := httptest.NewRecorder()
		writeData(slow, http.StatusOK, a.withKey())
		if fast.Body.String() != slow.Body.String() {
			t.Errorf("answer %d:\n fast %s\n json %s", i, fast.Body, slow.Body)
		}
		if fast.Code != 200 || fast.Header().Get("Content-Type") != "application/json" || fast.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("answer %d: status %d, headers %v", i, fast.Code, fast.Header())
		}
	}
	// Twice from the same compiled key: the memoized part is reused, not appended to.
	a := answers[1]
	for range 2 {
		w := httptest.NewRecorder()
		writeVerified(w, a)
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("not JSON: %s", w.Body)
		}
	}
}

// TestDecodeKeyOnly: the fast path reads exactly what encoding/json would, and leaves every other
// body to it.
func TestDecodeKeyOnly(t *testing.T) {
	const key = "kp_sk_live_0123456789abcdefghijABCDEFGHIJklmnop00AbCd"
	cases := []struct {
		body string
		fast bool
	}{
		{`{"key":"` + key + `"}`, true},
		{" \r\n\t{ \"key\" :\t\"" + key + "\" }\n", true},
		{`{"key":""}`, true},
		{`{"key":"` + key + `","permissions":["orders:read"]}`, false},
		{`{"KEY":"` + key + `"}`, false},    // encoding/json matches names without case
		{`{"key":"kp\u005fsk"}`, false},     // an escape
		{`{"key":"kp-sk"}`, false},          // another character
		{`{"key":"` + key + `"}{}`, false},  // data after the object
		{`{"key":"` + key + `" , }`, false}, // not JSON
		{`{"key":"` + key, false},           // cut short
		{`{"key":` + `123}`, false},         // not a string
		{`{"key":"a","key":"b"}`, false},    // a repeated name
		{`{"key":"abc "}`, false},           // white space inside the string is part of the key
		{`{"key":" abc"}`, false},
		{"{\"key\":\"\t\"}", false},
		{`{"key":"` + key + `"} x`, false}, // junk after
		{`["key"]`, false},
	}
	for _, c := range cases {
		var fast verifyRequest
		got := fast.decodeKeyOnly([]byte(c.body))
		if got != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.body, got, c.fast)
		}
		if got {
			var slow verifyRequest
			dec := json.NewDecoder(strings.NewReader(c.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&slow); err != nil || slow.Key != fast.Key || fast.Permissions != nil || fast.IP != "" {
				t.Errorf("%q: fast read %+v, encoding/json %+v (%v)", c.body, fast, slow, err)
			}
		}
	}
}

// FuzzAppendVerifiedKey: the hand-appended part of an answer is what encoding/json makes, for any
// name, permission and (valid) meta.
func FuzzAppendVerifiedKey(f *testing.F) {
	f.Add("plain", "orders:read", `{}`)
	f.Add(`a"b`, "x&y", `{"a":"x y"}`)
	f.Add("tab\t", "p", `{ "a" : 1 }`)
	f.Add("ok", "ok", `{"a":"\"<\\"}`)
	f.Add("\xff", "\u2028", `{"a":[1,{"b":null}]}`)
	f.Fuzz(func(t *testing.T, name, perm, meta string) {
		if !json.Valid([]byte(meta)) || !strings.HasPrefix(strings.TrimSpace(meta), "{") {
			return // the store holds only validated objects
		}
		k := &keyplane.APIKey{ID: "apk_1", WorkspaceID: "ws_1", Name: name, KeyType: keyplane.KeyTypeSecret,
			Environment: keyplane.EnvLive, Permissions: []string{perm}, Meta: json.RawMessage(meta)}
		got := string(appendVerifiedKey(nil, keyplane.Compile(k)))
		if want := string(encodeVerifiedKey(keyplane.Compile(k))); got != want {
			t.Fatalf("appended %s\nencoding/json %s", got, want)
		}
	})
}
