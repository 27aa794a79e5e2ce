package redact

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyplane/keyplane/internal/keyformat"
)

func TestClean(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"/v1/api-keys", 100, "/v1/api-keys"},
		{"/v1/\x00x", 100, "/v1/\uFFFDx"},
		{"/v1/\xffx", 100, "/v1/\uFFFDx"},
		{"/v1/\xff\xfex", 100, "/v1/\uFFFDx"}, // a run of invalid bytes is one replacement
		{"tab\tstays", 100, "tab\tstays"},
		{"abcdef", 4, "abcd"},
		{"ab☕", 4, "ab"},   // the cut never splits a character
		{"a\xffb", 3, "a"}, // nor the replacement of invalid bytes
		{"", 4, ""},
	} {
		if got := Clean(c.in, c.max); got != c.want {
			t.Errorf("Clean(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestUserAgent(t *testing.T) {
	key := keyformat.Generate("kp", "sk", "live")
	long := strings.Repeat("é", 300) // 600 bytes: byte 512 is the first of a character
	odd := "x" + long                // 601 bytes: byte 512 is the second of one
	// A key value across byte MaxUserAgent: redacted whole, not cut into a shape Secrets misses.
	across := strings.Repeat("a", MaxUserAgent-30) + " " + key
	for _, c := range []struct {
		name, in, want string
	}{
		{"Plain", "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0"},
		{"Empty", "", ""},
		{"InvalidUTF8", "agent/\xff\xfe1.0", "agent/\uFFFD1.0"},
		{"NUL", "agent\x00/1.0", "agent\uFFFD/1.0"},
		{"Credential", "agent " + key, "agent kp_sk_live_" + Marker},
		{"LongAtBoundary", long, long[:MaxUserAgent]},
		{"LongInsideCharacter", odd, odd[:MaxUserAgent-1]},
		{"CredentialAcrossTheCut", across, strings.Repeat("a", MaxUserAgent-30) + " kp_sk_live_" + Marker},
		{"LongInvalid", strings.Repeat("\xff ", 400), strings.Repeat("\uFFFD ", 128)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := UserAgent(c.in)
			if got != c.want {
				t.Errorf("UserAgent(%q) = %q, want %q", c.in, got, c.want)
			}
			if len(got) > MaxUserAgent || !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
				t.Errorf("UserAgent(%q) = %q: %d bytes, valid UTF-8 %v", c.in, got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func FuzzUserAgent(f *testing.F) {
	for _, s := range []string{"curl/8.5.0", "a\xffb", "\x00", strings.Repeat("☕", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		got := UserAgent(ua)
		if len(got) > MaxUserAgent || !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("UserAgent(%q) = %q: %d bytes, valid UTF-8 %v", ua, got, len(got), utf8.ValidString(got))
		}
		if UserAgent(got) != got {
			t.Fatalf("UserAgent is not idempotent on %q", ua)
		}
	})
}
