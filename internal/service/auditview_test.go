package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// TestAuditHidesKeysFromThoseWhoSeeNoKeys: developers, viewers and workspace keys without
// api_keys:read read every entry of the audit trail (action, actor, time, target id, which fields
// changed), but not the values of an API key's fields, nor a key's name as an actor; owners, admins
// and keys with api_keys:read read all. The chain check, run on the stored entries, stays valid.
func TestAuditHidesKeysFromThoseWhoSeeNoKeys(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, w := openShopWithOrders(t, d)
			ctx := context.Background()
			sys := keyplane.System("test")
			secrets := []string{"Project Nightingale", "tier-gold-7731", "198.51.100.77", "https://nightingale.example"}
			k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: secrets[0], KeyType: keyplane.KeyTypeSecret,
				Permissions: []string{"orders:read"}, Meta: json.RawMessage(`{"plan":"` + secrets[1] + `"}`), IPAllowlist: []string{secrets[2]}})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "pk", KeyType: keyplane.KeyTypePublishable, AllowedOrigins: []string{secrets[3]}}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.UpdateAPIKey(ctx, sys, w.ID, k.ID, service.KeyPatch{Description: keyplane.Some("renamed " + secrets[0])}); err != nil {
				t.Fatal(err)
			}
			// A key acting on the trail makes the key's name the actor's.
			auditor := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: k.ID, Name: secrets[0]}, WorkspaceID: w.ID,
				Permissions: []string{keyplane.PermWebhooksWrite, keyplane.PermAuditRead}}
			if _, _, err := svc.CreateWebhook(ctx, auditor, w.ID, service.WebhookInput{URL: "https://203.0.113.9/hook", EventTypes: []string{keyplane.EventEndpointDisabled}}); err != nil && !strings.Contains(err.Error(), "url") {
				t.Fatal(err)
			}
			person := func(role keyplane.Role) *keyplane.Caller {
				return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_x"}, WorkspaceID: w.ID, Role: role, Permissions: keyplane.RolePermissions(role)}
			}
			read := func(c *keyplane.Caller) string {
				t.Helper()
				entries, _, err := svc.ListAudit(ctx, c, w.ID, store.AuditFilter{Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				for _, e := range entries {
					b.Write(e.JSON())
					b.WriteByte('\n')
				}
				return b.String()
			}
			for name, c := range map[string]*keyplane.Caller{"developer": person(keyplane.RoleDeveloper), "viewer": person(keyplane.RoleViewer), "a key with audit:read only": auditor} {
				got := read(c)
				for _, s := range secrets {
					if strings.Contains(got, s) {
						t.Errorf("%s reads %q in the audit trail:\n%s", name, s, got)
					}
				}
				for _, want := range []string{`"action":"api_key.created"`, `"id":"` + k.ID + `"`, `"redacted":true`, `"meta":`, `"ipAllowlist":`, `"description":`} {
					if !strings.Contains(got, want) {
						t.Errorf("%s does not read %s:\n%s", name, want, got)
					}
				}
				// No link of the chain comes with a redacted answer: a hash of the whole entry would
				// let the reader test guesses of the hidden values offline.
				for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
					if !strings.Contains(line, `"prevHash":""`) || !strings.HasSuffix(line, `"hash":""}`) {
						t.Errorf("%s reads a link of the chain: %s", name, line)
					}
				}
				res, err := svc.VerifyAudit(ctx, c, w.ID)
				if err != nil || !res.Valid || res.Entries < 3 {
					t.Errorf("%s's chain check: %+v, %v", name, res, err)
				}
			}
			for name, c := range map[string]*keyplane.Caller{"admin": person(keyplane.RoleAdmin), "owner": person(keyplane.RoleOwner), "the operator": sys} {
				got := read(c)
				for _, s := range secrets {
					if !strings.Contains(got, s) {
						t.Errorf("%s does not read %q in the audit trail", name, s)
					}
				}
				if strings.Contains(got, `"redacted"`) || strings.Contains(got, `"hash":""`) {
					t.Errorf("%s reads redacted entries, or entries without their hash", name)
				}
			}
		})
	}
}
