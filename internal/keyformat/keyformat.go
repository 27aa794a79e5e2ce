// Package keyformat generates and parses key values:
// {prefix}_{sk|pk}_{live|test}_{random}{checksum} and {prefix}_root_{random}{checksum}, where random is
// 32 base62 characters and checksum is the CRC32 (IEEE) of everything before it, in 6 base62 digits.
// A value that does not parse or whose checksum fails can be refused without a storage read.
package keyformat

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"regexp"
)

const (
	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// RandomLen is the number of random base62 characters: 32 × log2(62) ≈ 190 bits.
	RandomLen = 32
	// ChecksumLen is the number of base62 characters of the CRC32 checksum.
	ChecksumLen = 6
	// MaxPrefixLen bounds the deployment's prefix.
	MaxPrefixLen = 16
	// MaxLen is the longest value Parse considers, so hostile input is refused before any work.
	MaxLen = MaxPrefixLen + len("_sk_live_") + RandomLen + ChecksumLen
)

var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)

// ValidPrefix reports whether p may be a deployment's key prefix: 1–16 lower-case letters and digits,
// starting with a letter, so that a value's parts stay unambiguous.
func ValidPrefix(p string) bool { return prefixPattern.MatchString(p) }

// ErrMalformed is returned by Parse for anything that is not a well-formed value with a good checksum.
var ErrMalformed = errors.New("keyformat: malformed key")

// Kind is what a value is: an API key of a type and environment, or a root key.
type Kind struct {
	Root        bool
	Publishable bool   // "pk" rather than "sk"
	Environment string // "live" or "test"; empty for root keys
}

// Generate returns a new API key value: typ is "sk" or "pk", env "live" or "test".
func Generate(prefix, typ, env string) string {
	return generate(prefix + "_" + typ + "_" + env + "_")
}

// GenerateRoot returns a new root key value.
func GenerateRoot(prefix string) string {
	return generate(prefix + "_root_")
}

func generate(head string) string {
	b := make([]byte, 0, len(head)+RandomLen+ChecksumLen)
	b = append(b, head...)
	b = append(b, randomBase62(RandomLen)...)
	b = appendChecksum(b, crc32.ChecksumIEEE(b))
	return string(b)
}

// randomBase62 draws n characters uniformly from the alphabet by rejection sampling, so that no
// character is likelier than another.
func randomBase62(n int) []byte {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:]) // never fails on supported platforms
		for _, c := range buf {
			if c < 248 { // 248 = 4 × 62
				out = append(out, alphabet[c%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return out
}

func appendChecksum(b []byte, sum uint32) []byte {
	var digits [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		digits[i] = alphabet[sum%62]
		sum /= 62
	}
	return append(b, digits[:]...)
}

// Checksum returns the base62 checksum of head, as it is appended to a value.
func Checksum(head string) string {
	return string(appendChecksum(nil, crc32.ChecksumIEEE([]byte(head))))
}

// Parse checks v's shape and checksum for the deployment's prefix without allocating.
func Parse(prefix, v string) (Kind, error) {
	var k Kind
	if len(v) > MaxLen || len(v) < len(prefix)+1 || v[:len(prefix)] != prefix || v[len(prefix)] != '_' {
		return k, ErrMalformed
	}
	rest := v[len(prefix)+1:]
	switch {
	case len(rest) == len("root_")+RandomLen+ChecksumLen && rest[:5] == "root_":
		k.Root = true
		rest = rest[5:]
	case len(rest) == len("sk_live_")+RandomLen+ChecksumLen && rest[2] == '_' && rest[7] == '_':
		switch rest[:2] {
		case "sk":
		case "pk":
			k.Publishable = true
		default:
			return k, ErrMalformed
		}
		switch rest[3:7] {
		case "live":
			k.Environment = "live"
		case "test":
			k.Environment = "test"
		default:
			return k, ErrMalformed
		}
		rest = rest[8:]
	default:
		return k, ErrMalformed
	}
	for i := 0; i < len(rest); i++ {
		if !isBase62(rest[i]) {
			return k, ErrMalformed
		}
	}
	headLen := len(v) - ChecksumLen
	sum := crcString(v[:headLen])
	var want [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		want[i] = alphabet[sum%62]
		sum /= 62
	}
	if string(want[:]) != v[headLen:] {
		return k, ErrMalformed
	}
	return k, nil
}

// crcString is crc32.ChecksumIEEE over a string without converting it to []byte: the standard
// function calls through a function value, which makes its argument escape to the heap.
func crcString(s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// Hash returns the SHA-256 digest under which a value is stored.
func Hash(v string) [32]byte {
	if len(v) <= MaxLen {
		var buf [MaxLen]byte // on the stack: the verification hot path allocates nothing here
		return sha256.Sum256(buf[:copy(buf[:], v)])
	}
	return sha256.Sum256([]byte(v))
}

// Start returns the part of v that may be shown: its type prefix and four random characters.
func Start(prefix, v string) string {
	k, err := Parse(prefix, v)
	if err != nil {
		return ""
	}
	n := len(prefix) + 1 + len("root_")
	if !k.Root {
		n = len(prefix) + 1 + len("sk_live_")
	}
	return v[:n+4]
}

// End returns the last four characters of v.
func End(v string) string {
	if len(v) < 4 {
		return ""
	}
	return v[len(v)-4:]
}

// Keys migrated in from another system keep the values their holders already have, whatever their
// shape. They are bounded all the same: long enough not to be guessed, short enough that hostile input
// costs little, and printable ASCII without spaces, so that they travel in an HTTP header as they are.
const (
	MinImportedLen = 16
	MaxImportedLen = 256
)

// ValidImported reports whether v may be an imported value (see MinImportedLen). Verification asks it
// before hashing a value without keyplane's format: one that fails it was never stored.
func ValidImported(v string) bool {
	if len(v) < MinImportedLen || len(v) > MaxImportedLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}
