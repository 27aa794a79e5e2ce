package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
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
