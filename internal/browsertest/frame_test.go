package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestFrame frames a page of another site (http://localhost framing http://127.0.0.1: two sites,
// though one machine), attaches to the frame, and runs actions and a confirm() in it. It also
// records which cookies such a third-party frame keeps, for the portal's choice of
// SameSite=None; Secure; Partitioned: Chromium blocks unpartitioned third-party cookies, and takes
// Secure cookies from http://127.0.0.1 and localhost (secure contexts) but not from other http hosts.
func TestFrame(t *testing.T) {
	inner := http.NewServeMux()
	attrs := []string{"SameSite=None; Secure; Partitioned", "SameSite=None; Secure", "SameSite=Lax"}
	inner.HandleFunc("GET /set/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		w.Header().Set("Set-Cookie", "c=1; Path=/; HttpOnly; "+attrs[n])
		http.Redirect(w, r, "/check", http.StatusSeeOther)
	})
	inner.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		_, err := r.Cookie("c")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>f</title><p id="cookie">%v</p>
<form method="post" action="/posted"><button id="b" onclick="return confirm('Sure?')">Go</button></form>`, err == nil)
	})
	inner.HandleFunc("POST /posted", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>f</title><p id="posted">posted</p>`)
	})
	in := httptest.NewServer(inner) // http://127.0.0.1:P
	defer in.Close()
	top := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>top</title><iframe title="inner" src="%s/set/%s"></iframe>`, in.URL, r.URL.Query().Get("n"))
	}))
	defer top.Close()
	topURL := strings.Replace(top.URL, "127.0.0.1", "localhost", 1)

	b := New(t)
	// Third-party and unpartitioned: blocked, as Lax is.
	for n, kept := range []bool{true, false, false} {
		t.Run(attrs[n], func(t *testing.T) {
			tab := b.Tab(t)
			dialogs := AcceptDialogs(tab)
			Do(t, tab, "open the framing page", chromedp.Navigate(fmt.Sprintf("%s/?n=%d", topURL, n)))
			f := b.Frame(t, tab, func(u string) bool { return strings.HasPrefix(u, in.URL+"/check") })
			if got := Text(t, f, "#cookie"); got != fmt.Sprint(kept) {
				t.Errorf("cookie %s kept in a third-party frame: %s, want %v", attrs[n], got, kept)
			}
			if kept {
				Do(t, f, "post from the frame", Click("#b"), WaitVisible("#posted"))
				if got := dialogs(); len(got) != 1 || got[0] != "Sure?" {
					t.Errorf("dialogs of the frame: %q", got)
				}
			}
		})
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("errors: %q", errs)
	}
}
