package secretscan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func keyFile(t *testing.T, keys map[string]*ecdsa.PrivateKey) []byte {
	t.Helper()
	var f keysFile
	for id, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		f.PublicKeys = append(f.PublicKeys, struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		}{id, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), true})
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t *testing.T, k *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func TestVerify(t *testing.T) {
	a, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, keyFile(t, map[string]*ecdsa.PrivateKey{"ka": a, "kb": b}), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"token":"x","type":"t","url":"u","source":"commit"}]`)
	good := sign(t, a, body)
	if err := keys.Verify("ka", good, body); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if err := keys.Verify("kb", sign(t, b, body), body); err != nil {
		t.Fatalf("the other key's good signature: %v", err)
	}
	bad := map[string][3]string{
		"no signature":           {"ka", "", string(body)},
		"no identifier":          {"", good, string(body)},
		"unknown identifier":     {"kc", good, string(body)},
		"another key's id":       {"kb", good, string(body)},
		"body changed":           {"ka", good, strings.Replace(string(body), `"x"`, `"y"`, 1)},
		"not base64":             {"ka", "!!!" + good, string(body)},
		"base64 of garbage":      {"ka", base64.StdEncoding.EncodeToString([]byte("garbage")), string(body)},
		"a huge header":          {"ka", strings.Repeat("A", 10000), string(body)},
		"signature of the empty": {"ka", sign(t, a, nil), string(body)},
	}
	for name, c := range bad {
		if err := keys.Verify(c[0], c[1], []byte(c[2])); err != ErrSignature {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	var none *Keys
	if err := none.Verify("ka", good, body); err != ErrSignature {
		t.Errorf("no keys: %v", err)
	}
}

func TestParseKeysRefuses(t *testing.T) {
	rsaish := `{"public_keys":[{"key_identifier":"k","key":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n","is_current":true}]}`
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, in := range map[string]string{
		"not JSON":      "nope",
		"no keys":       `{"public_keys":[]}`,
		"no identifier": `{"public_keys":[{"key":"x"}]}`,
		"not PEM":       `{"public_keys":[{"key_identifier":"k","key":"x"}]}`,
		"truncated key": rsaish,
		"not P-256":     string(keyFile(t, map[string]*ecdsa.PrivateKey{"k": p384})),
	} {
		if _, err := ParseKeys([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := LoadKeys(filepath.Join(t.TempDir(), "absent.json")); err == nil {
		t.Error("an absent file loaded")
	}
}

// TestFileFollowsRotation: a key added to the file is picked up when a batch names it, at most once
// per reloadEvery; a file that stops parsing leaves the keys as they were.
func TestFileFollowsRotation(t *testing.T) {
	a, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, keyFile(t, map[string]*ecdsa.PrivateKey{"ka": a}), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.now = func() time.Time { return now }
	body := []byte(`[]`)
	if err := f.Verify("ka", sign(t, a, body), body); err != nil {
		t.Fatal(err)
	}
	// GitHub rotates: the operator saves the new document.
	if err := os.WriteFile(path, keyFile(t, map[string]*ecdsa.PrivateKey{"ka": a, "kb-new": b}), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, now.Add(time.Minute), now.Add(time.Minute))
	if err := f.Verify("kb-new", sign(t, b, body), body); err != nil {
		t.Fatalf("the new key after the file changed: %v", err)
	}
	// Unknown ids do not read the file more than once per reloadEvery.
	os.WriteFile(path, []byte("half written"), 0o600)
	os.Chtimes(path, now.Add(2*time.Minute), now.Add(2*time.Minute))
	if err := f.Verify("nope", sign(t, b, body), body); err != ErrSignature {
		t.Fatal(err)
	}
	if !f.checked.Equal(now) {
		t.Fatal("the file was looked at again within reloadEvery")
	}
	now = now.Add(reloadEvery)
	if err := f.Verify("nope", sign(t, b, body), body); err != ErrSignature {
		t.Fatal(err)
	}
	if err := f.Verify("kb-new", sign(t, b, body), body); err != nil {
		t.Fatalf("a file that stopped parsing lost the keys: %v", err)
	}
}
