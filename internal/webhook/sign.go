package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint secret, as Standard Webhooks libraries expect, so receivers can
// pass the secret to those libraries unchanged.
const SecretPrefix = "whsec_"

// minSecretBytes is the Standard Webhooks lower bound on key size; shorter keys are refused rather
// than silently accepted so that an imported secret is never weaker than the spec allows.
const minSecretBytes = 24

// NewSecret returns a new endpoint secret: SecretPrefix followed by 32 random bytes in standard
// base64 with padding.
func NewSecret() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails since Go 1.24 (it crashes the program instead).
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// DecodeSecret returns the HMAC key of a secret written as SecretPrefix + base64.
func DecodeSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook secret must start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("webhook secret is not valid base64 after " + SecretPrefix)
	}
	if len(key) < minSecretBytes {
		return nil, errors.New("webhook secret must decode to at least " + strconv.Itoa(minSecretBytes) + " bytes")
	}
	return key, nil
}

// Sign returns one Standard Webhooks signature, "v1," + base64(HMAC-SHA256(secret, msgID.timestamp.body)).
func Sign(secret []byte, msgID string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignatureHeader returns the webhook-signature value for several secrets, separated by spaces, so that
// during a secret rotation receivers holding either the old or the new secret can verify.
func SignatureHeader(secrets [][]byte, msgID string, ts int64, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = Sign(s, msgID, ts, body)
	}
	return strings.Join(sigs, " ")
}

// Headers sets the Standard Webhooks headers of a delivery in h. The timestamp is sent in whole
// seconds, and the signature is computed over that same rounded value so that it verifies.
func Headers(h http.Header, secrets [][]byte, msgID string, ts time.Time, body []byte) {
	unix := ts.Unix()
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", strconv.FormatInt(unix, 10))
	h.Set("webhook-signature", SignatureHeader(secrets, msgID, unix, body))
	h.Set("Content-Type", "application/json")
}
