// Package id makes resource ids: a type prefix and 26 Crockford base32 characters encoding a 48-bit
// millisecond timestamp and 80 random bits, so that ids sort by creation time.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
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
	Identity  = "idn"
)

// New returns a new id of the given type, e.g. New(APIKey) = "apk_01JD…".
func New(prefix string) string { return NewAt(prefix, time.Now()) }

// NewAt returns a new id whose time part is t.
func NewAt(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	rand.Read(b[6:])
	return encode(prefix, &b)
}

// RandomSize is how many random bytes an id holds: 80 bits.
const RandomSize = 10

// NewAtWith returns an id whose time part is t and whose random part is the first RandomSize bytes of
// random, which must come from crypto/rand: for callers that make many ids at once (the request log)
// and read the randomness of all of them in one call.
func NewAtWith(prefix string, t time.Time, random []byte) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	copy(b[6:], random[:RandomSize])
	return encode(prefix, &b)
}

// Floor returns the smallest id of the given type whose time part is t's millisecond: every id
// NewAt(prefix, u) with u at or after that millisecond sorts at or after it, and every earlier one
// before it. Stores use it to turn a time range into a range of ids, which their indexes serve.
func Floor(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	return encode(prefix, &b)
}

// encode writes prefix, '_' and the 128 bits of b as 26 Crockford base32 digits.
func encode(prefix string, b *[16]byte) string {
	// 128 bits as 26 base32 digits: the first digit carries the top 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var d [26]byte
	for i := 25; i >= 0; i-- {
		d[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	// One allocation: the Builder hands over its buffer as the string.
	var out strings.Builder
	out.Grow(len(prefix) + 1 + len(d))
	out.WriteString(prefix)
	out.WriteByte('_')
	out.Write(d[:])
	return out.String()
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

// Time returns the millisecond of an id of the given type (its time part, as NewAt wrote it), and
// false when s is not such an id, or names a millisecond past 48 bits (a first digit past 7), which
// no id of NewAt or Floor does: read back through Floor, it would wrap to a time before the epoch.
func Time(prefix, s string) (time.Time, bool) {
	if !Valid(prefix, s) {
		return time.Time{}, false
	}
	// The first ten digits are 50 bits: two that are always zero, then the 48-bit millisecond.
	var ms int64
	for _, c := range []byte(s[len(prefix)+1 : len(prefix)+11]) {
		ms = ms<<5 | int64(strings.IndexByte(crockford, c))
	}
	if ms >= 1<<48 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}
