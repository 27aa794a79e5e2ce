package jcs

import (
	"math"
	"testing"
)

func TestFormatNumber(t *testing.T) {
	// Expected values are ECMAScript's String(x), from RFC 8785 appendix B and ECMA-262.
	cases := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1, "-1"},
		{1.5, "1.5"},
		{100, "100"},
		{123456789, "123456789"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{1.5e21, "1.5e+21"},
		{1e-6, "0.000001"},
		{1e-7, "1e-7"},
		{1.2345e-7, "1.2345e-7"},
		{0.1, "0.1"},
		{4.50, "4.5"},
		{2e-3, "0.002"},
		{333333333.33333329, "333333333.3333333"},
		{1e23, "1e+23"},
		{9007199254740992, "9007199254740992"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{-5e-324, "-5e-324"},
		{295147905179352830000, "295147905179352830000"},
	}
	for _, c := range cases {
		if got := FormatNumber(c.in); got != c.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{` [ 1 , 2.50 , "x" ] `, `[1,2.5,"x"]`},
		{`{"a":{"z":null,"y":true}}`, `{"a":{"y":true,"z":null}}`},
		{`"<&>"`, `"<&>"`},
		{`"\u2028\u0007\n\"\\/"`, "\"\u2028\\u0007\\n\\\"\\\\/\""},
		{`"\u00e9"`, `"é"`},
		// sorted by UTF-16 code units: U+1F600 (surrogates D83D…) sorts before U+FB01 (ﬁ)
		{`{"\ufb01":1,"😀":2,"a":3}`, `{"a":3,"😀":2,"ﬁ":1}`},
		{`{"numbers":[1e1,-0,1E-7,0.000001]}`, `{"numbers":[10,0,1e-7,0.000001]}`},
	}
	for _, c := range cases {
		got, err := Canonicalize([]byte(c.in))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Canonicalize(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestCanonicalizeRefuses(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":1}{}`, `1e400`, `[1,]`} {
		if _, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("Canonicalize(%q) succeeded, want an error", in)
		}
	}
}
