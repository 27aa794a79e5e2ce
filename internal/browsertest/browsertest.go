// Package browsertest drives Debian's chromium from go test, through chromedp, for the tests of the
// dashboard. It is test-support code: only _test.go files import it.
//
// New starts one headless chromium for a test and stops it, with every child process, when the test
// ends. Each Tab is a new tab in a browser context of its own (its own cookies, storage and cache,
// like a separate incognito window), so two tabs of one Browser are two people. The helpers fail
// the test with a message (and, when KEYPLANE_SCREENSHOTS is set, a screenshot of what the page
// showed), and each gives one browser action at most ActionTimeout, so that a selector that never
// matches ends the test in seconds instead of at go test's timeout.
//
// Selectors are CSS (document.querySelector). chromedp reads a plain Go string as a DOM search that
// also matches text, so the helpers convert with chromedp.CSS; in raw chromedp actions, write
// chromedp.CSS("#id") or use Label.
//
// CheckAccessibility runs axe-core (embedded from testdata/axe-core) in the page and fails the test
// for each WCAG 2.1 A or AA violation.
//
// Without chromium the tests skip, unless KEYPLANE_REQUIRE_BROWSER is set (as testkit.Required
// reads it; .ci/run sets it): then they fail. KEYPLANE_CHROMIUM names another binary.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/testkit"
)

// ActionTimeout bounds each helper call (one Do, one Text, one Screenshot...).
const ActionTimeout = 30 * time.Second

// Browser is one headless chromium process, owned by one test.
type Browser struct {
	ctx context.Context // the chromedp context that owns the process; tabs derive from it
	dir string          // all its files, unique to this browser: its processes' command lines name it

	mu     sync.Mutex
	errors []string
}

// New starts a headless chromium for t and stops it when t ends. Without a chromium binary the test
// skips, or fails when KEYPLANE_REQUIRE_BROWSER is set. With go test -short (make test-short, the
// inner loop) it skips: a browser is seconds a test.
func New(t testing.TB) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("browsertest: a browser test, skipped in -short mode")
	}
	bin := findChromium(t)
	b := &Browser{dir: t.TempDir()}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in a container: chromium refuses to start with its sandbox
		chromedp.DisableGPU,
		// Without these, headless chromium keeps calling Google (component updates, sync, field
		// trials); this workplace refuses those connections, many at a time.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(filepath.Join(b.dir, "profile")),
		// The crash handler's database goes under the config directory: keep it out of $HOME, and
		// name b.dir in its command line too, so that killLeftovers finds it.
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(b.dir, "config"), "XDG_CACHE_HOME="+filepath.Join(b.dir, "cache")),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// The first Do starts the process and binds its life to bctx: it must have no timeout (a timeout
	// here would stop the browser with it), so a start that hangs is bounded by a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	var err error
	select {
	case err = <-started:
	case <-time.After(ActionTimeout):
		cancelBrowser() // ends the start; nothing else may use bctx while it runs
		<-started
		err = errors.New("no answer within " + ActionTimeout.String())
	}
	if err != nil {
		cancelBrowser()
		cancelAlloc()
		killLeftovers(b.dir)
		t.Fatalf("browsertest: start %s: %v", bin, err)
	}
	// t.TempDir registered its removal before this, so it runs after: the directory is free then.
	t.Cleanup(func() {
		// Close gracefully (chromium flushes and exits), then make sure: canceling the allocator
		// kills the process if it is still there and waits for it, and the children that outlive it
		// (zygote, renderers, network service, crash handler) are found by their command line.
		cctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelBrowser()
		cancelAlloc()
		killLeftovers(b.dir)
	})
	b.ctx = bctx
	return b
}

func findChromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KEYPLANE_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("browsertest: KEYPLANE_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "chromium is not installed (apt-get install chromium, or set KEYPLANE_CHROMIUM)"
	testkit.Require(t, "BROWSER", "browsertest: "+msg)
	return ""
}

