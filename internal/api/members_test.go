package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
)

type membersInner struct {
	Limit int64 `json:"limit"`
}

type membersEmbedded struct {
	Shared string `json:"shared"`
}

type membersProbe struct {
	membersEmbedded
	Name   string                          `json:"name"`
	Items  []membersInner                  `json:"items"`
	Opt    keyplane.Optional[membersInner] `json:"opt"`
	Ptr    *membersInner                   `json:"ptr"`
	Meta   json.RawMessage                 `json:"meta"`
	Map    map[string]membersInner         `json:"map"`
	Any    any                             `json:"any"`
	Hidden string                          `json:"-"`
	NoTag  string
}

// TestCheckMembers: duplicates at any depth and case variants of a struct's fields are refused with
// the member's path; everything encoding/json would read the same way, and malformed JSON (left to
// encoding/json), passes.
func TestCheckMembers(t *testing.T) {
	for body, field := range map[string]string{
		`{"name":"a","name":"b"}`:                       "name",
		`{"NAME":"a"}`:                                  "NAME",
		`{"Shared":"a"}`:                                "Shared",
		`{"notag":"a"}`:                                 "notag",
		`{"\u004eame":"a"}`:                             "Name",
		`{"name":"a","n\u0061me":"b"}`:                  "name",
		`{"items":[{"limit":1},{"limit":1,"Limit":2}]}`: "items[1].Limit",
		`{"items":[{"limit":1},{"limit":1,"limit":2}]}`: "items[1].limit",
		`{"opt":{"LIMIT":1}}`:                           "opt.LIMIT",
		`{"ptr":{"limit":1,"limit":1}}`:                 "ptr.limit",
		`{"meta":{"a":{"b":1,"b":2}}}`:                  "meta.a.b",
		`{"map":{"k":{"Limit":1}}}`:                     "map.k.Limit",
		`{"map":{"k":{},"k":{}}}`:                       "map.k",
		`{"any":[{"x":1,"x":2}]}`:                       "any[0].x",
		"{\"name\":\"a\",\"\u212aey\":1,\"Name\":2}":    "Name", // the Kelvin sign is no case of k; Name is
		`{"":1,"":2}`:                                   `""`,
		`{"meta":{` + manyMembers(40) + `,"m7":0}}`:     "meta.m7", // past the small-object slice: the map
		`{"meta":{"a":1}, "name":"x", "name":"x"}`:      "name",
		`{"items":[], "opt":null, "OPT":null}`:          "OPT",
		`{"name":"a\"name","name":"b"}`:                 "name",
		`{"name":"\\","name":"b"}`:                      "name",
		`{"meta":{"\"":1,"\u0022":2}}`:                  `meta."`,
	} {
		err := checkMembers([]byte(body), &membersProbe{})
		var e *keyplane.Error
		if !errors.As(err, &e) || e.Code != keyplane.CodeInvalidRequest || len(e.Details) != 1 || e.Details[0].Field != field {
			t.Errorf("%s: %v, want invalid_request on %s", body, err, field)
		}
	}
	for _, body := range []string{
		`{}`, `{"name":"a","items":[{"limit":1},{"limit":2}],"opt":{"limit":1},"meta":{"a":1,"A":2},"map":{"a":{},"A":{}}}`,
		`{"meta":{` + manyMembers(40) + `}}`, `{"unknown":1,"UNKNOWN":2}`, `{"any":{"Name":1,"name":2}}`,
		// Malformed: encoding/json says what is wrong.
		`{"name":`, `{"name" "a"}`, `{"name":"a",}`, `{"name":"a"`, `{"a`, `{`, `[`, `{"items":[1,`, `{"items":[1 2]}`, `{"n\":1}`, `{"\uZZZZ":1}`,
	} {
		if err := checkMembers([]byte(body), &membersProbe{}); err != nil {
			t.Errorf("%s: %v, want it left to encoding/json", body, err)
		}
	}
	// Deep nesting neither overflows the stack nor passes silently: encoding/json refuses it.
	deep := strings.Repeat(`{"any":`, 20000) + "1" + strings.Repeat("}", 20000)
	_ = checkMembers([]byte(deep), &membersProbe{})
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m` + strconv.Itoa(i) + `":0`)
	}
	return b.String()
}

// BenchmarkCheckMembers: the pre-pass on a typical key creation body.
func BenchmarkCheckMembers(b *testing.B) {
	body := []byte(`{"name":"Checkout service","keyType":"secret","environment":"live","permissions":["orders:read","orders:write"],` +
		`"ipAllowlist":["203.0.113.0/24"],"meta":{"plan":"pro","region":"eu"},"rateLimit":{"limit":100,"windowMs":60000}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := checkMembers(body, &createKeyRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCheckMembers: no input panics, and a body that checkMembers passes and that is valid JSON has
// no object with a name given twice (read here with encoding/json's tokens, a second way).
func FuzzCheckMembers(f *testing.F) {
	for _, s := range []string{`{"name":"a","items":[{"limit":1}],"opt":{"limit":2},"meta":{"a":[1,{"b":2}]}}`, `{"NAME":1}`, `{"a":1,"a":2}`,
		`{"\u006eame":"x","name":"y"}`, `{"map":{"k":{"Limit":1}}}`, `{"meta":{"x":{"y":1,"y":2}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkMembers(body, &membersProbe{}) != nil || !json.Valid(body) {
			return
		}
		if dup, ok := duplicateName(json.NewDecoder(bytes.NewReader(body))); ok {
			t.Fatalf("%q: %q given twice passed", body, dup)
		}
	})
}

// duplicateName reads one value's tokens and returns a name some object of it gives twice.
func duplicateName(dec *json.Decoder) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			name, _ := k.(string)
			if seen[name] {
				return name, true
			}
			seen[name] = true
			if d, ok := duplicateName(dec); ok {
				return d, true
			}
		}
		dec.Token()
	case json.Delim('['):
		for dec.More() {
			if d, ok := duplicateName(dec); ok {
				return d, true
			}
		}
		dec.Token()
	}
	return "", false
}
