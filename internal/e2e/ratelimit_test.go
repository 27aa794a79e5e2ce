package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/redistest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestRateLimits: a key's rateLimit is enforced by POST /v1/verify, with ratelimit in the answer;
// refused requests do not count; on PostgreSQL with Redis, two nodes share one limit exactly.
func TestRateLimits(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("limits", nil)
		k := n.key(ws, map[string]any{"name": "limited", "keyType": "secret", "rateLimit": map[string]any{"limit": 3, "windowMs": 60000},
			"ipAllowlist": []string{"198.51.100.0/24"}})
		value := k["keyValue"].(string)
		// A refused request (wrong IP) is not counted.
		if c := n.code(value, "ip", "203.0.113.1"); c != "FORBIDDEN" {
			t.Fatalf("outside the allowlist: %s", c)
		}
		for i := range 3 {
			d := n.verify(map[string]any{"key": value, "ip": "198.51.100.1"})
			rl, _ := d["ratelimit"].(map[string]any)
			if d["code"] != "VALID" || rl["limit"] != float64(3) || rl["remaining"] != float64(2-i) {
				t.Fatalf("request %d: %v", i+1, d)
			}
			if reset, err := time.Parse(time.RFC3339Nano, rl["resetAt"].(string)); err != nil || time.Until(reset) > time.Minute+time.Second {
				t.Errorf("resetAt %v", rl["resetAt"])
			}
		}
		d := n.verify(map[string]any{"key": value, "ip": "198.51.100.1"})
		if d["code"] != "RATE_LIMITED" || d["valid"] != false || d["ratelimit"].(map[string]any)["remaining"] != float64(0) {
			t.Fatalf("the fourth request: %v", d)
		}
		// A key without a limit has no ratelimit field.
		free := n.key(ws, map[string]any{"name": "free", "keyType": "secret"})
		if d := n.verify(map[string]any{"key": free["keyValue"]}); d["ratelimit"] != nil {
			t.Errorf("a key without a limit answers ratelimit %v", d["ratelimit"])
		}
	})
}

// TestRateLimitsAcrossNodes: two nodes on one PostgreSQL and one Redis allow a key's limit exactly,
// between them.
func TestRateLimitsAcrossNodes(t *testing.T) {
	redis := redistest.URL(t)
	env := map[string]string{"KEYPLANE_REDIS_URL": redis}
	a := start(t, "postgres", env)
	b := &node{t: t, dataDir: a.dataDir, dbURL: a.dbURL, admin: a.admin, verifier: a.verifier, stdout: &syncBuffer{}, logs: &syncBuffer{}, client: a.client}
	b.serve(env)
	t.Cleanup(func() { b.stop() })
	ws := a.workspace("shared-limit", nil)
	value := a.key(ws, map[string]any{"name": "shared", "keyType": "secret", "rateLimit": map[string]any{"limit": 25, "windowMs": 3600000}})["keyValue"].(string)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			n := []*node{a, b}[i%2]
			for range 10 {
				if c := n.code(value); c == "VALID" {
					allowed.Add(1)
				} else if c != "RATE_LIMITED" {
					t.Errorf("code %s", c)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 25 {
		t.Errorf("two nodes allowed %d of 60 requests, want exactly the limit, 25", allowed.Load())
	}
	if s := a.logs.String() + b.logs.String(); strings.Contains(s, "Redis cannot be reached") || strings.Contains(s, "Redis does not answer") {
		t.Errorf("a node fell back to local limits:\n%s", s)
	}
}

// TestManagementRateLimits: the management API is limited per credential and per client address,
// with 429 rate_limited and Retry-After; verification calls are not counted.
func TestManagementRateLimits(t *testing.T) {
	n := start(t, "sqlite", map[string]string{"KEYPLANE_MANAGEMENT_RATE_LIMIT": "5/1m", "KEYPLANE_MANAGEMENT_IP_RATE_LIMIT": "9/1m"})
	n.limitsSpent = "the test spends the address's management allowance for the minute"
	for range 20 {
		n.code("kp_sk_live_notakey") // verification: not a management call
	}
	list := req{method: "GET", path: "/v1/workspaces", cred: n.admin}
	for range 5 {
		n.must(200, list)
	}
	res := n.fails(429, "rate_limited", list)
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
	}
	// Another credential has its own allowance, until the address's runs out: 9 calls in all, the
	// refused one included; then even a wrong credential is refused, for the address.
	other, err := run(t, n.dataDir, n.dbURL, "", "root-keys", "create", "--name", "second", "--scopes", "admin")
	if err != nil {
		t.Fatal(err)
	}
	other = strings.TrimSpace(other)
	for range 3 { // calls 7 to 9 of the address
		n.must(200, req{method: "GET", path: "/v1/workspaces", cred: other})
	}
	n.fails(429, "rate_limited", req{method: "GET", path: "/v1/workspaces", cred: other})
	n.fails(429, "rate_limited", req{method: "GET", path: "/v1/workspaces", cred: "kp_root_guess"})
	if c := n.code("kp_sk_live_notakey"); c != "NOT_FOUND" {
		t.Errorf("verification after the management limits: %s", c)
	}
}

// TestManagementSpendsNoVerificationLimit: a workspace key's management calls are authenticated
// without spending its verification rate limit. They used to: with {limit: 2}, the third management
// call answered 401 "unknown, disabled, expired or revoked", and the key's verifications were
// RATE_LIMITED by calls that were no verifications. The calls stay in the request log as source
// management, with the credential's code.
func TestManagementSpendsNoVerificationLimit(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		n := start(t, driver, map[string]string{"KEYPLANE_LOG_FLUSH_INTERVAL": "20ms"})
		ws := n.workspace("mgmt-limit", nil)
		k := n.key(ws, map[string]any{"name": "integration", "keyType": "secret", "permissions": []string{"api_keys:read"},
			"rateLimit": map[string]any{"limit": 2, "windowMs": 3600000}})
		value, keyID := k["keyValue"].(string), k["id"].(string)
		const calls = 6
		for i := range calls {
			if r := n.do(req{method: "GET", path: "/v1/api-keys/" + keyID, cred: value}); r.Status != 200 {
				t.Fatalf("management call %d: %d %s", i+1, r.Status, r.Raw)
			}
		}
		// The verification budget is whole: two VALID, then RATE_LIMITED with Retry-After's data.
		for i := range 2 {
			d := n.verify(map[string]any{"key": value})
			if d["code"] != "VALID" || d["ratelimit"].(map[string]any)["remaining"] != float64(1-i) {
				t.Fatalf("verification %d after %d management calls: %v", i+1, calls, d)
			}
		}
		if c := n.code(value); c != "RATE_LIMITED" {
			t.Fatalf("the third verification: %s", c)
		}
		// A spent verification limit does not lock the key out of the management API either.
		n.must(200, req{method: "GET", path: "/v1/api-keys/" + keyID, cred: value})
		// Each management call is in the log once, as source management and VALID; the
		// verifications as source verify.
		testkit.EventuallyNil(t, 20*time.Second, func() error {
			got := map[string]int{}
			for _, e := range n.must(200, req{method: "GET", path: "/v1/logs?limit=100&keyId=" + keyID, cred: n.admin, ws: ws}).list() {
				e := e.(map[string]any)
				got[e["source"].(string)+" "+e["code"].(string)]++
			}
			want := map[string]int{"management VALID": calls + 1, "verify VALID": 2, "verify RATE_LIMITED": 1}
			if !sameCounts(got, want) {
				return fmt.Errorf("request log of the key: %v, want %v", got, want)
			}
			return nil
		})
	})
}