// processes lists the pids whose command line names a path in dir: chromium passes --user-data-dir
// to each of its children, and the crash handler gets --database under XDG_CONFIG_HOME.
func processes(dir string) []int {
	if dir == "" {
		return nil
	}
	want := []byte(dir + string(filepath.Separator))
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, want) {
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && zombie(st) {
				continue // exited; its parent reaps it
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func zombie(stat []byte) bool {
	// The state follows the ")" that closes the command name: "pid (comm) Z ...".
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// killLeftovers kills what still runs in dir, until none is left or 5 s passed. chromedp does this
// only for the profile directories that it makes itself; this one is under t.TempDir.
func killLeftovers(dir string) {
	testkit.Wait(5*time.Second, func() bool {
		pids := processes(dir)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(pids) == 0
	})
}

// Tab opens a new tab in a new browser context: a person with their own cookies. It records the
// tab's console errors (see ConsoleErrors) and closes when t ends.
func (b *Browser) Tab(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(b.listen))
	// As in New, the first Do opens the tab for the life of ctx, so it gets no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("browsertest: open a tab: %v", err)
	}
	t.Cleanup(cancel)
	return ctx
}

// listen records the errors of every tab. It runs on chromedp's reading goroutine, before the
// command that follows the event returns (so an error that a page throws while it loads is there
// when Navigate returns); it must be quick and must not call the browser.
func (b *Browser) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			first, _, _ := strings.Cut(d.Exception.Description, "\n")
			msg += " " + first
		}
		msg += at(d.URL, d.LineNumber)
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			if a.Description != "" {
				parts = append(parts, a.Description)
			} else {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
		if st := e.StackTrace; st != nil && len(st.CallFrames) > 0 {
			msg += at(st.CallFrames[0].URL, st.CallFrames[0].LineNumber)
		}
	case *log.EventEntryAdded:
		// The browser's own errors, such as a Content-Security-Policy violation. A failed request
		// ("network": a 404 or 403 page that a test asks for on purpose) is the server's answer, which
		// the test checks itself, so it is left out.
		en := e.Entry
		if en.Level != log.EntryLevelError || en.Source == log.EntrySourceNetwork {
			return
		}
		msg = "browser " + string(en.Source) + ": " + en.Text + at(en.URL, en.LineNumber)
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

func at(url string, line int64) string {
	if url == "" {
		return ""
	}
	return fmt.Sprintf(" (%s:%d)", url, line+1)
}

// ConsoleErrors returns the JavaScript errors that the tabs of b have seen so far: uncaught
// exceptions, console.error and console.assert calls, and the browser's own error messages (a
// Content-Security-Policy violation...), but not failed requests. A test asserts that it is empty.
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// AcceptDialogs makes the tab accept every JavaScript dialog (confirm, alert, prompt), as a person
// who clicks OK. Without it, a confirm() blocks the page and the action that opened it until its
// timeout. It returns a func that gives the messages of the dialogs so far.
func AcceptDialogs(ctx context.Context) (messages func() []string) {
	var mu sync.Mutex
	var seen []string
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening) // subscribes now
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return // the tab closed
			}
			mu.Lock()
			seen = append(seen, ev.Message)
			mu.Unlock()
			// The click that opened the dialog waits for it; answer from this goroutine.
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// Do runs the actions in the tab, with at most ActionTimeout for all of them. On failure it saves a
// screenshot (when KEYPLANE_SCREENSHOTS is set) and fails the test with what.
func Do(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := within(ctx, func(ctx context.Context) error { return chromedp.Do(ctx, steps...) }); err != nil {
		failShot(t, ctx, what)
		t.Fatalf("browsertest: %s: %v", what, err)
	}
}

// Run runs one action that gives a value, as Do does.
func Run[T any](t testing.TB, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	var v T
	err := within(ctx, func(ctx context.Context) (err error) {
		v, err = chromedp.Run(ctx, a)
		return err
	})
	if err != nil {
		failShot(t, ctx, what)
		t.Fatalf("browsertest: %s: %v", what, err)
	}
	return v
}

func within(ctx context.Context, f func(context.Context) error) error {
	// A timeout on a context derived from the tab ends the action only; the tab stays usable.
	tctx, cancel := context.WithTimeout(ctx, ActionTimeout)
	defer cancel()
	return f(tctx)
}

// Eval evaluates a JavaScript expression in the page and decodes its value, e.g.
// Eval[int](t, tab, "window.innerWidth"). It works with JavaScript off too (DevTools still runs it).
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	return Run(t, ctx, "evaluate "+js, chromedp.Evaluate[T](js))
}

