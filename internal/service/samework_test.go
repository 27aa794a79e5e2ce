package service_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// tracingStore records the store calls a sign-in can make, in order, with the chain of each
// transaction and audit entry: what must be the same for an email with an account and one without.
type tracingStore struct {
	store.Store
	mu    sync.Mutex
	trace []string
}

func (s *tracingStore) add(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

func (s *tracingStore) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.trace
	s.trace = nil
	return t
}

func (s *tracingStore) GetUserByEmail(ctx context.Context, email string) (*keyplane.User, error) {
	s.add("GetUserByEmail")
	return s.Store.GetUserByEmail(ctx, email)
}

func (s *tracingStore) GetUser(ctx context.Context, id string) (*keyplane.User, error) {
	s.add("GetUser")
	return s.Store.GetUser(ctx, id)
}

func (s *tracingStore) ListMemberships(ctx context.Context, userID string) ([]keyplane.Membership, error) {
	s.add("ListMemberships")
	return s.Store.ListMemberships(ctx, userID)
}

func (s *tracingStore) ListMembers(ctx context.Context, wsID string) ([]keyplane.Member, error) {
	s.add("ListMembers")
	return s.Store.ListMembers(ctx, wsID)
}

func (s *tracingStore) ListWorkspaces(ctx context.Context, limit int, cursor string) ([]keyplane.Workspace, string, error) {
	s.add("ListWorkspaces")
	return s.Store.ListWorkspaces(ctx, limit, cursor)
}

func (s *tracingStore) GetSession(ctx context.Context, hash []byte) (*keyplane.Session, error) {
	s.add("GetSession")
	return s.Store.GetSession(ctx, hash)
}

func (s *tracingStore) InTx(ctx context.Context, chain string, fn func(tx store.Tx) error) error {
	s.add("InTx(%q)", chainName(chain))
	return s.Store.InTx(ctx, chain, func(tx store.Tx) error { return fn(&tracingTx{Tx: tx, s: s}) })
}

type tracingTx struct {
	store.Tx
	s *tracingStore
}

func (t *tracingTx) InsertAudit(ctx context.Context, e *keyplane.AuditEntry) error {
	t.s.add("InsertAudit(%q)", chainName(e.WorkspaceID))
	return t.Tx.InsertAudit(ctx, e)
}

func (t *tracingTx) GetUserByEmail(ctx context.Context, email string) (*keyplane.User, error) {
	t.s.add("tx.GetUserByEmail")
	return t.Tx.GetUserByEmail(ctx, email)
}

func (t *tracingTx) ListMemberships(ctx context.Context, userID string) ([]keyplane.Membership, error) {
	t.s.add("tx.ListMemberships")
	return t.Tx.ListMemberships(ctx, userID)
}

func chainName(c string) string {
	if c == store.OperatorChain {
		return "operator"
	}
	return "workspace"
}

// TestSignInSameWorkKnownUnknown: an email with an account in three workspaces and an email without
// one go through the same steps, attempt for attempt, failures and the lock alike: the same store
// reads, the same transactions and audit entries in the same chains (the operator's), and the same
// password hashing, or none once locked. (The enumeration test in internal/e2e times the same over
// HTTP.)
func TestSignInSameWorkKnownUnknown(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			st := &tracingStore{Store: storetest.Open(t, d)}
			svc := newServiceWith(t, st, service.SignInLimits{})
			ctx := context.Background()
			anaIn(t, svc, keyplane.RoleAdmin, "one", "two", "three")
			var checks int
			service.WrapPasswordCheck(svc, func(_ string, check func() (bool, error)) (bool, error) {
				checks++
				return check()
			})
			passwords := []string{"wrong 1", "wrong 2", strings.Repeat("x", 1025), "wrong 4", "wrong 5", rightPassword, "wrong 7", "wrong 8"}
			attempts := func(email, ip string) (traces [][]string, answers []string) {
				st.take()
				for _, pw := range passwords {
					checks = 0
					_, _, err := svc.SignIn(ctx, &keyplane.Caller{IP: ip, UserAgent: "test"}, email, pw)
					msg := "signed in"
					if err != nil {
						msg = err.Error()
					}
					traces = append(traces, append(st.take(), fmt.Sprintf("%d password checks", checks)))
					answers = append(answers, msg)
				}
				return traces, answers
			}
			kt, ka := attempts("ana@example.com", "192.0.2.1")
			ut, ua := attempts("nobody@example.com", "192.0.2.2")
			for i := range passwords {
				if !slices.Equal(kt[i], ut[i]) {
					t.Errorf("attempt %d: with an account %v; without %v", i+1, kt[i], ut[i])
				}
				if ka[i] != ua[i] {
					t.Errorf("attempt %d answers: with an account %q; without %q", i+1, ka[i], ua[i])
				}
			}
			// The sequence itself: a failure reads the account, hashes once and writes one entry in
			// the operator's chain; the lock's first refusal writes its entry without hashing; the
			// next refusal writes nothing.
			failure := []string{"GetUserByEmail", `InTx("operator")`, `InsertAudit("operator")`, "1 password checks"}
			tooLong := []string{"GetUserByEmail", `InTx("operator")`, `InsertAudit("operator")`, "0 password checks"}
			locked := []string{"GetUserByEmail", `InTx("operator")`, `InsertAudit("operator")`, "0 password checks"}
			again := []string{"GetUserByEmail", "0 password checks"}
			want := [][]string{failure, failure, tooLong, failure, failure, locked, again, again}
			for i := range want {
				if !slices.Equal(kt[i], want[i]) {
					t.Errorf("attempt %d: %v; want %v", i+1, kt[i], want[i])
				}
			}
		})
	}
}
