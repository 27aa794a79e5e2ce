// Package redistest gives tests the Redis they run against: KEYPLANE_TEST_REDIS_URL, else the local
// one. When it does not answer the test skips, or fails when KEYPLANE_REQUIRE_REDIS is set (as
// testkit.Required reads it; CI sets it), so that a missing Redis cannot pass for a green run.
package redistest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/internal/testkit"
)

// URL returns the test Redis's URL once it has answered a PING.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KEYPLANE_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("KEYPLANE_TEST_REDIS_URL %q: %v", u, err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		testkit.Require(t, "REDIS", fmt.Sprintf("no Redis at %s: %v", u, err))
	}
	return u
}

// Client returns a client of the test Redis, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}
