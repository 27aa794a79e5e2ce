package service_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/redistest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/throttle"
)

func newService(t testing.TB, driver string) (*service.Service, store.Store) {
	t.Helper()
	st := storetest.Open(t, driver)
	return servicetest.New(t, st, service.Options{
		Webhooks: service.WebhookOptions{Guard: kptest.Guard(t)}}), st
}

func TestSignIn(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, st := newService(t, d)
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "Ana@Example.com", Password: "a long enough password", WorkspaceID: w.ID, Role: keyplane.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
			who := func(ip string) *keyplane.Caller { return &keyplane.Caller{IP: ip, UserAgent: "test"} }

			u, token, err := svc.SignIn(ctx, who("192.0.2.1"), "ana@example.com", "a long enough password")
			if err != nil || token == "" || u.Email != "ana@example.com" {
				t.Fatalf("sign-in: %v", err)
			}
			_, token2, _ := svc.SignIn(ctx, who("192.0.2.1"), "ANA@example.com ", "a long enough password")
			if token2 == token {
				t.Fatal("two sign-ins share a session id")
			}
			sess, su, err := svc.SessionUser(ctx, token)
			if err != nil || su.ID != u.ID || sess.IP != "192.0.2.1" {
				t.Fatalf("session: %v", err)
			}
			// The store keeps a digest, never the token.
			if raw, _ := st.GetSession(ctx, []byte(token)); raw != nil {
				t.Fatal("the token itself is a session key")
			}
			if _, _, err := svc.SessionUser(ctx, token+"x"); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
				t.Fatalf("a wrong token: %v", err)
			}

			// Wrong password and unknown account answer the same.
			_, _, e1 := svc.SignIn(ctx, who("192.0.2.2"), "ana@example.com", "wrong")
			_, _, e2 := svc.SignIn(ctx, who("192.0.2.2"), "nobody@example.com", "wrong")
			if keyplane.ErrorCode(e1) != keyplane.CodeUnauthorized || e1.Error() != e2.Error() {
				t.Fatalf("wrong password %v, unknown account %v", e1, e2)
			}
			// Five failures lock the account, even for the right password, with a clear message.
			for i := 0; i < 4; i++ {
				svc.SignIn(ctx, who("198.51.100.1"), "ana@example.com", "wrong")
			}
			_, _, err = svc.SignIn(ctx, who("198.51.100.9"), "ana@example.com", "a long enough password")
			if keyplane.ErrorCode(err) != keyplane.CodeRateLimited || !strings.Contains(err.Error(), "try again in 15 minutes") {
				t.Fatalf("locked account: %v", err)
			}
			// Twenty failures from one address lock that address for every account.
			for i := 0; i < 20; i++ {
				svc.SignIn(ctx, who("203.0.113.5"), "someone"+string(rune('a'+i))+"@example.com", "wrong")
			}
			if _, _, err := svc.SignIn(ctx, who("203.0.113.5"), "other@example.com", "x"); keyplane.ErrorCode(err) != keyplane.CodeRateLimited {
				t.Fatalf("throttled address: %v", err)
			}
			// An IPv6 /64 counts as one address: walking through it gives no fresh budget; the next
			// /64 is another network.
			for i := 0; i < 20; i++ {
				svc.SignIn(ctx, who(fmt.Sprintf("2001:db8:1:2::%x", i+1)), "someone"+string(rune('a'+i))+"@example.com", "wrong")
			}
			if _, _, err := svc.SignIn(ctx, who("2001:db8:1:2:ffff::1"), "other@example.com", "x"); keyplane.ErrorCode(err) != keyplane.CodeRateLimited {
				t.Fatalf("another address of a throttled /64: %v", err)
			}
			if _, _, err := svc.SignIn(ctx, who("2001:db8:1:3::1"), "other@example.com", "x"); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
				t.Fatalf("the next /64: %v", err)
			}
			// Sign-ins, failures and the lock (once) are in the operator's audit trail, and none of
			// them in the workspace's: they are the person's, not the workspace's.
			entries, _, err := st.ListAudit(ctx, store.OperatorChain, store.AuditFilter{TargetID: u.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, e := range entries {
				count[e.Action]++
			}
			if count["user.signed_in"] != 2 || count["user.sign_in_failed"] != 5 || count["user.sign_in_throttled"] != 1 {
				t.Fatalf("audited sign-ins: %v", count)
			}
			inWorkspace, _, err := st.ListAudit(ctx, w.ID, store.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range inWorkspace {
				if strings.HasPrefix(e.Action, "user.") || strings.Contains(string(e.Body), "192.0.2.") || strings.Contains(string(e.Body), "198.51.100.") {
					t.Errorf("a sign-in in the workspace's chain: %s", e.Body)
				}
			}
			for _, e := range append(entries, inWorkspace...) {
				if strings.Contains(string(e.Body), "a long enough password") || strings.Contains(string(e.Body), token) {
					t.Fatal("a password or token in the audit trail")
				}
			}

			// Re-authentication and the caller built from a session, for someone not throttled.
			if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "bo@example.com", Password: "a long enough password", WorkspaceID: w.ID, Role: keyplane.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
			_, token, err = svc.SignIn(ctx, who("192.0.2.7"), "bo@example.com", "a long enough password")
			if err != nil {
				t.Fatal(err)
			}
			sess, su, _ = svc.SessionUser(ctx, token)
			ms, _ := svc.Memberships(ctx, su)
			c, ok := service.PersonCaller(su, sess, ms, w.ID, time.Now())
			if !ok || c.Role != keyplane.RoleAdmin || c.Reauthenticated {
				t.Fatalf("caller right after sign-in %+v: signing in must not count as re-authentication", c)
			}
			if err := svc.Reauthenticate(ctx, c, sess, su, "wrong"); keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
				t.Fatalf("re-authentication with a wrong password: %v", err)
			}
			if err := svc.Reauthenticate(ctx, c, sess, su, "a long enough password"); err != nil {
				t.Fatal(err)
			}
			sess, _, _ = svc.SessionUser(ctx, token)
			if c, _ = service.PersonCaller(su, sess, ms, w.ID, time.Now()); !c.Reauthenticated {
				t.Fatal("re-authentication did not open the window")
			}
			if _, ok := service.PersonCaller(su, sess, ms, "ws_other", time.Now()); ok {
				t.Fatal("a person opened a workspace they do not belong to")
			}
			later := time.Now().Add(6 * time.Minute)
			if c, _ := service.PersonCaller(su, sess, ms, w.ID, later); c.Reauthenticated {
				t.Fatal("re-authentication outlived its window")
			}
			if err := svc.SignOut(ctx, c, sess); err != nil {
				t.Fatal(err)
			}
			if _, _, err := svc.SessionUser(ctx, token); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
				t.Fatalf("session after sign-out: %v", err)
			}
		})
	}
}

