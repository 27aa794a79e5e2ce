package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
)

// openPortal makes a link of role in w and opens it, answering the portal's caller at now.
func openPortal(t *testing.T, svc *service.Service, w *keyplane.Workspace, role keyplane.Role, now time.Time) (*keyplane.PortalSession, *keyplane.Caller) {
	t.Helper()
	ctx := context.Background()
	link, err := svc.CreatePortalSession(ctx, keyplane.System("test"), w.ID, service.PortalRequest{User: keyplane.PortalUser{ID: "cust_1", Email: "c@shop.example"}, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	_, ps, err := svc.OpenPortalLink(ctx, &keyplane.Caller{IP: "192.0.2.9"}, linkToken(t, link.URL))
	if err != nil {
		t.Fatal(err)
	}
	return ps, service.PortalCaller(ps, now)
}

func TestPortalCallerRefusals(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC()}
	svc, _ := servicetest.Open(t, "sqlite", service.Options{Now: clock.Now, PublicURL: "http://127.0.0.1:1",
		Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil)})
	ctx := context.Background()
	w := shop(t, svc)
	sys := keyplane.System("test")
	ps, pc := openPortal(t, svc, w, keyplane.RoleAdmin, clock.Now())

	forbidden := func(t *testing.T, what string, err error, says string) {
		t.Helper()
		if keyplane.ErrorCode(err) != keyplane.CodeForbidden || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want forbidden saying %q", what, err, says)
		}
	}
	base := service.CreateKeyInput{Name: "mine", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvTest, Permissions: []string{"orders:read"}, Recoverable: true}
	k, _, err := svc.CreateAPIKey(ctx, pc, w.ID, base)
	if err != nil {
		t.Fatalf("a portal admin creates a plain key: %v", err)
	}
	if k.CreatedBy.Type != keyplane.ActorPortalUser || k.CreatedBy.ID != "cust_1" {
		t.Errorf("created by %+v", k.CreatedBy)
	}

	t.Run("Create", func(t *testing.T) {
		n := int64(5)
		for _, c := range []struct {
			field string
			mod   func(*service.CreateKeyInput)
		}{
			{"credits", func(in *service.CreateKeyInput) { in.Credits = &service.CreditsInput{Remaining: &n} }},
			{"rateLimits", func(in *service.CreateKeyInput) {
				in.RateLimits = []keyplane.NamedRateLimit{{Name: "tokens", Limit: 10, WindowMs: 1000}}
			}},
			{"rateLimit", func(in *service.CreateKeyInput) { in.RateLimit = &keyplane.RateLimit{Limit: 10, WindowMs: 1000} }},
			{"externalId", func(in *service.CreateKeyInput) { in.ExternalID = keyplane.Some("cust_1") }},
			{"identityId", func(in *service.CreateKeyInput) { in.IdentityID = keyplane.Some("idn_01JD0000000000000000000000") }},
			{"api_keys:write", func(in *service.CreateKeyInput) { in.Permissions = []string{keyplane.PermAPIKeysWrite} }},
			{"portal:write", func(in *service.CreateKeyInput) { in.Permissions = []string{"orders:read", keyplane.PermPortalWrite} }},
		} {
			in := base
			c.mod(&in)
			_, _, err := svc.CreateAPIKey(ctx, pc, w.ID, in)
			forbidden(t, "create with "+c.field, err, c.field)
			if err != nil && !strings.Contains(err.Error(), "the platform manages this") {
				t.Errorf("create with %s: %v does not say who manages it", c.field, err)
			}
		}
	})

	t.Run("Update", func(t *testing.T) {
		for _, c := range []struct {
			field string
			p     service.KeyPatch
		}{
			{"credits", service.KeyPatch{Credits: keyplane.Optional[service.CreditsInput]{Set: true, Null: true}}},
			{"rateLimits", service.KeyPatch{RateLimits: keyplane.Some([]keyplane.NamedRateLimit{})}},
			{"rateLimit", service.KeyPatch{RateLimit: keyplane.Optional[keyplane.RateLimit]{Set: true, Null: true}}},
			{"externalId", service.KeyPatch{ExternalID: keyplane.Optional[string]{Set: true, Null: true}}},
			{"identityId", service.KeyPatch{IdentityID: keyplane.Some("idn_01JD0000000000000000000000")}},
			{"audit:read", service.KeyPatch{Permissions: keyplane.Some([]string{"orders:read", keyplane.PermAuditRead})}},
		} {
			_, err := svc.UpdateAPIKey(ctx, pc, w.ID, k.ID, c.p)
			forbidden(t, "update of "+c.field, err, c.field)
		}
		if _, err := svc.ChangeKeyCredits(ctx, pc, w.ID, k.ID, service.CreditsChange{Op: keyplane.CreditSet, Value: 10}); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
			t.Errorf("credits change: %v", err)
		}
		// What the portal does offer.
		if _, err := svc.UpdateAPIKey(ctx, pc, w.ID, k.ID, service.KeyPatch{Name: keyplane.Some("renamed"), Permissions: keyplane.Some([]string{}), Enabled: keyplane.Some(false)}); err != nil {
			t.Errorf("a plain change: %v", err)
		}
	})

	t.Run("PlatformKeys", func(t *testing.T) {
		pk, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "platform", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvTest,
			Permissions: []string{keyplane.PermPortalWrite}, Recoverable: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.UpdateAPIKey(ctx, pc, w.ID, pk.ID, service.KeyPatch{Name: keyplane.Some("mine now")})
		forbidden(t, "change of a platform key", err, "platform's key")
		_, _, err = svc.RotateAPIKey(ctx, pc, w.ID, pk.ID, 0)
		forbidden(t, "rotation of a platform key", err, "platform's key")
		_, _, err = svc.RevealAPIKey(ctx, pc, w.ID, pk.ID)
		forbidden(t, "reveal of a platform key", err, "platform's key")
		_, err = svc.RevokeAPIKey(ctx, pc, w.ID, pk.ID)
		forbidden(t, "revocation of a platform key", err, "platform's key")
		if _, err := svc.GetAPIKey(ctx, pc, w.ID, pk.ID); err != nil {
			t.Errorf("the portal reads the platform's key: %v", err)
		}
	})

	t.Run("Reveal", func(t *testing.T) {
		if _, v, err := svc.RevealAPIKey(ctx, pc, w.ID, k.ID); err != nil || v == "" {
			t.Fatalf("a reveal just after the link was opened: %v", err)
		}
		late := service.PortalCaller(ps, ps.OpenedAt.Add(keyplane.ReauthWindow))
		_, _, err := svc.RevealAPIKey(ctx, late, w.ID, k.ID)
		forbidden(t, "a reveal after the window", err, "open the portal again from Shop")
	})

	t.Run("Import", func(t *testing.T) {
		_, err := svc.ImportAPIKeys(ctx, pc, w.ID, []service.ImportKeyInput{{CreateKeyInput: base, Value: "kp_sk_test_x"}})
		forbidden(t, "import", err, "importing keys")
	})

	t.Run("Viewer", func(t *testing.T) {
		_, vc := openPortal(t, svc, w, keyplane.RoleViewer, clock.Now())
		if _, err := svc.UpdateAPIKey(ctx, vc, w.ID, k.ID, service.KeyPatch{Name: keyplane.Some("x")}); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
			t.Errorf("a viewer's key change: %v", err)
		}
		if _, _, err := svc.ListAudit(ctx, vc, w.ID, keyplane.AuditFilter{}); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
			t.Errorf("a portal viewer reads the audit trail: %v", err)
		}
	})

	t.Run("OtherWorkspace", func(t *testing.T) {
		o, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Other", Slug: "other"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.CreateAPIKey(ctx, pc, o.ID, base); keyplane.ErrorCode(err) != keyplane.CodeNotFound {
			t.Errorf("a key in another workspace: %v", err)
		}
	})
}

