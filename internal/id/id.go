// Package id makes resource ids: a type prefix and 26 Crockford base32 characters encoding a 48-bit
// millisecond timestamp and 80 random bits, so that ids sort by creation time.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Prefixes of the contract.
const (
	Workspace = "ws"
	APIKey    = "apk"
	Webhook   = "whk"
	Event     = "evt"
	Delivery  = "dlv"
	Audit     = "aud"
	Request   = "req"
	User      = "usr"
	RootKey   = "rk"
)

// New returns a new id of the given type, e.g. New(APIKey) = "apk_01JD…".
func New(prefix string) string { return NewAt(prefix, time.Now()) }

// NewAt returns a new id whose time part is t.
func NewAt(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	rand.Read(b[6:])
	out := make([]byte, 0, len(prefix)+1+26)
	out = append(out, prefix...)
	out = append(out, '_')
	// 128 bits as 26 base32 digits: the first digit carries the top 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var d [26]byte
	for i := 25; i >= 0; i-- {
		d[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(append(out, d[:]...))
}

// Valid reports whether s looks like an id of the given type. It lets handlers answer 404 for junk
// without a storage read, and keeps hostile strings out of queries and logs.
func Valid(prefix, s string) bool {
	if len(s) != len(prefix)+1+26 || s[:len(prefix)] != prefix || s[len(prefix)] != '_' {
		return false
	}
	for i := len(prefix) + 1; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}
