package client

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCacheBounded: the cache never holds more than its size, drops expired entries first, and is
// indexed by digests only.
func TestCacheBounded(t *testing.T) {
	c := newCache(10)
	now := time.Now()
	res := &VerifyResult{Valid: true, Code: VerifyValid}
	for i := range 25 {
		c.put(cacheKey(fmt.Sprintf("key-%d", i), "127.0.0.1", ""), res, now.Add(time.Minute), now)
		if n := len(c.entries); n > 10 {
			t.Fatalf("after %d inserts the cache holds %d", i+1, n)
		}
	}
	if _, ok := c.get(cacheKey("key-24", "127.0.0.1", ""), now); !ok {
		t.Error("the newest entry is gone")
	}

	// Expired entries go first: 9 expired and 1 live; the insert keeps the live one.
	c = newCache(10)
	for i := range 9 {
		c.put(cacheKey(fmt.Sprintf("old-%d", i), "", ""), res, now.Add(time.Millisecond), now)
	}
	c.put(cacheKey("live", "", ""), res, now.Add(time.Minute), now)
	later := now.Add(time.Second)
	c.put(cacheKey("new", "", ""), res, later.Add(time.Minute), later)
	if _, ok := c.get(cacheKey("live", "", ""), later); !ok || len(c.entries) != 2 {
		t.Errorf("after the sweep: %d entries, live kept %v", len(c.entries), ok)
	}
	if _, ok := c.get(cacheKey("old-1", "", ""), later); ok {
		t.Error("an expired entry is served")
	}

	// A cache of one holds one.
	c = newCache(1)
	c.put(cacheKey("a", "", ""), res, now.Add(time.Minute), now)
	c.put(cacheKey("b", "", ""), res, now.Add(time.Minute), now)
	if len(c.entries) != 1 {
		t.Errorf("size 1 holds %d", len(c.entries))
	}
}

// TestCacheKey: the key is hashed with the address and origin, never kept.
func TestCacheKey(t *testing.T) {
	k := "kp_sk_live_AbC40123456789abcdefghijklmnopqr1R8CKo"
	a := cacheKey(k, "127.0.0.1", "")
	if a != sha256.Sum256([]byte(k+"\x00127.0.0.1\x00")) {
		t.Error("not SHA-256(key NUL ip NUL origin)")
	}
	if a == cacheKey(k, "127.0.0.2", "") || a == cacheKey(k, "127.0.0.1", "https://x") || a == cacheKey(k+"x", "127.0.0.1", "") {
		t.Error("the address, origin or key do not change the cache key")
	}
	if strings.Contains(string(a[:]), k[:8]) {
		t.Error("the digest holds the key")
	}
	long := strings.Repeat("x", 1000)
	if cacheKey(long, long, long) == cacheKey(long, long, long+"y") {
		t.Error("long inputs collide")
	}
}

// TestOptionalJSON: absent, null and values.
func TestOptionalJSON(t *testing.T) {
	type patch struct {
		A Optional[string]   `json:"a,omitzero"`
		B Optional[[]string] `json:"b,omitzero"`
		C Optional[int]      `json:"c,omitzero"`
	}
	b, err := json.Marshal(patch{A: Null[string](), B: Some([]string{"x"})})
	if err != nil || string(b) != `{"a":null,"b":["x"]}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var p patch
	if err := json.Unmarshal([]byte(`{"a":null,"c":3}`), &p); err != nil {
		t.Fatal(err)
	}
	if !p.A.IsNull() || !p.B.IsZero() {
		t.Errorf("unmarshal: %+v", p)
	}
	if v, ok := p.C.Get(); !ok || v != 3 {
		t.Errorf("c: %v %v", v, ok)
	}
	b, _ = json.Marshal(UpdateAPIKeyRequest{ExpiresAt: Some(time.Date(2030, 1, 31, 12, 0, 0, 0, time.UTC)), RateLimit: Null[RateLimit]()})
	if string(b) != `{"rateLimit":null,"expiresAt":"2030-01-31T12:00:00Z"}` {
		t.Errorf("patch body: %s", b)
	}
	if b, _ := json.Marshal(UpdateAPIKeyRequest{}); string(b) != `{}` {
		t.Errorf("empty patch: %s", b)
	}
}
