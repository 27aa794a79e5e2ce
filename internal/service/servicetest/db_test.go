package servicetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
)

// TestFailing: a service on DB.Failing's store cannot list keys, and its health check fails once the
// outage starts; a service on the store it came from sees neither fault.
func TestFailing(t *testing.T) {
	ctx, sys := context.Background(), keyplane.System("test")
	db := servicetest.OpenDB(t, "sqlite")
	f, down := db.Failing()
	svc, healthy := f.Service(t, service.Options{}), db.Service(t, service.Options{})
	w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ListAPIKeys(ctx, sys, w.ID, keyplane.KeyFilter{Limit: 10}); err == nil {
		t.Error("the failing store listed keys")
	}
	if _, _, err := healthy.ListAPIKeys(ctx, sys, w.ID, keyplane.KeyFilter{Limit: 10}); err != nil {
		t.Errorf("the store it came from: %v", err)
	}
	if err := svc.Health(ctx); err != nil {
		t.Errorf("health before the outage: %v", err)
	}
	down()
	if err := svc.Health(ctx); err == nil {
		t.Error("health during the outage: nil")
	}
	if err := healthy.Health(ctx); err != nil {
		t.Errorf("the store it came from, during the outage: %v", err)
	}
}

// TestAttachDB: a store attached where a program keeps it (PostgreSQL's URL, else SQLite's data
// dir) takes a user written straight to it, who signs in through a service, and whose session reads
// back; a closed store closes once.
func TestAttachDB(t *testing.T) {
	for _, driver := range servicetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			dataDir, dbURL := t.TempDir(), ""
			if driver == "postgres" {
				dbURL = servicetest.PostgresURL(t)
			}
			db := servicetest.AttachDB(t, dataDir, dbURL)
			now := time.Now().UTC().Truncate(time.Microsecond)
			const email, pw = "loner@example.com", "a long enough password"
			u := &keyplane.User{ID: id.NewAt(id.User, now), Email: email, PasswordHash: password.Hash(pw), CreatedAt: now, UpdatedAt: now}
			if err := db.InsertUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Errorf("a second Close: %v", err)
			}

			db = servicetest.AttachDB(t, dataDir, dbURL)
			_, token, err := db.Service(t, service.Options{}).SignIn(ctx, &keyplane.Caller{IP: "192.0.2.1", UserAgent: "test"}, email, pw)
			if err != nil {
				t.Fatal(err)
			}
			sess, err := db.GetSession(ctx, service.SessionToken(token))
			if err != nil {
				t.Fatal(err)
			}
			if sess.UserID != u.ID || sess.UserAgent != "test" {
				t.Errorf("the session reads back as user %s, User-Agent %q; want %s, test", sess.UserID, sess.UserAgent, u.ID)
			}
		})
	}
}