// TestNewPasswordEndsSessions: setting a person's password again (keyplane users create on an
// existing email) ends every session they had, on every device, and the audit entry says how many;
// another person's session is untouched.
func TestNewPasswordEndsSessions(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, st := newService(t, d)
			ctx := context.Background()
			sys := keyplane.System("test")
			const old, fresh = "a long enough password", "another long enough password"
			for _, email := range []string{"ana@example.com", "bo@example.com"} {
				if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: email, Password: old, Operator: true}); err != nil {
					t.Fatal(err)
				}
			}
			caller := &keyplane.Caller{IP: "192.0.2.1"}
			var tokens []string
			for range 2 {
				_, tok, err := svc.SignIn(ctx, caller, "ana@example.com", old)
				if err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, tok)
			}
			_, bo, err := svc.SignIn(ctx, caller, "bo@example.com", old)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "ana@example.com", Password: fresh, Operator: true}); err != nil {
				t.Fatal(err)
			}
			for _, tok := range tokens {
				if _, _, err := svc.SessionUser(ctx, tok); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
					t.Fatalf("a session made with the old password: %v", err)
				}
			}
			if _, _, err := svc.SessionUser(ctx, bo); err != nil {
				t.Fatalf("another person's session: %v", err)
			}
			if _, _, err := svc.SignIn(ctx, caller, "ana@example.com", fresh); err != nil {
				t.Fatalf("sign-in with the new password: %v", err)
			}
			entries, _, err := st.ListAudit(ctx, store.OperatorChain, store.AuditFilter{Action: "user.updated", Limit: 10})
			if err != nil || len(entries) != 1 || !strings.Contains(string(entries[0].Body), `"sessions":{"from":2,"to":0}`) {
				t.Fatalf("audit of the new password: %+v, %v", entries, err)
			}
		})
	}
}

// TestSignInThrottleSharedThroughRedis: two nodes (services on one store) whose sign-in throttles
// count in one Redis give an attacker one budget: five failures split between them lock the account
// on both, even for the right password.
func TestSignInThrottleSharedThroughRedis(t *testing.T) {
	rc := redistest.Client(t)
	ctx := context.Background()
	// A name of this run's own: the counts outlive the test in the shared Redis for their window.
	run := fmt.Sprintf("test-%d-", time.Now().UnixNano())
	limits := func() service.SignInLimits {
		return service.NewSignInLimits(func(name string, max int, window time.Duration) throttle.Counter {
			return throttle.NewRedis(rc, run+name, max, window, 100, nil)
		})
	}
	st := storetest.Open(t, "sqlite")
	nodes := []*service.Service{
		servicetest.New(t, st, service.Options{SignIn: limits()}),
		servicetest.New(t, st, service.Options{SignIn: limits()}),
	}
	const pw = "a long enough password"
	if _, err := nodes[0].CreateUser(ctx, keyplane.System("test"), service.UserInput{Email: "ana@example.com", Password: pw, Operator: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		if _, _, err := nodes[i%2].SignIn(ctx, &keyplane.Caller{IP: ip}, "ana@example.com", "wrong"); keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	for i, n := range nodes {
		if _, _, err := n.SignIn(ctx, &keyplane.Caller{IP: "203.0.113.9"}, "ana@example.com", pw); keyplane.ErrorCode(err) != keyplane.CodeRateLimited {
			t.Fatalf("node %d after 5 failures across both: %v; want rate_limited", i, err)
		}
	}
}
