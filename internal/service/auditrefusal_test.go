package service_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// refuseAudit makes the database itself refuse every new audit entry, as a database that lost the
// right to write the table would: everything else keeps working.
func refuseAudit(t *testing.T, st store.Store, driver string) {
	t.Helper()
	db := st.(interface{ SQLDB() *sql.DB }).SQLDB()
	stmts := []string{`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries
		BEGIN SELECT RAISE(ABORT, 'audit entries refused'); END`}
	if driver == "postgres" {
		stmts = []string{
			`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'audit entries refused'; END $$`,
			`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION refuse_audit()`,
		}
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefusalsFailWithoutTheirAuditEntry: the docs promise an audit entry for every refused reveal
// and for a wrong password entered again. When that entry cannot be written the call fails with the
// store's error, which the API and the dashboard log: it does not answer a refusal that no entry
// records, as it did when the error was dropped.
func TestRefusalsFailWithoutTheirAuditEntry(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			svc, st := servicetest.Open(t, d, service.Options{
				Webhooks: localWebhooks(t)})
			sys := keyplane.System("test")
			w := shop(t, svc)
			k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "not recoverable", KeyType: keyplane.KeyTypeSecret})
			if err != nil {
				t.Fatal(err)
			}
			ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{keyplane.EventWebhookTest}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.CreateUser(ctx, sys, service.UserInput{Email: "ana@example.com", Password: "a long enough password", WorkspaceID: w.ID, Role: keyplane.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
			_, token, err := svc.SignIn(ctx, &keyplane.Caller{IP: "192.0.2.1", UserAgent: "test"}, "ana@example.com", "a long enough password")
			if err != nil {
				t.Fatal(err)
			}
			sess, u, err := svc.SessionUser(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := svc.Memberships(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			person := func() *keyplane.Caller {
				c, ok := service.PersonCaller(u, sess, ms, w.ID, time.Now())
				if !ok {
					t.Fatal("no caller for the workspace's admin")
				}
				return c
			}

			refusals := []struct {
				action string
				call   func() error
				want   keyplane.Code // while the entry can be written
			}{
				{"api_key.reveal_denied", func() error { _, _, err := svc.RevealAPIKey(ctx, sys, w.ID, k.ID); return err }, keyplane.CodeForbidden},
				{"webhook.secret_reveal_denied", func() error { _, _, err := svc.RevealWebhookSecret(ctx, person(), w.ID, ep.ID); return err }, keyplane.CodeForbidden},
				{"user.reauth_failed", func() error { return svc.Reauthenticate(ctx, person(), sess, u, "not the password") }, keyplane.CodeInvalidRequest},
			}
			for _, r := range refusals {
				if err := r.call(); keyplane.ErrorCode(err) != r.want {
					t.Fatalf("%s with a working audit trail: %v, want %s", r.action, err, r.want)
				}
			}
			entries, _, err := st.ListAudit(ctx, w.ID, store.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refusals {
				found := false
				for _, e := range entries {
					found = found || e.Action == r.action
				}
				if !found {
					t.Errorf("no %s entry for the refusal", r.action)
				}
			}

			refuseAudit(t, st, d)
			for _, r := range refusals {
				err := r.call()
				if err == nil || keyplane.ErrorCode(err) != keyplane.CodeInternal || !strings.Contains(err.Error(), "audit "+r.action) ||
					!strings.Contains(err.Error(), "audit entries refused") {
					t.Errorf("%s without its audit entry: %v, want the call to fail with the store's error", r.action, err)
				}
			}
		})
	}
}
