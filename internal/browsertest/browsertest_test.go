package browsertest

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// site is a tiny site with what the dashboard's tests rely on: a form with labels, a confirm()
// before it posts, text that JavaScript writes, a cookie, a page that throws, a CSP violation.
func site(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><meta name="viewport" content="width=device-width"><title>t</title></head><body>%s</body></html>`, body)
	}
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		page(w, `<form method="post" action="/done">
<label for="email">Email</label> <input id="email" name="email" value="old@example.com">
<label>Password <input type="password" name="password"></label>
<button id="send" type="submit" onclick="return confirm('Send it?')">Send</button>
</form><p id="js"></p><script>document.getElementById("js").textContent = "written by JS"</script>`)
	})
	mux.HandleFunc("POST /done", func(w http.ResponseWriter, r *http.Request) {
		page(w, fmt.Sprintf(`<h1 id="done">Hello %s (%d)</h1>`, r.FormValue("email"), len(r.FormValue("password"))))
	})
	mux.HandleFunc("GET /set-cookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "who", Value: "ana", Path: "/", HttpOnly: true})
		page(w, `<p id="ok">set</p>`)
	})
	mux.HandleFunc("GET /cookie", func(w http.ResponseWriter, r *http.Request) {
		v := "none"
		if c, err := r.Cookie("who"); err == nil {
			v = c.Value
		}
		page(w, `<p id="who">`+v+`</p>`)
	})
	mux.HandleFunc("GET /throw", func(w http.ResponseWriter, r *http.Request) {
		page(w, `<p id="x">x</p><script>console.error("bad thing", 42); throw new Error("boom")</script>`)
	})
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "script-src 'none'")
		page(w, `<p id="x">x</p><script>document.title = "ran"</script>`)
	})
	mux.HandleFunc("GET /tall", func(w http.ResponseWriter, r *http.Request) {
		page(w, `<div id="tall" style="height:3000px;background:linear-gradient(#fff,#36c)">tall</div>`)
	})
	// Two pages for axe: one that meets WCAG 2.1 AA, under a CSP that allows no script (as the
	// dashboard's allows only its own), and one that breaks three of its rules.
	mux.HandleFunc("GET /a11y-good", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'none'")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>good</title></head><body><main><h1 id="good">Good</h1>
<form><label for="q">Search</label> <input id="q" name="q"> <button type="submit">Go</button></form></main></body></html>`)
	})
	mux.HandleFunc("GET /a11y-bad", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>bad</title></head><body><main><h1 id="bad">Bad</h1>
<p style="color:#aaa;background:#fff">faint 1</p><p style="color:#bbb;background:#fff">faint 2</p>
<p style="color:#ccc;background:#fff">faint 3</p><p style="color:#ddd;background:#fff">faint 4</p>
<input id="nolabel" name="x"><img src="/nothing.png"></main></body></html>`)
	})
	s := httptest.NewServer(mux) // unknown paths, such as /favicon.ico, are 404s
	t.Cleanup(s.Close)
	return s
}

func TestBrowser(t *testing.T) {
	s := site(t)
	b := New(t)

	t.Run("form, label, confirm", func(t *testing.T) {
		ana := b.Tab(t)
		dialogs := AcceptDialogs(ana)
		Do(t, ana, "open the form", chromedp.Navigate(s.URL+"/form"), WaitVisible("#email"))
		if got := Text(t, ana, "#js"); got != "written by JS" {
			t.Fatalf("JS-written text: %q", got)
		}
		Do(t, ana, "fill and send",
			Fill("#email", "ana@example.com"),
			FillLabel("Password", "secret"),
			Click("#send"),
			WaitVisible("#done"),
		)
		if got := Text(t, ana, "#done"); got != "Hello ana@example.com (6)" {
			t.Fatalf("after sending: %q", got)
		}
		if got := URL(t, ana); got != s.URL+"/done" {
			t.Fatalf("URL: %q", got)
		}
		if got := dialogs(); !slices.Equal(got, []string{"Send it?"}) {
			t.Fatalf("dialogs: %q", got)
		}
	})

	t.Run("JavaScript off", func(t *testing.T) {
		noJS := b.Tab(t)
		JSOff(t, noJS)
		Do(t, noJS, "open the form", chromedp.Navigate(s.URL+"/form"), WaitVisible("#email"))
		if got := Text(t, noJS, "#js"); got != "" {
			t.Fatalf("JavaScript ran: %q", got)
		}
		// No confirm() without JavaScript: the button posts at once.
		Do(t, noJS, "send", Fill("#email", "nojs@example.com"), Click("#send"), WaitVisible("#done"))
		if got := Text(t, noJS, "#done"); !strings.HasPrefix(got, "Hello nojs@example.com") {
			t.Fatalf("after sending: %q", got)
		}
	})

	t.Run("tabs are separate people", func(t *testing.T) {
		ana, ben := b.Tab(t), b.Tab(t)
		Do(t, ana, "set cookie", chromedp.Navigate(s.URL+"/set-cookie"), WaitVisible("#ok"),
			chromedp.Navigate(s.URL+"/cookie"), WaitVisible("#who"))
		if got := Text(t, ana, "#who"); got != "ana" {
			t.Fatalf("ana's cookie: %q", got)
		}
		Do(t, ben, "no cookie", chromedp.Navigate(s.URL+"/cookie"), WaitVisible("#who"))
		if got := Text(t, ben, "#who"); got != "none" {
			t.Fatalf("ben sees ana's cookie: %q", got)
		}
	})

	t.Run("screenshot and phone", func(t *testing.T) {
		tab := b.Tab(t)
		Do(t, tab, "tall page", chromedp.Navigate(s.URL+"/tall"), WaitVisible("#tall"))
		w, h := pngSize(t, b.Screenshot(t, tab, "tall"))
		if w != 1280 || h < 3000 {
			t.Fatalf("full-page screenshot is %dx%d, want 1280 x 3000+", w, h)
		}
		Do(t, tab, "phone", Phone(), chromedp.Navigate(s.URL+"/form"), WaitVisible("#email"))
		if got := Eval[int](t, tab, "window.innerWidth"); got != 390 {
			t.Fatalf("phone innerWidth %d", got)
		}
		if w, h := pngSize(t, b.Screenshot(t, tab, "phone")); w != 390 || h < 844 {
			t.Fatalf("phone screenshot is %dx%d", w, h)
		}
	})

	t.Run("axe", func(t *testing.T) {
		for _, js := range []bool{true, false} {
			tab := b.Tab(t)
			if !js {
				JSOff(t, tab)
			}
			Do(t, tab, "good page", chromedp.Navigate(s.URL+"/a11y-good"), WaitVisible("#good"))
			if v := Axe(t, tab); len(v) != 0 {
				t.Errorf("JavaScript %v: violations on a page that has none: %v", js, v)
			}
			// A second run on the same document reuses the axe it loaded.
			if v := Axe(t, tab); len(v) != 0 {
				t.Errorf("JavaScript %v: the second run found %v", js, v)
			}
			Do(t, tab, "bad page", chromedp.Navigate(s.URL+"/a11y-bad"), WaitVisible("#bad"))
			got := map[string]AxeViolation{}
			for _, v := range Axe(t, tab) {
				got[v.ID] = v
			}
			for _, id := range []string{"color-contrast", "label", "image-alt"} {
				if _, ok := got[id]; !ok {
					t.Errorf("JavaScript %v: axe did not report %s; it reported %v", js, id, got)
				}
			}
			if len(got) != 3 {
				t.Errorf("JavaScript %v: %d rules broken, want 3: %v", js, len(got), got)
			}
			// The report names the rule, its impact and the first three elements of four.
			msg := got["color-contrast"].String()
			for _, want := range []string{"axe color-contrast (serious)", "4 element(s)", "p:nth-child(2)", "p:nth-child(4)", "#aaaaaa", " ...", "https://dequeuniversity.com/rules/axe/"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the report %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "p:nth-child(5)") {
				t.Errorf("the report names more than three elements: %q", msg)
			}
			// JavaScript stays as the tab had it, for this page and the next.
			Do(t, tab, "form", chromedp.Navigate(s.URL+"/form"), WaitVisible("#email"))
			if got := Text(t, tab, "#js"); (got == "written by JS") != js {
				t.Errorf("JavaScript %v: after Axe, the next page's script wrote %q", js, got)
			}
		}
	})

	// Up to here nothing went wrong in any tab, including the 404 of /favicon.ico and of /nothing.
	t.Run("console errors", func(t *testing.T) {
		tab := b.Tab(t)
		Do(t, tab, "a 404", chromedp.Navigate(s.URL+"/nothing"))
		if errs := b.ConsoleErrors(); len(errs) != 0 {
			t.Fatalf("errors before any was made: %q", errs)
		}
		Do(t, tab, "throw", chromedp.Navigate(s.URL+"/throw"), WaitVisible("#x"))
		errs := b.ConsoleErrors()
		if len(errs) != 2 || !strings.Contains(errs[0], "bad thing 42") || !strings.Contains(errs[1], "Error: boom") || !strings.Contains(errs[1], "/throw:1") {
			t.Fatalf("errors: %q", errs)
		}
		Do(t, tab, "csp", chromedp.Navigate(s.URL+"/csp"), WaitVisible("#x"))
		if errs := b.ConsoleErrors()[2:]; len(errs) != 1 || !strings.Contains(errs[0], "Content Security Policy") {
			t.Fatalf("CSP violation: %q", errs)
		}
	})
}

func pngSize(t *testing.T, path string) (int, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a PNG: % x", path, b[:min(8, len(b))])
	}
	c, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return c.Width, c.Height
}

// No chromium process outlives its test: not the browser, nor its zygote, renderers or services.
func TestNoProcessLeftAfterCleanup(t *testing.T) {
	s := site(t)
	var dir string
	t.Run("browse", func(t *testing.T) {
		b := New(t)
		tab := b.Tab(t)
		Do(t, tab, "open", chromedp.Navigate(s.URL+"/form"), WaitVisible("#email"))
		dir = b.dir
		n := len(processes(dir))
		t.Logf("%d chromium processes while it runs", n)
		if n < 3 {
			t.Fatalf("found %d chromium processes while it runs: the check below would prove nothing", n)
		}
	})
	if dir == "" {
		return // skipped or failed before the browser started
	}
	if pids := processes(dir); len(pids) != 0 {
		t.Fatalf("chromium processes left after cleanup: %v", pids)
	}
}
