// Package secretscan checks what GitHub's secret scanning partner program sends: each batch of found
// tokens is signed with ECDSA P-256 over SHA-256 by one of GitHub's published keys, which the
// operator keeps in a file of GitHub's own JSON shape (--github-scanning-keys).
package secretscan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrSignature is every way a batch can fail its check: no signature, one that is not base64 or not
// ASN.1, an unknown key identifier, a body changed after signing. The endpoint answers them alike.
var ErrSignature = errors.New("secretscan: bad signature")

// maxKeysFile bounds the keys file: GitHub's holds a handful of keys.
const maxKeysFile = 1 << 20

// Keys are GitHub's public keys by identifier.
type Keys struct {
	byID map[string]*ecdsa.PublicKey
}

// keysFile is GitHub's published shape, https://api.github.com/meta/public_keys/secret_scanning.
type keysFile struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// LoadKeys reads a keys file. Every key must be a PEM "PUBLIC KEY" holding an ECDSA P-256 key, and
// at least one must be there: a file that holds none would make the endpoint refuse every batch
// without saying why.
func LoadKeys(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("github scanning keys: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeysFile+1))
	if err != nil {
		return nil, fmt.Errorf("github scanning keys: %w", err)
	}
	if len(b) > maxKeysFile {
		return nil, fmt.Errorf("github scanning keys %s: larger than %d bytes", path, maxKeysFile)
	}
	k, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("github scanning keys %s: %w", path, err)
	}
	return k, nil
}

// ParseKeys parses GitHub's JSON. Keys that are not current still count: GitHub signs with the
// current one, and batches signed just before a rotation must still pass.
func ParseKeys(b []byte) (*Keys, error) {
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not GitHub's public keys JSON: %w", err)
	}
	k := &Keys{byID: map[string]*ecdsa.PublicKey{}}
	for i, e := range f.PublicKeys {
		if e.KeyIdentifier == "" {
			return nil, fmt.Errorf("public_keys[%d]: no key_identifier", i)
		}
		block, _ := pem.Decode([]byte(e.Key))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public_keys[%d] (%s): key is not a PEM PUBLIC KEY", i, e.KeyIdentifier)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_keys[%d] (%s): %w", i, e.KeyIdentifier, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("public_keys[%d] (%s): not an ECDSA P-256 key", i, e.KeyIdentifier)
		}
		k.byID[e.KeyIdentifier] = ec
	}
	if len(k.byID) == 0 {
		return nil, errors.New("no public_keys")
	}
	return k, nil
}

// Verify checks that signature (base64 of an ASN.1 DER ECDSA signature, the Github-Public-Key-
// Signature header) signs body under the key named keyID (Github-Public-Key-Identifier).
func (k *Keys) Verify(keyID, signature string, body []byte) error {
	if k == nil || keyID == "" || signature == "" || len(signature) > 512 {
		return ErrSignature
	}
	pub, ok := k.byID[keyID]
	if !ok {
		return ErrSignature
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrSignature
	}
	sum := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return ErrSignature
	}
	return nil
}
