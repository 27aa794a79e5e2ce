package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// verify is a receiver written from the Standard Webhooks specification alone, sharing no code with
// the package: it is what a customer's endpoint would do.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, tsText, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" {
		return errors.New("missing headers")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Unix() - ts; d > 300 || d < -300 {
		return errors.New("timestamp outside tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + tsText + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, enc, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// The published Standard Webhooks test vector.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignKnownVector(t *testing.T) {
	key, err := DecodeSecret(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	// By hand, straight from the spec's definition.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(vecID + ".1614265330." + vecBody))
	if hand := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); hand != vecSig {
		t.Fatalf("hand computation %q differs from the published vector %q", hand, vecSig)
	}
	if got := Sign(key, vecID, vecTS, []byte(vecBody)); got != vecSig {
		t.Fatalf("Sign = %q, want %q", got, vecSig)
	}
	h := http.Header{}
	Headers(h, [][]byte{key}, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if got := h.Get("webhook-signature"); got != vecSig {
		t.Fatalf("webhook-signature = %q, want %q", got, vecSig)
	}
	if err := verify(vecSecret, h, []byte(vecBody), time.Unix(vecTS+299, 0)); err != nil {
		t.Fatalf("independent verifier: %v", err)
	}
	if err := verify(vecSecret, h, []byte(vecBody), time.Unix(vecTS+301, 0)); err == nil {
		t.Fatal("verifier accepted a timestamp 301 s old; the test's verifier is broken")
	}
}

func TestHeadersTwoSecrets(t *testing.T) {
	oldS, newS := NewSecret(), NewSecret()
	oldK, err := DecodeSecret(oldS)
	if err != nil {
		t.Fatal(err)
	}
	newK, err := DecodeSecret(newS)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"api_key.created","data":{"id":"key_1"}}`)
	now := time.Now()
	h := http.Header{}
	Headers(h, [][]byte{newK, oldK}, "msg_1", now, body)

	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := h.Get("webhook-timestamp"); got != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want %d", got, now.Unix())
	}
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	if len(sigs) != 2 || sigs[0] == sigs[1] {
		t.Fatalf("webhook-signature = %q, want two different signatures", h.Get("webhook-signature"))
	}
	for _, s := range []string{oldS, newS} {
		if err := verify(s, h, body, now); err != nil {
			t.Errorf("secret %s: %v", s[:10], err)
		}
	}
	if err := verify(NewSecret(), h, body, now); err == nil {
		t.Error("an unrelated secret verified")
	}
	if err := verify(newS, h, append(body, ' '), now); err == nil {
		t.Error("a changed body verified")
	}
	if got := SignatureHeader(nil, "msg_1", 1, body); got != "" {
		t.Errorf("SignatureHeader(no secrets) = %q", got)
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecret()
	if !strings.HasPrefix(s, SecretPrefix) || len(s) != len(SecretPrefix)+44 {
		t.Fatalf("NewSecret = %q: wrong shape", s)
	}
	k, err := DecodeSecret(s)
	if err != nil || len(k) != 32 {
		t.Fatalf("DecodeSecret(NewSecret()) = %d bytes, %v", len(k), err)
	}
	if NewSecret() == s {
		t.Fatal("two secrets are equal")
	}
	for _, tc := range []struct{ in, want string }{
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"},
		{"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"},
		{"whsec_not base64!", "not valid base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), "at least 24 bytes"},
		{"whsec_", "at least 24 bytes"},
	} {
		if _, err := DecodeSecret(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeSecret(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	if k, err := DecodeSecret("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 24))); err != nil || len(k) != 24 {
		t.Errorf("24-byte secret: %d bytes, %v", len(k), err)
	}
}
