package service_test

import (
	"context"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// TestKeyCallersAreBounded: the rules that bound a workspace key (internal/e2e's TestKeyWritingMatrix
// tries them over HTTP) spare people and operators, and fail closed for a key caller that names no
// environment.
func TestKeyCallersAreBounded(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, w := openShopWithOrders(t, d)
			ctx := context.Background()
			sys := keyplane.System("test")
			every := []string{keyplane.PermAPIKeysRead, keyplane.PermAPIKeysWrite, keyplane.PermAuditRead, "orders:read"}
			live := service.CreateKeyInput{Name: "live", KeyType: keyplane.KeyTypeSecret, Permissions: every}
			test := service.CreateKeyInput{Name: "test", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvTest, Permissions: every}

			// A person holds their role's permissions (keyplane's own), an operator everything: neither
			// is bounded by them when granting (orders:read is no role's), and both act in both
			// environments.
			person := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_x"}, WorkspaceID: w.ID,
				Role: keyplane.RoleAdmin, Permissions: keyplane.RolePermissions(keyplane.RoleAdmin)}
			for _, c := range []*keyplane.Caller{person, sys} {
				for _, in := range []service.CreateKeyInput{live, test} {
					k, _, err := svc.CreateAPIKey(ctx, c, w.ID, in)
					if err != nil {
						t.Fatalf("%s creating %s: %v", c.Actor.Type, in.Name, err)
					}
					if _, err := svc.UpdateAPIKey(ctx, c, w.ID, k.ID, service.KeyPatch{Permissions: keyplane.Some([]string{"orders:read"})}); err != nil {
						t.Fatalf("%s patching %s: %v", c.Actor.Type, in.Name, err)
					}
				}
			}

			// A key caller bounded by what it holds.
			k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, live)
			if err != nil {
				t.Fatal(err)
			}
			key := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: k.ID}, WorkspaceID: w.ID, Permissions: k.Permissions, Environment: k.Environment}
			if _, _, err := svc.CreateAPIKey(ctx, key, w.ID, live); err != nil {
				t.Fatalf("a key granting what it holds: %v", err)
			}
			_, _, err = svc.CreateAPIKey(ctx, key, w.ID, service.CreateKeyInput{Name: "more", KeyType: keyplane.KeyTypeSecret, Permissions: []string{keyplane.PermWebhooksWrite}})
			wantCode(t, "a key granting what it lacks", err, keyplane.CodeForbidden)
			_, _, err = svc.CreateAPIKey(ctx, key, w.ID, test)
			wantCode(t, "a live key creating a test key", err, keyplane.CodeForbidden)
			_, err = svc.UpdateAPIKey(ctx, key, w.ID, k.ID, service.KeyPatch{Name: keyplane.Some("me")})
			wantCode(t, "a key patching itself", err, keyplane.CodeForbidden)
			if _, _, err := svc.RotateAPIKey(ctx, key, w.ID, k.ID, 0); err != nil {
				t.Fatalf("a key rotating itself: %v", err)
			}

			// A key caller that names no environment (a caller built without it) is refused every
			// key write, not let through.
			blank := *key
			blank.Environment = ""
			_, _, err = svc.CreateAPIKey(ctx, &blank, w.ID, live)
			wantCode(t, "a key caller without an environment creating", err, keyplane.CodeForbidden)
			_, _, err = svc.RotateAPIKey(ctx, &blank, w.ID, k.ID, 0)
			wantCode(t, "a key caller without an environment rotating", err, keyplane.CodeForbidden)
		})
	}
}