// TestPortalCallerPeopleRules: a portal admin is not a member: it manages no members; and it reveals
// a webhook's signing secret only as a person does, in its first minutes, and as an admin.
func TestPortalCallerPeopleRules(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC()}
	svc, _ := servicetest.Open(t, "sqlite", service.Options{Now: clock.Now, PublicURL: "http://127.0.0.1:1", Webhooks: localWebhooks(t)})
	ctx := context.Background()
	w := shop(t, svc)
	ps, pc := openPortal(t, svc, w, keyplane.RoleAdmin, clock.Now())
	if _, _, err := svc.AddMember(ctx, pc, w.ID, "mallory@example.com", keyplane.RoleAdmin); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
		t.Errorf("a portal admin invites a member: %v", err)
	}
	if _, err := svc.ListMembers(ctx, pc, w.ID); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
		t.Errorf("a portal admin lists the members: %v", err)
	}
	hook, _, err := svc.CreateWebhook(ctx, pc, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, secret, err := svc.RevealWebhookSecret(ctx, pc, w.ID, hook.ID); err != nil || secret == "" {
		t.Errorf("a portal admin's reveal in its first minutes: %v", err)
	}
	late := service.PortalCaller(ps, ps.OpenedAt.Add(keyplane.ReauthWindow))
	if _, _, err := svc.RevealWebhookSecret(ctx, late, w.ID, hook.ID); keyplane.ErrorCode(err) != keyplane.CodeForbidden || !strings.Contains(err.Error(), "open the portal again from Shop") {
		t.Errorf("a portal admin's reveal after the window: %v", err)
	}
	_, dc := openPortal(t, svc, w, keyplane.RoleDeveloper, clock.Now())
	if _, _, err := svc.RevealWebhookSecret(ctx, dc, w.ID, hook.ID); keyplane.ErrorCode(err) != keyplane.CodeForbidden {
		t.Errorf("a portal developer's reveal: %v", err)
	}
}
