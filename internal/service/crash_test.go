package service_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// dyingStore is a store whose process dies at one kind of write (dies: "CreateUser" or
// "InsertAudit"): the transaction that makes it never commits, as under a SIGKILL.
type dyingStore struct {
	store.Store
	dies string
}

var errDied = errors.New("the process died")

func (s dyingStore) InTx(ctx context.Context, chain string, fn func(tx store.Tx) error) error {
	return s.Store.InTx(ctx, chain, func(tx store.Tx) error { return fn(dyingTx{tx, s.dies}) })
}

type dyingTx struct {
	store.Tx
	dies string
}

func (t dyingTx) CreateUser(ctx context.Context, u *keyplane.User) error {
	if t.dies == "CreateUser" {
		return errDied
	}
	return t.Tx.CreateUser(ctx, u)
}

func (t dyingTx) InsertAudit(ctx context.Context, e *keyplane.AuditEntry) error {
	if t.dies == "InsertAudit" {
		return errDied
	}
	return t.Tx.InsertAudit(ctx, e)
}

// TestBootstrapAllOrNothing: a first start that dies while it prepares the deployment leaves
// nothing, and the next start prepares all of it (the Default workspace and the admin who owns it),
// rather than finding a workspace and taking the deployment for prepared, with no one to sign in.
func TestBootstrapAllOrNothing(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			st := storetest.Open(t, d)
			if res, err := servicetest.New(t, dyingStore{st, "CreateUser"}, service.Options{}).Bootstrap(ctx, "", "a long enough password"); !errors.Is(err, errDied) {
				t.Fatalf("the first start: %+v, %v; want it to die", res, err)
			}
			svc := servicetest.New(t, st, service.Options{})
			res, err := svc.Bootstrap(ctx, "", "a long enough password")
			if err != nil || res == nil || res.Workspace == nil || res.AdminEmail != "admin@localhost" {
				t.Fatalf("the start after: %+v, %v; want it to prepare the deployment", res, err)
			}
			checkBootstrapped(t, svc, st)
		})
	}
}

// TestBootstrapConcurrent: nodes starting at once on one empty database prepare it once; the others
// find it prepared, and start.
func TestBootstrapConcurrent(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, st := newService(t, d)
			const n = 3
			results := make([]*service.BootstrapResult, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = svc.Bootstrap(context.Background(), "", "a long enough password")
				}()
			}
			wg.Wait()
			made := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("start %d: %v", i, errs[i])
				}
				if results[i] != nil {
					made++
				}
			}
			if made != 1 {
				t.Fatalf("%d starts prepared the deployment, want 1", made)
			}
			checkBootstrapped(t, svc, st)
		})
	}
}

// checkBootstrapped checks a prepared deployment: one workspace, Default, owned by the operator admin
// who can sign in; every audit chain verifies; and another start changes nothing.
func checkBootstrapped(t *testing.T, svc *service.Service, st store.Store) {
	t.Helper()
	ctx := context.Background()
	ws, _, err := st.ListWorkspaces(ctx, 10, "")
	if err != nil || len(ws) != 1 || ws[0].Slug != "default" {
		t.Fatalf("workspaces: %+v, %v; want Default alone", ws, err)
	}
	u, _, err := svc.SignIn(ctx, &keyplane.Caller{IP: "192.0.2.1"}, "admin@localhost", "a long enough password")
	if err != nil || !u.Operator {
		t.Fatalf("the admin's sign-in: %+v, %v", u, err)
	}
	if ms, err := st.ListMembers(ctx, ws[0].ID); err != nil || len(ms) != 1 || ms[0].UserID != u.ID || ms[0].Role != keyplane.RoleOwner {
		t.Fatalf("members of Default: %+v, %v; want the admin, owner", ms, err)
	}
	chains, err := svc.VerifyAllAudit(ctx, keyplane.System("test"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if !c.Valid {
			t.Errorf("audit chain %s: %+v", c.Chain, c)
		}
	}
	if res, err := svc.Bootstrap(ctx, "", "another password entirely"); res != nil || err != nil {
		t.Fatalf("a later start: %+v, %v; want nothing done", res, err)
	}
}

// TestSessionChangesAudited: signing out and re-entering a password change a session and are audited
// in the same transaction, so that a process that dies before the audit entry is written leaves the
// session as it was (before, the session was gone, or allowed reveals, with no entry to say so).
func TestSessionChangesAudited(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			svc, st := newService(t, d)
			if _, err := svc.Bootstrap(ctx, "", "a long enough password"); err != nil {
				t.Fatal(err)
			}
			ws, _, _ := st.ListWorkspaces(ctx, 1, "")
			_, token, err := svc.SignIn(ctx, &keyplane.Caller{IP: "192.0.2.1"}, "admin@localhost", "a long enough password")
			if err != nil {
				t.Fatal(err)
			}
			dying := servicetest.New(t, dyingStore{st, "InsertAudit"}, service.Options{})
			sess, u, err := svc.SessionUser(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			caller := func() *keyplane.Caller {
				return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: u.ID}, WorkspaceID: ws[0].ID}
			}
			reauthAt := sess.ReauthAt
			if err := dying.Reauthenticate(ctx, caller(), sess, u, "a long enough password"); !errors.Is(err, errDied) {
				t.Fatalf("re-authentication: %v, want it to die", err)
			}
			if got, _, err := svc.SessionUser(ctx, token); err != nil || !got.ReauthAt.Equal(reauthAt) {
				t.Fatalf("a re-authentication that died was stored (re-authenticated at %v, was %v): %v", got.ReauthAt, reauthAt, err)
			}
			if err := dying.SignOut(ctx, caller(), sess); !errors.Is(err, errDied) {
				t.Fatalf("sign-out: %v, want it to die", err)
			}
			if _, _, err := svc.SessionUser(ctx, token); err != nil {
				t.Fatalf("a sign-out that died ended the session: %v", err)
			}
		})
	}
}
