package browsertest

import (
	"context"
	"testing"

	cdptarget "github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/testkit"
)

// Frame attaches to a cross-site iframe of the tab: the first whose address match accepts, once
// there is one (within ActionTimeout). Chromium runs an iframe of another site in a process of its
// own, as a target of its own: the tab's DOM and scripts do not reach into it, so the helpers of
// this package (Do, Eval, Text, Axe...) need a context attached to that target. The context runs
// them inside the frame, records the frame's errors with the tab's (ConsoleErrors), and follows
// the frame as it navigates within its site. It closes (detaches) when t ends.
//
// A dialog that the frame opens (confirm()) is the tab's: Chromium reports it on the tab's target,
// so AcceptDialogs(tab), not AcceptDialogs of the frame, answers it.
//
// A frame of the tab's own site runs in the tab's process and is no target: use chromedp.FromNode
// or the frame's document from the tab for it.
func (b *Browser) Frame(t testing.TB, tab context.Context, match func(url string) bool) context.Context {
	t.Helper()
	c := chromedp.FromContext(tab)
	if c == nil || c.Target == nil {
		t.Fatal("browsertest: Frame needs a tab that has run")
	}
	var found *cdptarget.Info
	var last []string
	ok := testkit.Wait(ActionTimeout, func() bool {
		infos, err := chromedp.Targets(tab)
		if err != nil {
			return false
		}
		last = last[:0]
		for _, in := range infos {
			if in.Type != "iframe" || in.BrowserContextID != c.BrowserContextID {
				continue
			}
			last = append(last, in.URL)
			if match(in.URL) {
				found = in
				return true
			}
		}
		return false
	})
	if !ok {
		failShot(t, tab, "frame")
		t.Fatalf("browsertest: no iframe of another site matched within %s; the tab's were %q", ActionTimeout, last)
	}
	ctx, cancel := chromedp.NewContext(tab, chromedp.WithTargetID(found.TargetID), chromedp.WithListener(b.listen))
	// As in Tab, the first Do attaches for the life of ctx, so it gets no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("browsertest: attach to the iframe %s: %v", found.URL, err)
	}
	t.Cleanup(cancel)
	return ctx
}

// WaitFor waits until the JavaScript expression js is true in the tab (or frame), within
// ActionTimeout, and fails the test with what otherwise: for a state that a page reaches by itself
// (a button that says "Copied" once a promise settled, a page that reloaded). It asks again after a
// navigation, which ends the document that it asked.
func WaitFor(t testing.TB, ctx context.Context, what, js string) {
	t.Helper()
	var last error
	ok := testkit.Wait(ActionTimeout, func() bool {
		var v bool
		last = within(ctx, func(ctx context.Context) (err error) {
			v, err = chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			return err
		})
		return last == nil && v
	})
	if !ok {
		failShot(t, ctx, what)
		t.Fatalf("browsertest: %s: %s is not true after %s (last error: %v)", what, js, ActionTimeout, last)
	}
}
