package redact

import (
	"strings"
	"unicode/utf8"
)

// MaxUserAgent is the longest User-Agent kept, in bytes.
const MaxUserAgent = 512

// UserAgent returns a client's User-Agent as keyplane keeps it, in the audit trail, the request log
// and a dashboard session: without a credential in it, which others would read, and Clean at
// MaxUserAgent, which PostgreSQL accepts. The credentials go first, so that the cut cannot leave
// part of one that no longer has a credential's shape.
func UserAgent(ua string) string { return Clean(Secrets(ua), MaxUserAgent) }

// Clean returns s as text that every store accepts: valid UTF-8 (each run of invalid bytes becomes
// U+FFFD) without NUL bytes (each becomes U+FFFD), cut to at most max bytes on a character boundary.
// PostgreSQL refuses text with NUL bytes or invalid UTF-8, and what a client sends (a path, %00 and
// %FF in it; a header) may carry both. The common case, already clean, costs no allocation.
func Clean(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
