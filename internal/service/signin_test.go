package service_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/redistest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/throttle"
)

const rightPassword = "a long enough password"

// limitsKinds are the sign-in throttles under test: in process, and in Redis (each run with names of
// its own, as the counts outlive the test in the shared Redis for their window).
func limitsKinds(t *testing.T) map[string]func() service.SignInLimits {
	return map[string]func() service.SignInLimits{
		"process": func() service.SignInLimits { return service.SignInLimits{} },
		"redis": func() service.SignInLimits {
			rc := redistest.Client(t)
			run := fmt.Sprintf("test-%d-", time.Now().UnixNano())
			return service.NewSignInLimits(func(name string, max int, window time.Duration) throttle.Counter {
				return throttle.NewRedis(rc, run+name, max, window, 100, nil)
			})
		},
	}
}

// newServiceWith makes a service whose password checks wait as long as it takes for the hashing
// slot: these tests hold checks and release them together, and are about what gets checked, not
// about a busy machine's 503.
func newServiceWith(t *testing.T, st store.Store, limits service.SignInLimits) *service.Service {
	t.Helper()
	if limits.Passwords == nil {
		limits.Passwords = password.NewGate(password.Slots, 5*time.Minute)
	}
	return servicetest.New(t, st, service.Options{SignIn: limits})
}

// auditCount counts a chain's entries of action about target ("" for any).
func auditCount(t *testing.T, st store.Store, chain, action, target string) int {
	t.Helper()
	entries, _, err := st.ListAudit(context.Background(), chain, store.AuditFilter{Action: action, TargetID: target, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// anaIn makes one workspace a slug, named after it, with ana@example.com (password rightPassword) a
// member of each in role, and returns them in order.
func anaIn(t *testing.T, svc *service.Service, role keyplane.Role, slugs ...string) []*keyplane.Workspace {
	t.Helper()
	ctx := context.Background()
	sys := keyplane.System("test")
	var ws []*keyplane.Workspace
	for _, slug := range slugs {
		w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: slug, Slug: slug})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "ana@example.com", Password: rightPassword, WorkspaceID: w.ID, Role: role}); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// signInAna signs ana@example.com in with the right password as c, and returns her session as
// stored, herself and the session's token.
func signInAna(t *testing.T, svc *service.Service, c *keyplane.Caller) (*keyplane.Session, *keyplane.User, string) {
	t.Helper()
	ctx := context.Background()
	_, token, err := svc.SignIn(ctx, c, "ana@example.com", rightPassword)
	if err != nil {
		t.Fatal(err)
	}
	sess, u, err := svc.SessionUser(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	return sess, u, token
}

// TestSignInConcurrentAttempts: attempts on one account that arrive together are counted before
// their passwords are hashed. Of 12 wrong passwords sent at once, at most 5 are ever checked; the
// right one, sent while they are still being checked and again after, is refused without being
// checked; the lock is audited once, in the operator's chain, however many attempts it refuses; and
// the refused attempts count against the address. In process and in Redis, on both stores.
func TestSignInConcurrentAttempts(t *testing.T) {
	for _, d := range storetest.Drivers() {
		for kind, limits := range limitsKinds(t) {
			t.Run(d+"/"+kind, func(t *testing.T) {
				st := storetest.Open(t, d)
				svc := newServiceWith(t, st, limits())
				ctx := context.Background()
				sys := keyplane.System("test")
				u, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "ana@example.com", Password: rightPassword, Operator: true})
				if err != nil {
					t.Fatal(err)
				}
				const n = 12
				var checkedWrong, checkedRight atomic.Int32
				events := make(chan struct{}, 4*n) // one for each wrong attempt that is checked or answered
				release := make(chan struct{})
				service.WrapPasswordCheck(svc, func(pw string, check func() (bool, error)) (bool, error) {
					if pw == rightPassword {
						checkedRight.Add(1)
						return check()
					}
					checkedWrong.Add(1)
					events <- struct{}{}
					<-release // held, so that every wrong attempt overlaps every other
					return check()
				})
				var wg sync.WaitGroup
				codes := make(chan keyplane.Code, n)
				for i := range n {
					wg.Go(func() {
						ip := fmt.Sprintf("198.51.100.%d", i+1)
						_, _, err := svc.SignIn(ctx, &keyplane.Caller{IP: ip}, "ana@example.com", fmt.Sprintf("wrong password %d", i))
						codes <- keyplane.ErrorCode(err)
						if keyplane.ErrorCode(err) == keyplane.CodeRateLimited {
							events <- struct{}{}
						}
					})
				}
				// Wait until each wrong attempt is either being checked or answered.
				bound := time.After(2 * time.Minute)
				for seen := 0; seen < n; seen++ {
					select {
					case <-events:
					case <-bound:
						t.Fatalf("after 2 minutes only %d of %d attempts were checked or answered", seen, n)
					}
				}
				// The right password while the wrong ones are still being checked: refused, unchecked.
				if _, _, err := svc.SignIn(ctx, &keyplane.Caller{IP: "203.0.113.1"}, "ana@example.com", rightPassword); keyplane.ErrorCode(err) != keyplane.CodeRateLimited {
					t.Errorf("the right password while %d wrong ones are being checked: %v; want rate_limited", checkedWrong.Load(), err)
				}
				close(release)
				wg.Wait()
				close(codes)
				count := map[keyplane.Code]int{}
				for c := range codes {
					count[c]++
				}
				if got := checkedWrong.Load(); got > 5 {
					t.Errorf("%d wrong passwords were checked; the limit is 5", got)
				}
				if count[keyplane.CodeUnauthorized] != 5 || count[keyplane.CodeRateLimited] != n-5 {
					t.Errorf("answers %v; want 5 unauthorized and %d rate_limited", count, n-5)
				}
				// The right one, last: still refused while locked, and never checked.
				if _, _, err := svc.SignIn(ctx, &keyplane.Caller{IP: "203.0.113.2"}, "ana@example.com", rightPassword); keyplane.ErrorCode(err) != keyplane.CodeRateLimited {
					t.Errorf("the right password after the failures: %v; want rate_limited", err)
				}
				if got := checkedRight.Load(); got != 0 {
					t.Errorf("the right password was checked %d times while the account was locked", got)
				}
				// Sixty more refusals write nothing more: one entry per lock and window.
				for i := range 60 {
					svc.SignIn(ctx, &keyplane.Caller{IP: fmt.Sprintf("192.0.2.%d", i%3+1)}, "ana@example.com", "wrong")
				}
				if got := auditCount(t, st, store.OperatorChain, "user.sign_in_throttled", u.ID); got != 1 {
					t.Errorf("%d user.sign_in_throttled entries for one lock; want 1", got)
				}
				if got := auditCount(t, st, store.OperatorChain, "user.sign_in_failed", u.ID); got != 5 {
					t.Errorf("%d user.sign_in_failed entries; want 5", got)
				}
				// Those 60 counted against their three addresses too (20 each): the next attempt
				// from one of them, on any account, is refused for the address.
				_, _, err = svc.SignIn(ctx, &keyplane.Caller{IP: "192.0.2.1"}, "bo@example.com", "wrong")
				if keyplane.ErrorCode(err) != keyplane.CodeRateLimited || !strings.Contains(err.Error(), "from your network") {
					t.Errorf("an address that sent 20 attempts to a locked account: %v; want it throttled", err)
				}
				if got := auditCount(t, st, store.OperatorChain, "user.sign_in_throttled", ""); got != 2 {
					t.Errorf("%d user.sign_in_throttled entries; want 2 (the account's lock, the address's)", got)
				}
			})
		}
	}
}

