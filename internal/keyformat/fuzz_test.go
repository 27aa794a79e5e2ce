package keyformat

import (
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// refParse is Parse written again from the contract, as plainly as possible and sharing none of its
// code (no crcString, no appendChecksum), so that the fuzzer can compare the two.
func refParse(prefix, v string) (Kind, bool) {
	const b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var k Kind
	if len(v) > MaxLen {
		return k, false
	}
	rest, ok := strings.CutPrefix(v, prefix+"_")
	if !ok {
		return k, false
	}
	switch {
	case strings.HasPrefix(rest, "root_"):
		k.Root, rest = true, rest[len("root_"):]
	default:
		typ, after, ok := strings.Cut(rest, "_")
		if !ok || (typ != "sk" && typ != "pk") {
			return k, false
		}
		env, after, ok := strings.Cut(after, "_")
		if !ok || (env != "live" && env != "test") {
			return k, false
		}
		k.Publishable, k.Environment, rest = typ == "pk", env, after
	}
	if len(rest) != 32+6 {
		return Kind{}, false
	}
	for _, c := range []byte(rest) {
		if strings.IndexByte(b62, c) < 0 {
			return Kind{}, false
		}
	}
	head := v[:len(v)-6]
	sum := crc32.ChecksumIEEE([]byte(head))
	want := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		want[i] = b62[sum%62]
		sum /= 62
	}
	if string(want) != v[len(v)-6:] {
		return Kind{}, false
	}
	return k, true
}

// refValidPrefix is ValidPrefix without a regular expression.
func refValidPrefix(p string) bool {
	if len(p) < 1 || len(p) > 16 || p[0] < 'a' || p[0] > 'z' {
		return false
	}
	for _, c := range []byte(p[1:]) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// checkParse asserts that Parse agrees with refParse on (prefix, v) and that everything derived from
// a value that parses (Start, End, Hash) is what the contract says.
func checkParse(t *testing.T, prefix, v string) {
	t.Helper()
	got, err := Parse(prefix, v)
	want, ok := refParse(prefix, v)
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("Parse(%q, %q): error %v is not ErrMalformed", prefix, v, err)
	}
	if (err == nil) != ok {
		t.Fatalf("Parse(%q, %q) = %+v, %v; the contract says accepted=%v", prefix, v, got, err, ok)
	}
	if !ok {
		if s := Start(prefix, v); s != "" {
			t.Fatalf("Start(%q, %q) = %q for a value that does not parse", prefix, v, s)
		}
		return
	}
	if got != want {
		t.Fatalf("Parse(%q, %q) = %+v, want %+v", prefix, v, got, want)
	}
	head := prefix + "_root_"
	if !got.Root {
		head = prefix + "_" + map[bool]string{false: "sk", true: "pk"}[got.Publishable] + "_" + got.Environment + "_"
	}
	if s := Start(prefix, v); s != v[:len(head)+4] {
		t.Fatalf("Start(%q, %q) = %q, want %q", prefix, v, s, v[:len(head)+4])
	}
	if e := End(v); e != v[len(v)-4:] {
		t.Fatalf("End(%q) = %q", v, e)
	}
	if Hash(v) != sha256.Sum256([]byte(v)) {
		t.Fatalf("Hash(%q) is not its SHA-256", v)
	}
}

