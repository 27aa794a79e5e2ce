package testkit

import (
	"errors"
	"testing"
	"time"
)

func TestRequired(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "FALSE": false, " 0 ": false,
		"1": true, "true": true, "yes": true, "postgres": true} {
		t.Setenv(EnvPrefix+"TESTKIT", v)
		if got := Required("TESTKIT"); got != want {
			t.Errorf("%sTESTKIT=%q: Required %v, want %v", EnvPrefix, v, got, want)
		}
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := poll(time.Minute, func() error {
		if n++; n < 5 {
			return errNotYet
		}
		return nil
	}); err != nil || n != 5 {
		t.Fatalf("poll = %v after %d calls, want nil after 5", err, n)
	}
	last := errors.New("the last one")
	began := time.Now()
	n = 0
	err := poll(30*time.Millisecond, func() error {
		n++
		return last
	})
	if err != last || n < 2 || time.Since(began) < 30*time.Millisecond {
		t.Fatalf("poll = %v after %d calls in %s, want the last error, after the timeout", err, n, time.Since(began))
	}
}

func TestWait(t *testing.T) {
	n := 0
	if !Wait(time.Minute, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Wait on a condition that holds the third time: called %d times", n)
	}
	if Wait(10*time.Millisecond, func() bool { return false }) {
		t.Error("Wait on a condition that never holds reports it held")
	}
}