// TestReauthEmptyPasswordIsNotAFailure: a reveal sent without a password is answered as a form
// missing its field, and however often it is sent it does not lock the account.
func TestReauthEmptyPasswordIsNotAFailure(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			st := storetest.Open(t, d)
			svc := newServiceWith(t, st, service.SignInLimits{})
			ctx := context.Background()
			w := anaIn(t, svc, keyplane.RoleAdmin, "shop")[0]
			sess, u, _ := signInAna(t, svc, &keyplane.Caller{IP: "192.0.2.1"})
			ms, _ := svc.Memberships(ctx, u)
			c, _ := service.PersonCaller(u, sess, ms, w.ID, time.Now())
			for i := range 8 {
				err := svc.Reauthenticate(ctx, c, sess, u, "")
				var e *keyplane.Error
				if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest || !errors.As(err, &e) || len(e.Details) != 1 || e.Details[0].Field != "password" {
					t.Fatalf("empty password %d: %v; want invalid_request on the password field", i+1, err)
				}
			}
			if _, _, err := svc.SignIn(ctx, &keyplane.Caller{IP: "192.0.2.1"}, "ana@example.com", rightPassword); err != nil {
				t.Fatalf("sign-in after 8 empty re-authentications: %v", err)
			}
			if err := svc.Reauthenticate(ctx, c, sess, u, rightPassword); err != nil {
				t.Fatalf("re-authentication after 8 empty ones: %v", err)
			}
			if got := auditCount(t, st, w.ID, "user.reauth_failed", ""); got != 0 {
				t.Errorf("%d user.reauth_failed entries for empty passwords", got)
			}
		})
	}
}

