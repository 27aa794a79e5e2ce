package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/keyplane/keyplane/internal/store"
)

// testRunExclusive: while a job runs, another run of the same name is skipped and one of another
// name is not; once it has finished, the name runs again; fn's error comes back.
func testRunExclusive(t *testing.T, s store.Store) {
	ctx := t.Context()
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ran, err := s.RunExclusive(ctx, "prune", func(context.Context) error {
			close(inside)
			<-release
			return nil
		})
		if err == nil && !ran {
			err = errors.New("the first run did not run")
		}
		done <- err
	}()
	<-inside
	ran, err := s.RunExclusive(ctx, "prune", func(context.Context) error {
		t.Error("a second run of prune ran while the first was under way")
		return nil
	})
	noErr(t, "RunExclusive(held)", err)
	if ran {
		t.Error("RunExclusive(held) reported true")
	}
	ran, err = s.RunExclusive(ctx, "notify", func(context.Context) error { return nil })
	noErr(t, "RunExclusive(other name)", err)
	if !ran {
		t.Error("a job of another name was skipped")
	}
	close(release)
	noErr(t, "first run", <-done)

	boom := errors.New("boom")
	ran, err = s.RunExclusive(ctx, "prune", func(context.Context) error { return boom })
	if !ran || !errors.Is(err, boom) {
		t.Errorf("RunExclusive after release = %v, %v; want true and fn's error", ran, err)
	}
	ran, err = s.RunExclusive(ctx, "prune", func(context.Context) error { return nil })
	if !ran || err != nil {
		t.Errorf("RunExclusive after a failed run = %v, %v; want true, nil", ran, err)
	}
}
