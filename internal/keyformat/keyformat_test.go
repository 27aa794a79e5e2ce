package keyformat

import (
	"hash/crc32"
	"strings"
	"testing"
)

func TestGenerateParses(t *testing.T) {
	for _, tc := range []struct{ typ, env string }{{"sk", "live"}, {"sk", "test"}, {"pk", "live"}, {"pk", "test"}} {
		v := Generate("kp", tc.typ, tc.env)
		head := "kp_" + tc.typ + "_" + tc.env + "_"
		if !strings.HasPrefix(v, head) || len(v) != len(head)+RandomLen+ChecksumLen {
			t.Fatalf("Generate = %q: wrong shape", v)
		}
		k, err := Parse("kp", v)
		if err != nil {
			t.Fatalf("Parse(%q): %v", v, err)
		}
		if k.Root || k.Publishable != (tc.typ == "pk") || k.Environment != tc.env {
			t.Errorf("Parse(%q) = %+v", v, k)
		}
	}
	r := GenerateRoot("acme")
	if k, err := Parse("acme", r); err != nil || !k.Root {
		t.Fatalf("Parse(root %q) = %+v, %v", r, k, err)
	}
}

// The checksum is spelled out by the contract: CRC32 IEEE of the head, base62 0-9A-Za-z, most
// significant digit first, padded with 0 to 6 characters. Check it against a hand computation.
func TestChecksumMatchesContract(t *testing.T) {
	head := "kp_sk_live_" + strings.Repeat("a", 32)
	sum := crc32.ChecksumIEEE([]byte(head))
	var want []byte
	for n := sum; n > 0; n /= 62 {
		want = append([]byte{alphabet[n%62]}, want...)
	}
	for len(want) < 6 {
		want = append([]byte{'0'}, want...)
	}
	if got := Checksum(head); got != string(want) {
		t.Fatalf("Checksum = %q, want %q", got, want)
	}
	if _, err := Parse("kp", head+string(want)); err != nil {
		t.Fatalf("a value with the hand-computed checksum does not parse: %v", err)
	}
	// A small CRC is left-padded: find a head whose checksum starts with "0".
	if got := string(appendChecksum(nil, 61)); got != "00000z" {
		t.Fatalf("appendChecksum(61) = %q, want 00000z", got)
	}
	if got := string(appendChecksum(nil, 0xFFFFFFFF)); got != "4gfFC3" {
		t.Fatalf("appendChecksum(max) = %q, want 4gfFC3", got)
	}
}

func TestParseRefuses(t *testing.T) {
	good := Generate("kp", "sk", "live")
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := map[string]string{
		"empty":             "",
		"prefix only":       "kp",
		"other prefix":      "xx" + good[2:],
		"bad type":          strings.Replace(good, "_sk_", "_xk_", 1),
		"bad env":           strings.Replace(good, "_live_", "_prod_", 1),
		"random changed":    flip(15),
		"checksum changed":  flip(len(good) - 1),
		"one char short":    good[:len(good)-1],
		"one char long":     good + "a",
		"non-base62":        good[:20] + "-" + good[21:],
		"unicode":           good[:20] + "é" + good[22:],
		"huge":              strings.Repeat("a", 10000),
		"root with env":     "kp_root_live_" + strings.Repeat("a", 38),
		"trailing newline":  good + "\n",
		"leading space":     " " + good,
		"uppercase prefix":  "KP" + good[2:],
		"missing separator": "kpsk_live_" + good[11:],
	}
	for name, v := range cases {
		if _, err := Parse("kp", v); err == nil {
			t.Errorf("%s: Parse(%q) accepted it", name, v)
		}
	}
}

func TestStartEnd(t *testing.T) {
	v := Generate("kp", "pk", "test")
	if s := Start("kp", v); s != v[:len("kp_pk_test_")+4] {
		t.Errorf("Start = %q", s)
	}
	if e := End(v); e != v[len(v)-4:] {
		t.Errorf("End = %q", e)
	}
}

func TestRandomIsUniform(t *testing.T) {
	counts := map[byte]int{}
	const n = 62 * 2000
	for _, c := range randomBase62(n) {
		counts[c]++
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct characters, want 62", len(counts))
	}
	for c, k := range counts {
		if k < 1600 || k > 2400 { // expected 2000, σ ≈ 44: ±9σ, a flaky failure is impossible in practice
			t.Errorf("character %q drawn %d times of %d", c, k, n)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	v := Generate("kp", "sk", "live")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("kp", v); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCRCStringMatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "a", "kp_sk_live_" + strings.Repeat("Zz9", 11), strings.Repeat("\xff", 100)} {
		if got, want := crcString(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Errorf("crcString(%q) = %08x, want %08x", s, got, want)
		}
	}
}
