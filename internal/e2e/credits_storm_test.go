package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/redistest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// The credits storm (issue 17): two real keyplane processes on one PostgreSQL, 64 concurrent
// verifiers, one key with 1,000 credits. Credits are money, so:
//   - no overspend: the VALID answers never exceed 1,000, whatever the nodes, and with one of them
//     killed (SIGKILL) mid-storm;
//   - what the nodes hold when the key runs dry (stranded) is at most 1 % of the grant, and comes
//     back to the balance within seconds once the nodes go idle;
//   - a kill strands at most what the killed node held, never hands spent credits back.
const (
	creditStormGrant     = 1000
	creditStormVerifiers = 64
)

func TestCreditsStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("the credits storm runs two keyplane processes: not in -short")
	}
	bin := buildKeyplaneBinary(t)
	for _, tc := range []struct {
		name  string
		redis bool
		kill  bool
	}{
		{"postgres", false, false},
		{"postgres+redis", true, false},
		{"postgres/kill", false, true},
		{"postgres+redis/kill", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			if tc.redis {
				env["KEYPLANE_REDIS_URL"] = redistest.URL(t)
			}
			creditsStorm(t, bin, env, tc.kill)
		})
	}
}

func creditsStorm(t *testing.T, bin string, env map[string]string, kill bool) {
	a := newCrashNode(t, bin, "postgres", env)
	a.startServe()
	// b shares a's database and data dir (the master key), as nodes of one deployment do.
	b := &crashNode{node: &node{t: t, dataDir: a.dataDir, dbURL: a.dbURL, admin: a.admin, verifier: a.verifier, client: a.client},
		bin: bin, vars: maps.Clone(a.vars)}
	b.startServe()

	ws := a.workspace("storm", nil)
	k := a.key(ws, map[string]any{"name": "metered", "keyType": "secret", "credits": map[string]any{"remaining": creditStormGrant}})
	id, value := k["id"].(string), k["keyValue"].(string)

	var valid, exceeded, other atomic.Int64
	var killedAt atomic.Int64 // VALID answers seen when b was killed
	var killOnce sync.Once
	body, _ := json.Marshal(map[string]any{"key": value})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: creditStormVerifiers}}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range creditStormVerifiers {
		wg.Go(func() {
			n := a
			if i%2 == 1 {
				n = b
			}
			misses := 0
			// A verifier stops once its node has answered USAGE_EXCEEDED three times in a row (the
			// other node may still hold credits it has not spent), or when its node was killed.
			for misses < 3 {
				if kill && n == b && killedAt.Load() != 0 {
					return
				}
				code, err := quickVerify(client, n.url, a.verifier, body)
				switch {
				case err != nil && kill && n == b:
					return // b was killed under this request: its answer is unknown, and counted nowhere
				case err != nil:
					t.Errorf("verify on %s: %v", n.url, err)
					return
				case code == "VALID":
					misses = 0
					if v := valid.Add(1); kill && v == creditStormGrant/2 {
						killOnce.Do(func() {
							killedAt.Store(v)
							b.proc.kill(t) // SIGKILL, and waits for the exit
						})
					}
				case code == "USAGE_EXCEEDED":
					misses++
					exceeded.Add(1)
				default:
					other.Add(1)
					t.Errorf("verify on %s answered %s", n.url, code)
					return
				}
			}
		})
	}
	wg.Wait()
	spent := valid.Load()
	t.Logf("storm over in %s: %d VALID, %d USAGE_EXCEEDED, %d other; killed after %d VALID",
		time.Since(start).Round(time.Millisecond), spent, exceeded.Load(), other.Load(), killedAt.Load())
	if spent > creditStormGrant {
		t.Fatalf("overspend: %d VALID answers spent credits, of %d granted", spent, creditStormGrant)
	}
	if kill && killedAt.Load() == 0 {
		t.Fatal("the storm ended before b was killed")
	}
	stranded := creditStormGrant - spent
	if !kill && stranded > creditStormGrant/100 {
		t.Errorf("%d credits stranded at exhaustion, more than 1 %% of %d", stranded, creditStormGrant)
	}

	// Once the nodes are idle, what they hold goes back: the balance is what was not spent, except
	// what the killed node held, which is lost (never handed back: it may have been spent). With a
	// kill, how much the killed node held is unknown: the balance is read once a, the survivor, holds
	// no block (keyplane_credit_balances_held), which is when it has given back what it held.
	balance := func() int64 {
		got := a.must(200, req{method: "GET", path: "/v1/api-keys/" + id, cred: a.admin, ws: ws}).data()
		c, _ := got["credits"].(map[string]any)
		r, _ := c["remaining"].(float64)
		return int64(r)
	}
	var remaining int64
	var ok bool
	if kill {
		testkit.Eventually(t, 20*time.Second, "the surviving node gave back its blocks", func() bool {
			_, m := scrape(t, a.node, "")
			return strings.Contains(m, "\nkeyplane_credit_balances_held 0\n")
		})
		remaining = balance()
		ok = remaining == stranded
	} else {
		ok = testkit.Wait(20*time.Second, func() bool {
			remaining = balance()
			return remaining == stranded
		})
	}
	t.Logf("balance after the nodes went idle: %d (stranded at exhaustion: %d)", remaining, stranded)
	switch {
	case !kill && !ok:
		t.Fatalf("the balance is %d after 20 s idle, want the %d credits not spent back", remaining, stranded)
	case remaining > stranded:
		t.Fatalf("overspend: the balance is %d, but only %d credits were not spent", remaining, stranded)
	}
	if kill {
		lost := stranded - remaining
		t.Logf("credits the killed node held and took with it: %d (%.1f %%)", lost, float64(lost)*100/creditStormGrant)
		// What is left is still spendable, and exactly once.
		for range remaining {
			if code, err := quickVerify(client, a.url, a.verifier, body); err != nil || code != "VALID" {
				t.Fatalf("spending the %d credits given back: %s %v", remaining, code, err)
			}
		}
		if code, _ := quickVerify(client, a.url, a.verifier, body); code != "USAGE_EXCEEDED" {
			t.Fatalf("after spending the balance: %s, want USAGE_EXCEEDED", code)
		}
	}
}
