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
	// PreviousFileName holds the key a rotation replaced, which still opens values not re-sealed yet.
	PreviousFileName = "master.key.previous"
)

// Box seals with one master key and opens with it or with the previous keys it was given, told apart
// by the key id each sealed value carries: after a rotation, values sealed with the old key still
// open until they are re-sealed.
type Box struct {
	aead     cipher.AEAD
	id       [idLen]byte
	previous []*Box
}

// New returns a Box sealing with a 32-byte key and also opening with the previous ones.
func New(key []byte, previous ...[]byte) (*Box, error) {
	b, err := newBox(key)
	if err != nil {
		return nil, err
	}
	for _, p := range previous {
		pb, err := newBox(p)
		if err != nil {
			return nil, fmt.Errorf("previous %w", err)
		}
		if pb.id != b.id {
			b.previous = append(b.previous, pb)
		}
	}
	return b, nil
}

func newBox(key []byte) (*Box, error) {
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
	made, err := createKeyFile(dir, path, k)
	if err != nil {
		return nil, false, err
	}
	if !made {
		// Another start made it first: its key is the one.
		return LoadOrCreate("", dir)
	}
	return k, true, nil
}

// createKeyFile writes key to path unless path exists, and reports whether it did. The file appears
// whole or not at all: it is written and synced under a temporary name, then hard-linked to path,
// which fails if path exists. Writing path itself (O_EXCL, then the key) let another start read it
// empty, and a start killed in between left an empty key file that no later start could read.
func createKeyFile(dir, path string, key []byte) (bool, error) {
	f, err := os.CreateTemp(dir, "."+FileName+".new-*") // mode 0600
	if err != nil {
		return false, fmt.Errorf("create master key: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return false, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write master key: %w", err)
	}
	err = os.Link(f.Name(), path)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create master key (the data dir's file system must allow hard links, or set KEYPLANE_MASTER_KEY): %w", err)
	}
	// The new name must outlive a power cut too, or the next start would make another key.
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return false, fmt.Errorf("sync data dir: %w", err)
		}
	}
	return true, nil
}

// LoadPrevious returns the previous master key given in base64 (KEYPLANE_MASTER_KEY_PREVIOUS) or, when
// that is empty, the one in dir's previous key file; nil when there is none.
func LoadPrevious(encoded, dir string) ([]byte, error) {
	if encoded != "" {
		return Parse(encoded)
	}
	path := filepath.Join(dir, PreviousFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read previous master key: %w", err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Rotate replaces the master key file in dir with a new random key, keeping the old one in the
// previous key file (replacing any older one), each written to a temporary file, synced and renamed
// into place. It returns the new key and the old one.
func Rotate(dir string) (newKey, oldKey []byte, err error) {
	oldKey, _, err = LoadOrCreate("", dir)
	if err != nil {
		return nil, nil, err
	}
	newKey = make([]byte, 32)
	rand.Read(newKey)
	if err := writeKeyFile(filepath.Join(dir, PreviousFileName), oldKey); err != nil {
		return nil, nil, err
	}
	if err := writeKeyFile(filepath.Join(dir, FileName), newKey); err != nil {
		return nil, nil, err
	}
	return newKey, oldKey, nil
}

// writeKeyFile writes key in base64 to path, mode 0600, atomically.
func writeKeyFile(path string, key []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
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

// Current reports whether sealed was sealed with the key this Box seals with: a rotation re-seals the
// values for which it is false.
func (b *Box) Current(sealed []byte) bool {
	return len(sealed) > 1+idLen && sealed[0] == version && string(sealed[1:1+idLen]) == string(b.id[:])
}

// Open decrypts a value sealed by Seal with the same ad, with whichever of the Box's keys sealed it.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	head := 1 + idLen + b.aead.NonceSize()
	if len(sealed) < head+b.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("masterkey: malformed sealed value")
	}
	if string(sealed[1:1+idLen]) != string(b.id[:]) {
		for _, p := range b.previous {
			if string(sealed[1:1+idLen]) == string(p.id[:]) {
				return p.Open(sealed, ad)
			}
		}
		return nil, ErrWrongKey
	}
	pt, err := b.aead.Open(nil, sealed[1+idLen:head], sealed[head:], ad)
	if err != nil {
		return nil, fmt.Errorf("masterkey: %w", err)
	}
	return pt, nil
}
