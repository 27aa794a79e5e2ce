package service

import (
	"context"
	"slices"

	"github.com/keyplane/keyplane"
)

// A portal session is the platform's user acting on their own keys: what the platform bills or
// manages stays the platform's. The service, not the portal's pages, refuses it (403 forbidden):
//   - a key's credits, its named rate limits (rateLimits, and rateLimit, the "default" one) and its
//     identity, set on a new key or changed on one;
//   - keyplane's own permissions (the builtin catalog, portal:write among them) granted to a key;
//   - any change to, rotation or reveal of a key that holds one of keyplane's own permissions: such a
//     key manages the workspace for the platform, and rotating or revealing it would hand its value
//     to the portal;
//   - importing keys;
//   - managing or listing members, and revealing a webhook secret after its first minutes or
//     below admin (the people's rules; members.go, webhooks.go).
// The pages show these read-only and do not offer the fields.

// portalManaged is the end of every refusal: who manages what was refused.
const portalManaged = "the platform manages this, not its portal"

func portalRefusal(field string) error {
	return keyplane.Errorf(keyplane.CodeForbidden, "%s: %s", field, portalManaged)
}

// checkPortalGrant refuses a portal caller a key given one of keyplane's own permissions it did not
// hold before (had: its permissions before; nil for a new key).
func checkPortalGrant(c *keyplane.Caller, perms, had []string) error {
	if !c.Portal {
		return nil
	}
	for _, p := range perms {
		if keyplane.IsBuiltinPermission(p) && !slices.Contains(had, p) {
			return keyplane.Errorf(keyplane.CodeForbidden, "permissions: %s is keyplane's own permission, which only the platform grants; %s", truncate(p, 100), portalManaged)
		}
	}
	return nil
}

// checkPortalCreate refuses a portal caller a new key with what the platform manages.
func checkPortalCreate(c *keyplane.Caller, in CreateKeyInput) error {
	if !c.Portal {
		return nil
	}
	switch {
	case in.Credits != nil:
		return portalRefusal("credits")
	case len(in.RateLimits) > 0:
		return portalRefusal("rateLimits")
	case in.RateLimit != nil:
		return portalRefusal("rateLimit")
	case in.ExternalID.Set && !in.ExternalID.Null:
		return portalRefusal("externalId")
	case in.IdentityID.Set && !in.IdentityID.Null:
		return portalRefusal("identityId")
	}
	return checkPortalGrant(c, in.Permissions, nil)
}

// checkPortalPatch refuses a portal caller a change to what the platform manages of k.
func checkPortalPatch(c *keyplane.Caller, k *keyplane.APIKey, p KeyPatch) error {
	if !c.Portal {
		return nil
	}
	switch {
	case p.Credits.Set:
		return portalRefusal("credits")
	case p.RateLimits.Set:
		return portalRefusal("rateLimits")
	case p.RateLimit.Set:
		return portalRefusal("rateLimit")
	case p.ExternalID.Set:
		return portalRefusal("externalId")
	case p.IdentityID.Set:
		return portalRefusal("identityId")
	}
	if p.Permissions.Set {
		return checkPortalGrant(c, p.Permissions.Value, k.Permissions)
	}
	return nil
}

// checkPortalReach refuses a portal caller any change to, rotation or reveal of a key holding one
// of keyplane's own permissions.
func checkPortalReach(c *keyplane.Caller, k *keyplane.APIKey) error {
	if !c.Portal {
		return nil
	}
	for _, p := range k.Permissions {
		if keyplane.IsBuiltinPermission(p) {
			return keyplane.Errorf(keyplane.CodeForbidden, "key %s holds %s, keyplane's own permission: it is the platform's key; %s", k.ID, truncate(p, 100), portalManaged)
		}
	}
	return nil
}

// brandName is how the portal names the platform: the workspace's brand, else its name.
func (s *Service) brandName(ctx context.Context, wsID string) string {
	w, err := s.store.GetWorkspace(ctx, wsID)
	if err != nil {
		return "the platform"
	}
	return w.BrandName()
}
