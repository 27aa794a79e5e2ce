// Package testkit is what keyplane's tests share whatever they test: what the environment requires
// of a run (KEYPLANE_REQUIRE_*), and waiting for a condition with a bound. It imports nothing of
// keyplane's, so that every package's tests, internal or external, can use it.
package testkit

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// EnvPrefix is the prefix of the variables that turn a skip into a failure: KEYPLANE_REQUIRE_POSTGRES,
// _BROWSER, _REDIS, _NGINX, _WRK, _FAULTS. CI (.ci/run) sets them all to 1, so that a part of the
// suite that needs something the machine lacks cannot silently not run.
const EnvPrefix = "KEYPLANE_REQUIRE_"

// Required reports whether KEYPLANE_REQUIRE_<what> is set to require it. One meaning for every such
// variable: set to anything but "", "0" or "false" (in any case) requires; unset, "", "0" and "false"
// do not. So KEYPLANE_REQUIRE_REDIS=1 and =yes require Redis, and =0 turns a require off again.
func Required(what string) bool {
	v := strings.TrimSpace(os.Getenv(EnvPrefix + what))
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// Require is what a test does when what it needs is not there: it fails the test when
// KEYPLANE_REQUIRE_<what> requires it (see Required), and skips it otherwise. why says what is
// missing, as "nginx is not installed".
func Require(t testing.TB, what, why string) {
	t.Helper()
	if Required(what) {
		t.Fatalf("%s (%s%s is set: failing instead of skipping)", why, EnvPrefix, what)
	}
	t.Skipf("%s: skipping (set %s%s=1 to fail instead)", why, EnvPrefix, what)
}

// Poll bounds: the first wait is short, so that a condition that holds soon is seen soon, and waits
// double up to the cap, so that a slow condition (an HTTP call, a query) is not hammered.
const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// Eventually calls cond, in the test's goroutine (it may call t.Fatal), until it returns true, and
// fails the test (t.Fatalf) when it has not within timeout. what says what was awaited, for the
// failure's message: "the delivery's second attempt".
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}

// EventuallyNil is Eventually for a condition that says why it does not hold yet: it calls cond
// until it returns nil, and fails the test with cond's last error when it has not within timeout.
func EventuallyNil(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("not within %s: %v", timeout, err)
	}
}

// Wait is Eventually for a test that says itself what is wrong when the condition does not hold (in
// detail, or as several errors): it calls cond until it returns true or timeout has passed, and
// reports whether it held.
func Wait(timeout time.Duration, cond func() bool) bool {
	return poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}) == nil
}

var errNotYet = errors.New("not yet")

// poll returns nil as soon as cond does, or cond's last error once timeout has passed. cond runs at
// least once, and once after the deadline has passed before poll gives up.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := firstPoll
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, maxPoll)
	}
}
