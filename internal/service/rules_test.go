package service

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

func TestCheckExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	created := now.Add(-24 * time.Hour)
	const ttl = 259200
	in := func(d time.Duration) keyplane.Optional[time.Time] { return keyplane.Some(now.Add(d)) }
	null := keyplane.Optional[time.Time]{Set: true, Null: true}
	cases := []struct {
		name  string
		env   keyplane.Environment
		exp   keyplane.Optional[time.Time]
		want  *time.Time
		field bool // an error on expiresAt
	}{
		{"live omitted never expires", keyplane.EnvLive, keyplane.Optional[time.Time]{}, nil, false},
		{"live null never expires", keyplane.EnvLive, null, nil, false},
		{"live future", keyplane.EnvLive, in(time.Hour), ptr(now.Add(time.Hour)), false},
		{"live far future", keyplane.EnvLive, in(10 * 365 * 24 * time.Hour), ptr(now.Add(10 * 365 * 24 * time.Hour)), false},
		{"live past", keyplane.EnvLive, in(-time.Second), nil, true},
		{"live now", keyplane.EnvLive, in(0), nil, true},
		{"test omitted: created + TTL", keyplane.EnvTest, keyplane.Optional[time.Time]{}, ptr(created.Add(ttl * time.Second)), false},
		{"test null refused", keyplane.EnvTest, null, nil, true},
		{"test sooner", keyplane.EnvTest, in(time.Hour), ptr(now.Add(time.Hour)), false},
		{"test exactly at the limit", keyplane.EnvTest, keyplane.Some(created.Add(ttl * time.Second)), ptr(created.Add(ttl * time.Second)), false},
		{"test past the limit", keyplane.EnvTest, keyplane.Some(created.Add(ttl*time.Second + time.Microsecond)), nil, true},
	}
	for _, c := range cases {
		var v keyplane.Validation
		got := checkExpiry(&v, c.env, c.exp, created, now, ttl)
		if (v.Err() != nil) != c.field {
			t.Errorf("%s: error %v, want error %v", c.name, v.Err(), c.field)
			continue
		}
		if c.field {
			continue
		}
		if (got == nil) != (c.want == nil) || got != nil && !got.Equal(*c.want) {
			t.Errorf("%s: expiry %v, want %v", c.name, got, c.want)
		}
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestCheckOrigins(t *testing.T) {
	var v keyplane.Validation
	got := checkOrigins(&v, []string{"https://Shop.Example.com", "https://shop.example.com/", "http://localhost:3000", "https://shop.example.com:443", " http://localhost:3000 "})
	if v.Err() != nil || strings.Join(got, " ") != "https://shop.example.com http://localhost:3000" {
		t.Fatalf("origins %v, %v", got, v.Err())
	}
	for _, bad := range []string{"shop.example.com", "ftp://x.example", "https://", "https://u:p@x.example", "https://x.example/path", "https://x.example?q", "https://x.example#f", "null", "*",
		"https://*.example", "https://x.example:99999", "https://x.example:0"} {
		var v keyplane.Validation
		checkOrigins(&v, []string{bad})
		if v.Err() == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
}

func TestCheckIPAllowlist(t *testing.T) {
	var v keyplane.Validation
	got := checkIPAllowlist(&v, []string{" 203.0.113.7 ", "203.0.113.7", "2001:DB8::/32", "::ffff:10.1.2.3", "10.0.0.0/8"})
	if v.Err() != nil || strings.Join(got, " ") != "203.0.113.7 2001:db8::/32 10.1.2.3 10.0.0.0/8" {
		t.Fatalf("allow-list %v, %v", got, v.Err())
	}
}

func TestCheckMeta(t *testing.T) {
	var v keyplane.Validation
	if got := checkMeta(&v, json.RawMessage(`{ "a" : [1, 2] }`)); string(got) != `{"a":[1,2]}` || v.Err() != nil {
		t.Fatalf("meta %s, %v", got, v.Err())
	}
	if got := checkMeta(&v, nil); string(got) != `{}` {
		t.Fatalf("empty meta %s", got)
	}
	if got := checkMeta(&v, json.RawMessage(`null`)); string(got) != `{}` {
		t.Fatalf("null meta %s", got)
	}
	// The limit counts compacted bytes: white space does not count against it.
	big := `{"k":"` + strings.Repeat("x", keyplane.MaxMetaBytes-8) + `"}`
	if len(big) != keyplane.MaxMetaBytes {
		t.Fatalf("fixture is %d bytes", len(big))
	}
	if checkMeta(&v, json.RawMessage(strings.Replace(big, ":", " :   ", 1))); v.Err() != nil {
		t.Fatalf("4096 compacted bytes refused: %v", v.Err())
	}
	// "\xff" is what encoding/json leaves in a raw value, and PostgreSQL refuses as text; 1e400 is no
	// double, which the audit trail's canonical JSON needs. Both were 500s once.
	for _, bad := range []string{`[]`, `"s"`, `1`, `{"k":"` + strings.Repeat("x", keyplane.MaxMetaBytes) + `"}`, "{\"k\":\"\xff\"}",
		`{"n":1e400}`, `{"a":[{"n":-1e309}]}`} {
		var v keyplane.Validation
		checkMeta(&v, json.RawMessage(bad))
		if v.Err() == nil {
			t.Errorf("meta %.30s accepted", bad)
		}
	}
}

// TestCheckDescription: a description PostgreSQL cannot store as text is refused (a NUL in a webhook's
// was a 500 once), and so are bidi controls and zero-width characters.
func TestCheckDescription(t *testing.T) {
	for d, ok := range map[string]bool{"": true, "line\nbreak\ttab é": true, strings.Repeat("é", keyplane.MaxDescriptionLen): true,
		strings.Repeat("x", keyplane.MaxDescriptionLen+1): false, "a\x00b": false, "\xff": false, "a\u202eb": false, "a\u200bb": false, "\ufeffa": false} {
		var v keyplane.Validation
		if checkName(&v, "description", d, keyplane.MaxDescriptionLen, false); (v.Err() == nil) != ok {
			t.Errorf("description %.30q: error %v, want accepted %v", d, v.Err(), ok)
		}
	}
}

func TestCheckName(t *testing.T) {
	for in, ok := range map[string]bool{"Mobile App": true, "  trimmed  ": true, "": false, "   ": false, "tab\there": false, "Pay\u202Elap": false, "a\u2066b": false, "zero\u200bwidth": false, "a\u061cb": false, "a\u2060b": false, strings.Repeat("é", 100): true, strings.Repeat("é", 101): false} {
		var v keyplane.Validation
		checkName(&v, "name", in, keyplane.MaxNameLen, true)
		if (v.Err() == nil) != ok {
			t.Errorf("name %q: error %v", in, v.Err())
		}
	}
}

func TestDiff(t *testing.T) {
	before := map[string]any{"name": "a", "perms": []string{"x"}, "same": 1, "updatedAt": "t1"}
	after := map[string]any{"name": "b", "perms": []string{"x", "y"}, "same": 1, "updatedAt": "t2"}
	d := diff(before, after, "updatedAt")
	if len(d) != 2 || d["name"].From == nil || d["perms"].To == nil {
		t.Fatalf("diff %v", d)
	}
	if b, _ := json.Marshal(d["name"]); string(b) != `{"from":"a","to":"b"}` {
		t.Errorf("change encodes as %s", b)
	}
}

func TestHumanSeconds(t *testing.T) {
	for s, want := range map[int64]string{259200: "3 days", 86400: "1 day", 3600: "1 hour", 90: "90 seconds", 120: "2 minutes"} {
		if got := humanSeconds(s); got != want {
			t.Errorf("humanSeconds(%d) = %q, want %q", s, got, want)
		}
	}
}