// FuzzParse compares Parse with a plain rewrite of the contract's rules on any prefix and value, and
// on the value with its last six characters replaced by its head's checksum (random input almost
// never carries a good checksum, so without that the accepting path would go unexplored). For a
// value that parses it also checks that every one-character typo (pos, to) is refused: CRC32 catches
// every error of one byte, and the base62 checksum has one spelling per CRC.
func FuzzParse(f *testing.F) {
	good := Generate("kp", "sk", "live")
	root := GenerateRoot("kp")
	for _, seed := range []struct {
		prefix, v string
		pos       int
		to        byte
	}{
		{"kp", good, 0, 'x'},
		{"kp", root, 20, 'A'},
		{"kp", Generate("kp", "pk", "test"), 50, '0'},
		{"acme", Generate("acme", "sk", "test"), 7, 'q'},
		{"a234567890123456", Generate("a234567890123456", "pk", "live"), 62, 'z'},
		{"kp", "", 0, 0},
		{"", "", 0, 0},
		{"", "_root_" + strings.Repeat("a", 38), 0, 0},
		{"kp", "kp", 0, 0},
		{"kp", "kp_", 0, 0},
		{"kp", "kp_root_", 0, 0},
		{"kp", "kp_sk_live_" + strings.Repeat("\x00", 38), 0, 0},
		{"kp", "kp_sk_live_" + strings.Repeat("é", 19), 0, 0},
		{"kp", "kp_sk_live_" + strings.Repeat("a", 37) + "\xff", 0, 0},
		{"kp", strings.Repeat("a", 100000), 0, 0},
		{"kp", good + "\n", 0, 0},
		{"kp", " " + good, 0, 0},
		{"kp", "KP" + good[2:], 0, 0},
		{"kp", "kp_root_live_" + strings.Repeat("a", 38), 0, 0},
		{"kp", "kp_sk_live" + strings.Repeat("a", 39), 0, 0},
		{"kp", "kp_skxlivex" + strings.Repeat("a", 38), 0, 0},
		{"kp_sk", good, 0, 0},
		{"k", good, 0, 0},
		{strings.Repeat("p", 40), strings.Repeat("p", 40) + "_root_" + strings.Repeat("a", 38), 0, 0},
	} {
		f.Add(seed.prefix, seed.v, seed.pos, seed.to)
	}
	f.Fuzz(func(t *testing.T, prefix, v string, pos int, to byte) {
		checkParse(t, prefix, v)
		if len(v) >= ChecksumLen {
			head := v[:len(v)-ChecksumLen]
			v = head + Checksum(head)
			checkParse(t, prefix, v)
		}
		if _, err := Parse(prefix, v); err != nil || len(v) == 0 {
			return
		}
		if pos < 0 {
			pos = -pos
		}
		pos %= len(v)
		if pos < 0 || v[pos] == to {
			return // pos was the most negative int
		}
		typo := v[:pos] + string([]byte{to}) + v[pos+1:]
		if k, err := Parse(prefix, typo); err == nil {
			t.Fatalf("Parse accepts %q (%+v), a one-character typo of %q", typo, k, v)
		}
	})
}

// FuzzValidPrefix compares ValidPrefix with a plain rewrite of its rule and checks that a valid
// prefix makes values that parse under it and under no other valid prefix (prefixes hold no "_", so
// a value names its prefix unambiguously).
func FuzzValidPrefix(f *testing.F) {
	for _, s := range []struct{ p, q string }{
		{"kp", "k"}, {"kp", "kpx"}, {"a", "b"}, {"", "kp"}, {"Kp", "kp"}, {"kp_", "kp"}, {"1kp", "kp"},
		{"a234567890123456", "a2345678901234567"}, {"kp\n", "kp"}, {"kp\x00", "kp"}, {"ķp", "kp"},
	} {
		f.Add(s.p, s.q)
	}
	f.Fuzz(func(t *testing.T, p, q string) {
		if got, want := ValidPrefix(p), refValidPrefix(p); got != want {
			t.Fatalf("ValidPrefix(%q) = %v, want %v", p, got, want)
		}
		if !ValidPrefix(p) {
			return
		}
		v, r := Generate(p, "pk", "test"), GenerateRoot(p)
		checkParse(t, p, v)
		checkParse(t, p, r)
		if _, err := Parse(p, v); err != nil {
			t.Fatalf("Parse(%q, Generate) = %v", p, err)
		}
		if k, err := Parse(p, r); err != nil || !k.Root {
			t.Fatalf("Parse(%q, GenerateRoot) = %+v, %v", p, k, err)
		}
		if ValidPrefix(q) && q != p {
			if _, err := Parse(q, v); err == nil {
				t.Fatalf("a value made with prefix %q parses under prefix %q", p, q)
			}
			if _, err := Parse(q, r); err == nil {
				t.Fatalf("a root key made with prefix %q parses under prefix %q", p, q)
			}
		}
	})
}