// Text is the visible text of the first element that matches the CSS selector, once it is there.
func Text(t testing.TB, ctx context.Context, sel string) string {
	t.Helper()
	return Run(t, ctx, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// URL is the address of the page that the tab shows.
func URL(t testing.TB, ctx context.Context) string {
	t.Helper()
	return Run(t, ctx, "location", chromedp.Location())
}

// JSOff disables JavaScript in the tab, for the pages that it opens from now on, as a person who
// turned it off: the dashboard must work without it.
func JSOff(t testing.TB, ctx context.Context) {
	t.Helper()
	setScripts(t, ctx, false)
}

func setScripts(t testing.TB, ctx context.Context, on bool) {
	t.Helper()
	err := within(ctx, func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
		return err
	})
	if err != nil {
		t.Fatalf("browsertest: set JavaScript on=%v: %v", on, err)
	}
}

// Phone makes the tab a 390x844 phone (mobile layout, touch), for the pages that it opens from now
// on. A page without <meta name="viewport" content="width=device-width"> is then laid out 980 px
// wide and zoomed out, as a real phone does.
func Phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
}

// Click clicks the first element that matches the CSS selector, once it is visible.
func Click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
}

// Fill replaces the value of the input that matches the CSS selector by typing value into it.
func Fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// FillLabel is Fill for the input of the <label> whose text is label, as a person finds it.
func FillLabel(label, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Clear(Label(label)), chromedp.SendKeys(Label(label), value))
}

// WaitVisible waits until an element that matches the CSS selector is visible.
func WaitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// Label selects the form control of the <label> whose text, with its spaces trimmed, is text (a
// label with for= or one that wraps its input), for any chromedp query action:
// chromedp.SendKeys(browsertest.Label("Email"), "ana@example.com").
func Label(text string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`(() => { const l = [...document.querySelectorAll("label")].find(l => l.textContent.replace(/\s+/g, " ").trim() === %s); return l ? l.control : null })()`, strconv.Quote(text)))
}

// Screenshot saves a PNG of the whole page (beyond the window too) and returns its path. The file
// is in KEYPLANE_SCREENSHOTS, named after the test and name, when that is set, so that a person can
// look at it after the run; else in a temporary directory of the test.
func (b *Browser) Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	path, err := screenshot(t, ctx, name)
	if err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	return path
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func screenshot(t testing.TB, ctx context.Context, name string) (string, error) {
	dir := os.Getenv("KEYPLANE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var png []byte
	err := within(ctx, func(ctx context.Context) (err error) {
		png, err = chromedp.Run(ctx, fullPage())
		return err
	})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name()+"-"+name, "_")+".png")
	return path, os.WriteFile(path, png, 0o644)
}

// fullPage captures the page's whole content size as a PNG.
func fullPage() chromedp.Action[[]byte] {
	return func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		clip := &page.Viewport{Width: m.CSSContentSize.Width, Height: m.CSSContentSize.Height, Scale: 1}
		if v := m.CSSLayoutViewport; v != nil && clip.Width < float64(v.ClientWidth) {
			clip.Width = float64(v.ClientWidth) // a short page: the whole window still
		}
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng, Clip: clip, CaptureBeyondViewport: ptr(true), FromSurface: ptr(true),
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}
}

func ptr[T any](v T) *T { return &v }

// failShot keeps what a failed action saw, where a person will look (KEYPLANE_SCREENSHOTS only).
func failShot(t testing.TB, ctx context.Context, what string) {
	if os.Getenv("KEYPLANE_SCREENSHOTS") == "" || ctx.Err() != nil {
		return
	}
	if path, err := screenshot(t, ctx, "failed-"+what); err == nil {
		t.Logf("browsertest: screenshot of the failure: %s", path)
	}
}

// AllowDownloads saves the files that the tab's pages download into dir, under the names the
// server suggests (Content-Disposition), instead of refusing them as headless Chromium does.
func AllowDownloads(t testing.TB, ctx context.Context, dir string) {
	t.Helper()
	c := chromedp.FromContext(ctx)
	if c == nil || c.Browser == nil {
		t.Fatal("browsertest: AllowDownloads needs a tab that has run")
	}
	if _, err := cdp.Call(ctx, c.Browser, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: c.BrowserContextID, DownloadPath: dir}); err != nil {
		t.Fatalf("browsertest: allow downloads: %v", err)
	}
}
