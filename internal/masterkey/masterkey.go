// Package masterkey seals recoverable values (publishable keys, recoverable secret keys) with the
// deployment's master key: AES-256-GCM, a fresh random nonce per value, and associated data that binds
// a ciphertext to the record it belongs to, so that a sealed value copied onto another key's row does
// not open. The master key's id travels in the ciphertext so that a rotation can tell old from new.
package masterkey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	version = 1
	idLen   = 8
	// FileName is the master key file created in the data dir when no key is configured.
	FileName = "master.key"
)

// Box seals and opens values with one master key.
type Box struct {
	aead cipher.AEAD
	id   [idLen]byte
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("master key: want 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	b := &Box{aead: aead}
	sum := sha256.Sum256(append([]byte("keyplane master key id\x00"), key...))
	copy(b.id[:], sum[:idLen])
	return b, nil
}

// Parse decodes a base64 master key (standard or URL alphabet, padded or not).
func Parse(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("master key: base64 of %d bytes, want 32", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("master key: not base64")
}

// LoadOrCreate returns the key given in base64 (from KEYPLANE_MASTER_KEY) or, when that is empty, the
// one in dir's key file, creating the file (mode 0600) on first start. created reports a new file.
func LoadOrCreate(encoded, dir string) (key []byte, created bool, err error) {
	if encoded != "" {
		k, err := Parse(encoded)
		return k, false, err
	}
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := Parse(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read master key: %w", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	// O_EXCL: two processes starting at once must not each write their own key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreate("", dir)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write master key: %w", err)
	}
	return k, true, f.Close()
}

// Seal encrypts plaintext bound to ad: version | key id | nonce | ciphertext+tag.
func (b *Box) Seal(plaintext, ad []byte) []byte {
	out := make([]byte, 1+idLen+b.aead.NonceSize(), 1+idLen+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	out[0] = version
	copy(out[1:], b.id[:])
	nonce := out[1+idLen:]
	rand.Read(nonce)
	return b.aead.Seal(out, nonce, plaintext, ad)
}

// ErrWrongKey says a value was sealed with another master key.
var ErrWrongKey = errors.New("masterkey: sealed with another master key")

// Open decrypts a value sealed by Seal with the same ad.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	head := 1 + idLen + b.aead.NonceSize()
	if len(sealed) < head+b.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("masterkey: malformed sealed value")
	}
	if string(sealed[1:1+idLen]) != string(b.id[:]) {
		return nil, ErrWrongKey
	}
	pt, err := b.aead.Open(nil, sealed[1+idLen:head], sealed[head:], ad)
	if err != nil {
		return nil, fmt.Errorf("masterkey: %w", err)
	}
	return pt, nil
}
