package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/dashboard"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
)

// TestDashboardPasswordSlotsFull: when every password-hashing slot stays taken, the sign-in form and
// the reveal's password form answer 503 with Retry-After and say, in words, to try again in a few
// seconds; nothing counts against the account, which signs in and reveals once a slot is free. An
// empty password on a reveal is a missing field (400), never counted.
func TestDashboardPasswordSlotsFull(t *testing.T) {
	for _, driver := range servicetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			db := servicetest.OpenDB(t, driver)
			gate := password.NewGate(1, 10*time.Millisecond)
			svc := db.Service(t, service.Options{SignIn: service.SignInLimits{Passwords: gate}})
			ctx := context.Background()
			sys := keyplane.System("test")
			w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Busy", Slug: "busy"})
			if err != nil {
				t.Fatal(err)
			}
			const email = "busy@example.com"
			if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: email, Password: thePassword, WorkspaceID: w.ID, Role: keyplane.RoleOwner}); err != nil {
				t.Fatal(err)
			}
			k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "Recoverable", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvTest, Recoverable: true})
			if err != nil {
				t.Fatal(err)
			}
			d, err := dashboard.New(dashboard.Options{Service: svc})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(d)
			defer srv.Close()
			jar, _ := cookiejar.New(nil)
			c := srv.Client()
			c.Jar = jar
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			do := func(method, path string, form url.Values) (*http.Response, string) {
				t.Helper()
				var body io.Reader
				if form != nil {
					body = strings.NewReader(form.Encode())
				}
				req, err := http.NewRequest(method, srv.URL+path, body)
				if err != nil {
					t.Fatal(err)
				}
				if form != nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res, string(b)
			}
			login := func() (*http.Response, string) {
				_, body := do("GET", "/login", nil)
				return do("POST", "/login", url.Values{"csrf": {first(reLoginToken, body)}, "email": {email}, "password": {thePassword}, "next": {"/status"}})
			}
			busy := func(what string, res *http.Response, msg string) {
				t.Helper()
				if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "2" ||
					!strings.Contains(msg, "try again in a few seconds") {
					t.Errorf("%s with every slot taken: %d, Retry-After %q, message %q; want 503, 2, a message saying to try again",
						what, res.StatusCode, res.Header.Get("Retry-After"), msg)
				}
			}

			release, err := gate.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// More tries than the account's budget: none of them counts, as none was checked.
			for range 6 {
				res, body := login()
				busy("sign-in", res, first(reLoginError, body))
			}
			release()
			if res, _ := login(); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in with a slot free: %d", res.StatusCode)
			}
			_, status := do("GET", "/status", nil)
			csrf := first(reMeta, status)
			reveal := "/w/busy/settings/api/" + k.ID + "/reveal"
			confirmError := regexp.MustCompile(`(?s)id="confirm-error">(.*?)</div>`)
			for range 6 {
				res, body := do("POST", reveal, url.Values{"csrf": {csrf}, "password": {""}})
				if msg := first(confirmError, body); res.StatusCode != http.StatusBadRequest || !strings.Contains(msg, "Enter your password") {
					t.Fatalf("a reveal without a password: %d %q", res.StatusCode, msg)
				}
			}
			release, err = gate.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, body := do("POST", reveal, url.Values{"csrf": {csrf}, "password": {thePassword}})
			busy("reveal", res, first(confirmError, body))
			if strings.Contains(body, `id="secret-value"`) {
				t.Fatal("revealed without the password checked")
			}
			release()
			res, body = do("POST", reveal, url.Values{"csrf": {csrf}, "password": {thePassword}})
			if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="secret-value"`) {
				t.Fatalf("reveal with a slot free: %d", res.StatusCode)
			}
		})
	}
}
