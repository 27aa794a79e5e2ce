package keyplane

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
)

// CatalogEntry names a permission or an event type and says what it is for.
type CatalogEntry struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Permissions keyplane itself checks on workspace keys calling its management API.
const (
	PermAPIKeysRead     = "api_keys:read"
	PermAPIKeysWrite    = "api_keys:write"
	PermWebhooksRead    = "webhooks:read"
	PermWebhooksWrite   = "webhooks:write"
	PermEventsWrite     = "events:write"
	PermAuditRead       = "audit:read"
	PermLogsRead        = "logs:read"
	PermIdentitiesRead  = "identities:read"
	PermIdentitiesWrite = "identities:write"
)

// BuiltinPermissions are keyplane's own permissions, always in the catalog.
var BuiltinPermissions = []CatalogEntry{
	{PermAPIKeysRead, "List and read the workspace's API keys through keyplane's API."},
	{PermAPIKeysWrite, "Create, change, rotate, revoke and delete the workspace's API keys."},
	{PermWebhooksRead, "List webhook endpoints and their delivery logs."},
	{PermWebhooksWrite, "Create, change and delete webhook endpoints; send test events, rotate and reveal signing secrets, retry deliveries."},
	{PermEventsWrite, "Send the workspace's custom events to its webhook endpoints."},
	{PermAuditRead, "Read the workspace's audit trail."},
	{PermLogsRead, "Read the workspace's request logs and usage."},
	{PermIdentitiesRead, "List and read the workspace's identities (the platform's customers, whose keys share credits and rate limits)."},
	{PermIdentitiesWrite, "Create, change and delete identities, and set their credits."},
	{PermPortalWrite, "Ask for portal links into the workspace (POST /v1/portal/sessions)."},
}

// Event types keyplane emits.
const (
	EventAPIKeyCreated    = "api_key.created"
	EventAPIKeyUpdated    = "api_key.updated"
	EventAPIKeyEnabled    = "api_key.enabled"
	EventAPIKeyDisabled   = "api_key.disabled"
	EventAPIKeyRotated    = "api_key.rotated"
	EventAPIKeyRevoked    = "api_key.revoked"
	EventAPIKeyDeleted    = "api_key.deleted"
	EventAPIKeyExpiring   = "api_key.expiring"
	EventAPIKeyExpired    = "api_key.expired"
	EventCreditsExhausted = "api_key.credits_exhausted"
	EventCreditsRefilled  = "api_key.credits_refilled"
	EventEndpointDisabled = "endpoint.disabled"
	EventWebhookTest      = "webhook.test"
	// EventAPIKeyLeaked: a key's value was reported found in public (POST /v1/leaks, GitHub's
	// secret scanning); its data names the key, the source, the url and the action taken.
	EventAPIKeyLeaked = "api_key.leaked"
)

// BuiltinEventTypes are keyplane's own event types, always in the catalog.
var BuiltinEventTypes = []CatalogEntry{
	{EventAPIKeyCreated, "An API key was created."},
	{EventAPIKeyUpdated, "An API key's settings changed."},
	{EventAPIKeyEnabled, "A disabled API key was enabled again."},
	{EventAPIKeyDisabled, "An API key was disabled."},
	{EventAPIKeyRotated, "An API key was given a new value."},
	{EventAPIKeyRevoked, "An API key was revoked, irreversibly."},
	{EventAPIKeyDeleted, "An API key was permanently deleted."},
	{EventAPIKeyExpiring, "An API key expires in 24 hours."},
	{EventAPIKeyExpired, "An API key expired."},
	{EventCreditsExhausted, "An API key's credits (or its identity's, shared by all its keys) reached 0."},
	{EventCreditsRefilled, "An API key's credits (or its identity's) were refilled."},
	{EventEndpointDisabled, "A webhook endpoint was disabled after failing for 5 days."},
	{EventWebhookTest, "A test event sent from the dashboard or the API."},
	{EventAPIKeyLeaked, "A secret API key's value was found in public (a leak report); the workspace's leakPolicy was applied."},
}

var (
	permissionPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*(?:[:.][a-z0-9_*-]+)+$`)
	eventTypePattern  = regexp.MustCompile(`^[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+$`)
)

// Catalog is the deployment's permissions and event types: keyplane's own plus those of the
// configuration file. It is immutable once built.
type Catalog struct {
	permissions []CatalogEntry
	eventTypes  []CatalogEntry
	permSet     map[string]struct{}
	eventSet    map[string]struct{}
}

// NewCatalog merges the built-in entries with extra ones, refusing malformed or duplicate names.
func NewCatalog(extraPermissions, extraEventTypes []CatalogEntry) (*Catalog, error) {
	c := &Catalog{permSet: map[string]struct{}{}, eventSet: map[string]struct{}{}}
	var err error
	if c.permissions, err = merge(BuiltinPermissions, extraPermissions, permissionPattern, c.permSet, "permission"); err != nil {
		return nil, err
	}
	if c.eventTypes, err = merge(BuiltinEventTypes, extraEventTypes, eventTypePattern, c.eventSet, "event type"); err != nil {
		return nil, err
	}
	return c, nil
}

func merge(builtin, extra []CatalogEntry, pattern *regexp.Regexp, set map[string]struct{}, kind string) ([]CatalogEntry, error) {
	out := make([]CatalogEntry, 0, len(builtin)+len(extra))
	for i, e := range append(append([]CatalogEntry{}, builtin...), extra...) {
		if !pattern.MatchString(e.Name) || len(e.Name) > 100 {
			return nil, fmt.Errorf("%s %q: a name is lower-case words joined by %s", kind, e.Name, map[bool]string{true: "':' (orders:read)", false: "'.' (order.created)"}[kind == "permission"])
		}
		if _, dup := set[e.Name]; dup {
			if i < len(builtin) {
				continue
			}
			return nil, fmt.Errorf("%s %q is defined twice (or is one of keyplane's own)", kind, e.Name)
		}
		set[e.Name] = struct{}{}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Permissions returns the permission catalog, sorted by name.
func (c *Catalog) Permissions() []CatalogEntry { return c.permissions }

// EventTypes returns the event type catalog, sorted by name.
func (c *Catalog) EventTypes() []CatalogEntry { return c.eventTypes }

// IsBuiltinPermission says whether p is one of keyplane's own permissions (BuiltinPermissions,
// portal:write among them): the ones that reach keyplane's management API, which only the platform
// grants, never a portal session.
func IsBuiltinPermission(p string) bool {
	return slices.ContainsFunc(BuiltinPermissions, func(e CatalogEntry) bool { return e.Name == p })
}

// HasPermission reports whether p is in the catalog.
func (c *Catalog) HasPermission(p string) bool { _, ok := c.permSet[p]; return ok }

// HasEventType reports whether t is in the catalog.
func (c *Catalog) HasEventType(t string) bool { _, ok := c.eventSet[t]; return ok }