// TestReauthPerWorkspace: the password entered again in one workspace opens reveals there, not in
// the person's other workspace, and the re-authentication is in the chain of the workspace it opens
// (a workspace's trail shows each window that let someone reveal its secrets). A window opened in
// the other workspace moves there.
func TestReauthPerWorkspace(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			st := storetest.Open(t, d)
			svc := newServiceWith(t, st, service.SignInLimits{})
			ctx := context.Background()
			ws := anaIn(t, svc, keyplane.RoleOwner, "one", "two")
			sess, u, token := signInAna(t, svc, &keyplane.Caller{IP: "192.0.2.1"})
			ms, _ := svc.Memberships(ctx, u)
			opened := func(sess *keyplane.Session) [2]bool {
				var out [2]bool
				for i, w := range ws {
					c, ok := service.PersonCaller(u, sess, ms, w.ID, time.Now())
					out[i] = ok && c.Reauthenticated
				}
				return out
			}
			c, _ := service.PersonCaller(u, sess, ms, ws[0].ID, time.Now())
			c.IP = "192.0.2.1"
			if err := svc.Reauthenticate(ctx, c, sess, u, rightPassword); err != nil {
				t.Fatal(err)
			}
			stored, _, _ := svc.SessionUser(ctx, token)
			if got := opened(stored); got != [2]bool{true, false} {
				t.Fatalf("after the password in workspace one, reveals open in (one, two) = %v; want only one", got)
			}
			if auditCount(t, st, ws[0].ID, "user.reauthenticated", u.ID) != 1 || auditCount(t, st, ws[1].ID, "user.reauthenticated", "") != 0 {
				t.Error("the re-authentication is not in workspace one's chain alone")
			}
			c2, _ := service.PersonCaller(u, stored, ms, ws[1].ID, time.Now())
			if err := svc.Reauthenticate(ctx, c2, stored, u, rightPassword); err != nil {
				t.Fatal(err)
			}
			stored, _, _ = svc.SessionUser(ctx, token)
			if got := opened(stored); got != [2]bool{false, true} {
				t.Fatalf("after the password in workspace two, reveals open in (one, two) = %v; want only two", got)
			}
			if auditCount(t, st, ws[1].ID, "user.reauthenticated", u.ID) != 1 {
				t.Error("the re-authentication in workspace two is not in its chain")
			}
		})
	}
}

// TestPersonEventsInOperatorChain: what belongs to a person and not to a workspace (signing in,
// failing to, signing out, a new password and the sessions it ends) is audited in the operator's
// chain only; a workspace's chain gets the person's membership, and nothing with their address or
// user agent from outside it.
func TestPersonEventsInOperatorChain(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			st := storetest.Open(t, d)
			svc := newServiceWith(t, st, service.SignInLimits{})
			ctx := context.Background()
			sys := keyplane.System("test")
			var ws []string
			for _, w := range anaIn(t, svc, keyplane.RoleAdmin, "one", "two", "three") {
				ws = append(ws, w.ID)
			}
			const ip, ua = "198.51.100.77", "Secret-Browser/1.0"
			who := &keyplane.Caller{IP: ip, UserAgent: ua}
			svc.SignIn(ctx, who, "ana@example.com", "wrong")
			sess, u, _ := signInAna(t, svc, &keyplane.Caller{IP: ip, UserAgent: ua})
			if err := svc.SignOut(ctx, &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID, Name: u.Email}, IP: ip, UserAgent: ua}, sess); err != nil {
				t.Fatal(err)
			}
			// A new password, set with a workspace named (keyplane users create --workspace).
			if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "ana@example.com", Password: "another long enough password", WorkspaceID: ws[0], Role: keyplane.RoleOwner}); err != nil {
				t.Fatal(err)
			}
			for _, action := range []string{"user.sign_in_failed", "user.signed_in", "user.signed_out"} {
				if got := auditCount(t, st, store.OperatorChain, action, u.ID); got != 1 {
					t.Errorf("%d %s entries in the operator's chain; want 1", got, action)
				}
			}
			entries, _, _ := st.ListAudit(ctx, store.OperatorChain, store.AuditFilter{Action: "user.updated", TargetID: u.ID, Limit: 10})
			if len(entries) != 3 || !strings.Contains(string(entries[0].Body), `"password":{"from":null,"to":"(set)"}`) {
				t.Errorf("the password changes in the operator's chain: %d entries", len(entries))
			}
			for i, w := range ws {
				entries, _, err := st.ListAudit(ctx, w, store.AuditFilter{Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				actions := map[string]int{}
				for _, e := range entries {
					actions[e.Action]++
					if strings.HasPrefix(e.Action, "user.") || strings.Contains(string(e.Body), ip) || strings.Contains(string(e.Body), ua) ||
						strings.Contains(string(e.Body), "password") || strings.Contains(string(e.Body), "sessions") {
						t.Errorf("workspace %d's chain holds a person's event: %s", i+1, e.Body)
					}
				}
				want := 1
				if i == 0 {
					want = 2 // added as admin, then made owner
				}
				if actions["member.added"] != want {
					t.Errorf("workspace %d's chain: %v; want %d member.added", i+1, actions, want)
				}
			}
		})
	}
}
