package service_test

import (
	"context"
	"errors"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// invisible are the bidi controls and zero-width characters that make a name read other than it is
// ("Pay\u202Elap" shows as "Paypal"): every name and description refuses each.
var invisible = []rune{'\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069',
	'\u200E', '\u200F', '\u061C', '\u200B', '\u200C', '\u200D', '\u2060', '\uFEFF'}

// TestNamesRefuseInvisibleCharacters: keys, webhooks, workspaces and root keys, on create and on
// change, answer a field error for a name or description holding a bidi control or zero-width
// character, and store nothing.
func TestNamesRefuseInvisibleCharacters(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			svc, _ := servicetest.Open(t, d, service.Options{
				Webhooks: localWebhooks(t)})
			ctx := context.Background()
			sys := keyplane.System("test")
			w := shop(t, svc)
			k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
			if err != nil {
				t.Fatal(err)
			}
			ep, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range invisible {
				bad := "Pay" + string(r) + "pal"
				calls := []struct {
					what, field string
					do          func() error
				}{
					{"create key name", "name", func() error {
						_, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: bad, KeyType: keyplane.KeyTypeSecret})
						return err
					}},
					{"create key description", "description", func() error {
						_, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "ok", Description: bad, KeyType: keyplane.KeyTypeSecret})
						return err
					}},
					{"update key name", "name", func() error {
						_, err := svc.UpdateAPIKey(ctx, sys, w.ID, k.ID, service.KeyPatch{Name: keyplane.Some(bad)})
						return err
					}},
					{"update key description", "description", func() error {
						_, err := svc.UpdateAPIKey(ctx, sys, w.ID, k.ID, service.KeyPatch{Description: keyplane.Some(bad)})
						return err
					}},
					{"create webhook description", "description", func() error {
						_, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "http://127.0.0.1:9/x", EventTypes: []string{"*"}, Description: bad})
						return err
					}},
					{"update webhook description", "description", func() error {
						_, err := svc.UpdateWebhook(ctx, sys, w.ID, ep.ID, service.WebhookPatch{Description: keyplane.Some(bad)})
						return err
					}},
					{"create workspace name", "name", func() error {
						_, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: bad, Slug: "other"})
						return err
					}},
					{"update workspace name", "name", func() error {
						_, err := svc.UpdateWorkspace(ctx, sys, w.ID, service.WorkspacePatch{Name: keyplane.Some(bad)})
						return err
					}},
					{"create root key name", "name", func() error {
						_, _, err := svc.CreateRootKey(ctx, sys, bad, []string{keyplane.ScopeVerify})
						return err
					}},
				}
				for _, c := range calls {
					err := c.do()
					var e *keyplane.Error
					if !errors.As(err, &e) || e.Code != keyplane.CodeInvalidRequest || len(e.Details) == 0 || e.Details[0].Field != c.field {
						t.Errorf("%s with U+%04X: %v, want invalid_request on %s", c.what, r, err, c.field)
					}
				}
			}
			// Letters of every script, and an emoji, still pass.
			for _, good := range []string{"Café ☕", "متجر", "店舗 2", "שלום"} {
				if _, err := svc.UpdateAPIKey(ctx, sys, w.ID, k.ID, service.KeyPatch{Name: keyplane.Some(good), Description: keyplane.Some(good)}); err != nil {
					t.Errorf("name %q: %v", good, err)
				}
			}
		})
	}
}
