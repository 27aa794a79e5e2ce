package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// TestKeyEventsNeedKeyReaders: api_key.* events carry whole key objects, so a caller who may not read
// keys (a developer, a key without api_keys:read) can neither subscribe an endpoint to them (or to *)
// nor change an endpoint that receives them (repoint an admin's endpoint at its own URL, say). It
// still creates and changes endpoints of other events, and still deletes, rotates, reveals and tests
// the key-carrying ones, which sends no key anywhere new.
func TestKeyEventsNeedKeyReaders(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, _ := servicetest.Open(t, d, service.Options{Catalog: servicetest.Catalog(t, nil, []string{"order.created"}),
				Webhooks: localWebhooks(t)})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			person := func(role keyplane.Role) *keyplane.Caller {
				return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_" + string(role)}, WorkspaceID: w.ID, Role: role, Permissions: keyplane.RolePermissions(role)}
			}
			key := func(perms ...string) *keyplane.Caller {
				return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "key_x", Name: "k"}, WorkspaceID: w.ID, Environment: keyplane.EnvLive, Permissions: perms}
			}
			const url = "http://127.0.0.1:9/hook"
			// The admin's endpoint that receives every key.
			adminHook, _, err := svc.CreateWebhook(ctx, person(keyplane.RoleAdmin), w.ID, service.WebhookInput{URL: url, EventTypes: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			keysHook, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: url, EventTypes: []string{keyplane.EventAPIKeyRevoked, "order.created"}})
			if err != nil {
				t.Fatal(err)
			}
			refused := func(what string, err error) {
				t.Helper()
				wantCode(t, what, err, keyplane.CodeForbidden)
				if err != nil && !strings.Contains(err.Error(), keyplane.PermAPIKeysRead) {
					t.Errorf("%s: %v does not name %s", what, err, keyplane.PermAPIKeysRead)
				}
			}
			for name, c := range map[string]*keyplane.Caller{
				"developer":                   person(keyplane.RoleDeveloper),
				"a key with webhooks:write":   key(keyplane.PermWebhooksWrite),
				"a key with all but key read": key(keyplane.PermWebhooksWrite, keyplane.PermWebhooksRead, keyplane.PermAPIKeysWrite, keyplane.PermAuditRead),
			} {
				for _, types := range [][]string{{"*"}, {keyplane.EventAPIKeyCreated}, {"order.created", keyplane.EventAPIKeyExpired}} {
					_, _, err := svc.CreateWebhook(ctx, c, w.ID, service.WebhookInput{URL: url, EventTypes: types})
					refused(name+" creates an endpoint of "+strings.Join(types, ","), err)
				}
				// Refused before the URL is looked at: no name resolution for a refused caller.
				_, _, err := svc.CreateWebhook(ctx, c, w.ID, service.WebhookInput{URL: "http://attacker.invalid/x", EventTypes: []string{"*"}})
				refused(name+" creates an endpoint of * at an unresolvable host", err)
				own, _, err := svc.CreateWebhook(ctx, c, w.ID, service.WebhookInput{URL: url, EventTypes: []string{"order.created", keyplane.EventEndpointDisabled}})
				if err != nil {
					t.Fatalf("%s creates an endpoint of custom events: %v", name, err)
				}
				for _, p := range []service.WebhookPatch{
					{URL: keyplane.Some("http://127.0.0.1:9/mine")},
					{Description: keyplane.Some("harmless")},
					{Enabled: keyplane.Some(false)},
					{EventTypes: keyplane.Some([]string{"order.created"})},
				} {
					for _, ep := range []*keyplane.WebhookEndpoint{adminHook, keysHook} {
						_, err := svc.UpdateWebhook(ctx, c, w.ID, ep.ID, p)
						refused(name+" changes an endpoint of "+strings.Join(ep.EventTypes, ","), err)
					}
				}
				for _, types := range [][]string{{"*"}, {keyplane.EventAPIKeyDeleted}} {
					_, err := svc.UpdateWebhook(ctx, c, w.ID, own.ID, service.WebhookPatch{EventTypes: keyplane.Some(types)})
					refused(name+" subscribes its endpoint to "+strings.Join(types, ","), err)
				}
				if _, err := svc.UpdateWebhook(ctx, c, w.ID, own.ID, service.WebhookPatch{URL: keyplane.Some("http://127.0.0.1:9/moved"), EventTypes: keyplane.Some([]string{"order.created"})}); err != nil {
					t.Errorf("%s changes its endpoint of custom events: %v", name, err)
				}
				// What reveals no key data to a new place stays allowed.
				if _, _, err := svc.RotateWebhookSecret(ctx, c, w.ID, adminHook.ID); err != nil {
					t.Errorf("%s rotates the secret of an endpoint of *: %v", name, err)
				}
				if err := svc.DeleteWebhook(ctx, c, w.ID, own.ID); err != nil {
					t.Errorf("%s deletes its endpoint: %v", name, err)
				}
			}
			for _, ep := range []*keyplane.WebhookEndpoint{adminHook, keysHook} {
				got, err := svc.GetWebhook(ctx, sys, w.ID, ep.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.URL != url || !got.Enabled || strings.Join(got.EventTypes, ",") != strings.Join(ep.EventTypes, ",") || got.Description != "" {
					t.Errorf("endpoint %s was changed by a refused caller: %+v", ep.ID, got)
				}
			}
			for name, c := range map[string]*keyplane.Caller{
				"owner":                    person(keyplane.RoleOwner),
				"admin":                    person(keyplane.RoleAdmin),
				"a key with api_keys:read": key(keyplane.PermWebhooksWrite, keyplane.PermAPIKeysRead),
				"the operator":             sys,
			} {
				ep, _, err := svc.CreateWebhook(ctx, c, w.ID, service.WebhookInput{URL: url, EventTypes: []string{"*"}})
				if err != nil {
					t.Fatalf("%s creates an endpoint of *: %v", name, err)
				}
				if _, err := svc.UpdateWebhook(ctx, c, w.ID, adminHook.ID, service.WebhookPatch{URL: keyplane.Some("http://127.0.0.1:9/" + strings.ReplaceAll(name, " ", "-"))}); err != nil {
					t.Errorf("%s repoints an endpoint of *: %v", name, err)
				}
				if _, err := svc.UpdateWebhook(ctx, c, w.ID, ep.ID, service.WebhookPatch{EventTypes: keyplane.Some([]string{keyplane.EventAPIKeyCreated})}); err != nil {
					t.Errorf("%s changes an endpoint's events to api_key.created: %v", name, err)
				}
			}
		})
	}
}
